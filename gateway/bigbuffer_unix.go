//go:build unix

package gateway

import "syscall"

// mapBuffer is n bytes of anonymous memory outside the Go heap, for a big
// copy buffer: unmapBuffer hands it straight back to the kernel, so the
// memory goes when the download ends rather than when the collector next
// runs. Nothing may hold the slice after unmapBuffer.
func mapBuffer(n int) ([]byte, error) {
	return syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
}

func unmapBuffer(b []byte) { _ = syscall.Munmap(b) }
