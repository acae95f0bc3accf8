package gateway

import (
	"errors"
	"net/http"
	"strings"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/lifecycle"
	"fhir-binary-gateway/storage/operator"
)

// lifecycleProblem maps the lifecycle's and the stores' sentinels to the
// answer they give, in one place (nil: not one of them). The diagnostics
// are the error's text from the sentinel on, which says what the client
// did without the stores' wrapping (that names internal object keys).
func lifecycleProblem(err error) *Problem {
	switch {
	case errors.Is(err, errDigestMismatch):
		return badRequest("%s", fromSentinel(err, errDigestMismatch))
	case errors.Is(err, lifecycle.ErrUploadMismatch):
		return problem(http.StatusConflict, "conflict", "%s", fromSentinel(err, lifecycle.ErrUploadMismatch))
	case errors.Is(err, lifecycle.ErrUploadCompleted):
		return problem(http.StatusConflict, "conflict", "%s", fromSentinel(err, lifecycle.ErrUploadCompleted))
	case errors.Is(err, lifecycle.ErrUploadIncomplete):
		return problem(http.StatusConflict, "incomplete", "%s", fromSentinel(err, lifecycle.ErrUploadIncomplete))
	case errors.Is(err, lifecycle.ErrGone):
		return problem(http.StatusGone, "deleted", "%s", after(err, lifecycle.ErrGone))
	case errors.Is(err, lifecycle.ErrRetention):
		return badRequest("%s", fromSentinel(err, lifecycle.ErrRetention))
	case errors.Is(err, lifecycle.ErrTooLarge):
		return problem(http.StatusRequestEntityTooLarge, "too-long", "%s", fromSentinel(err, lifecycle.ErrTooLarge))
	case errors.Is(err, lifecycle.ErrPrecondition):
		return problem(http.StatusPreconditionFailed, "conflict", "%s", fromSentinel(err, lifecycle.ErrPrecondition))
	case errors.Is(err, storage.ErrBadEncoding):
		return badRequest("%s", fromSentinel(err, storage.ErrBadEncoding))
	case errors.Is(err, operator.ErrPastExpiry), errors.Is(err, storage.ErrInvalidKey):
		return badRequest("%v", err)
	case errors.Is(err, storage.ErrNotFound):
		return problem(http.StatusNotFound, "not-found", "%s", strings.TrimSuffix(err.Error(), ": "+storage.ErrNotFound.Error()))
	case errors.Is(err, storage.ErrConflict):
		return problem(http.StatusConflict, "conflict", "the Binary was changed concurrently; read it again and retry")
	}
	return nil
}

// after is err's message past "sentinel: ".
func after(err, sentinel error) string {
	msg := fromSentinel(err, sentinel)
	if rest, ok := strings.CutPrefix(msg, sentinel.Error()+": "); ok {
		return rest
	}
	return msg
}
