//go:build !unix

package gateway

// Without mmap the big buffers come from the heap.
func mapBuffer(n int) ([]byte, error) { return make([]byte, n), nil }

func unmapBuffer([]byte) {}
