package storage

import "errors"

// ErrRejected: the backend refused the request as malformed (S3 answered a
// 4xx such as 400 for user metadata over its 2 KiB, or 413/431): retrying
// cannot help, and it is not the backend being down. The gateway answers
// 400, never 503, and it is not counted as a backend failure.
var ErrRejected = errors.New("refused by the store")
