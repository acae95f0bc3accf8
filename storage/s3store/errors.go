package s3store

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"

	"fhir-binary-gateway/storage"
)

// mapError turns an SDK error into the storage sentinels. The SDK error is
// kept as text only, so that no AWS type reaches the gateway.
//
//   - ctx cancelled (the client went away): the ctx error, as is;
//   - ctx deadline: ErrUnavailable and context.DeadlineExceeded;
//   - NoSuchKey / 404: ErrNotFound; InvalidRange / 416: ErrInvalidRange;
//   - a missing bucket: ErrUnavailable (the deployment is not there yet);
//   - any other 4xx: S3 refused this request (metadata over 2 KiB, a header
//     too large, a bad argument), or refused the gateway's own credentials.
//     The first is storage.ErrRejected; denied access is a plain error (the
//     operator's to fix). Neither is ErrUnavailable: retrying cannot help,
//     and "unreachable, try again" would blame S3 for what it refused;
//   - anything else (network, timeout, 5xx): ErrUnavailable.
func (s *Store) mapError(ctx context.Context, op, key string, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		if errors.Is(cerr, context.DeadlineExceeded) {
			return fmt.Errorf("%w: %s %s: %w", storage.ErrUnavailable, op, key, cerr)
		}
		return fmt.Errorf("%s %s: %w", op, key, cerr)
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchKey", "NotFound":
			return fmt.Errorf("%s %s: %w", op, key, storage.ErrNotFound)
		case "InvalidRange":
			return fmt.Errorf("%s %s: %w", op, key, storage.ErrInvalidRange)
		case "NoSuchBucket":
			return fmt.Errorf("%w: %s %s: bucket %s does not exist", storage.ErrUnavailable, op, key, s.opts.Bucket)
		}
	}
	var resp *awshttp.ResponseError
	if errors.As(err, &resp) {
		switch code := resp.HTTPStatusCode(); {
		case code == http.StatusNotFound:
			return fmt.Errorf("%s %s: %w", op, key, storage.ErrNotFound)
		case code == http.StatusRequestedRangeNotSatisfiable:
			return fmt.Errorf("%s %s: %w", op, key, storage.ErrInvalidRange)
		case code == http.StatusUnauthorized || code == http.StatusForbidden:
			return fmt.Errorf("%s %s: S3 refused the gateway's credentials (%d): %v", op, key, code, errorCode(err))
		case code == http.StatusRequestTimeout || code == http.StatusTooManyRequests:
			// S3's own "slow down" and "took too long": transient.
		case code >= 400 && code < 500:
			return fmt.Errorf("%s %s: %w: S3 answered %d %s", op, key, storage.ErrRejected, code, errorCode(err))
		}
	}
	return fmt.Errorf("%w: %s %s: %v", storage.ErrUnavailable, op, key, err)
}

// errorCode is S3's error code for err ("" when it sent none).
func errorCode(err error) string {
	var api smithy.APIError
	if errors.As(err, &api) {
		return api.ErrorCode()
	}
	return ""
}
