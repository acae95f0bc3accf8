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
//   - anything else (network, timeout, 5xx, a missing bucket, denied
//     access): ErrUnavailable.
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
		switch resp.HTTPStatusCode() {
		case http.StatusNotFound:
			return fmt.Errorf("%s %s: %w", op, key, storage.ErrNotFound)
		case http.StatusRequestedRangeNotSatisfiable:
			return fmt.Errorf("%s %s: %w", op, key, storage.ErrInvalidRange)
		}
	}
	return fmt.Errorf("%w: %s %s: %v", storage.ErrUnavailable, op, key, err)
}
