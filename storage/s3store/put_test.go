package s3store

import (
	"bytes"
	"io"
	"testing"
)

// A part is read into chunks (a body that ends exactly at the part is known
// to have ended only by the next read) and read back whole, from any position, as
// often as signing and retries need; chunks go back to the free list.
func TestPartChunksReadBackAndSeek(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), (5*chunkSize/2)/16)
	for _, size := range []int64{int64(len(data)) + 1, int64(len(data)), 2 * chunkSize, 10} {
		p, eof, err := (&chunks{}).readPart(bytes.NewReader(data), size, true)
		if err != nil {
			t.Fatal(err)
		}
		if want := size > int64(len(data)); eof != want || p.size != min(size, int64(len(data))) {
			t.Fatalf("size %d: eof %v (want %v), %d bytes", size, eof, want, p.size)
		}
		r := &partReader{p: &p}
		for _, at := range []int64{0, min(chunkSize-1, p.size), p.size / 2, p.size} {
			if _, err := r.Seek(at, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(r)
			if !bytes.Equal(got, data[at:p.size]) {
				t.Fatalf("size %d, from %d: %d bytes differ", size, at, len(got))
			}
		}
		if end, _ := r.Seek(0, io.SeekEnd); end != p.size {
			t.Errorf("size %d: end at %d", size, end)
		}
		p.release()
	}
}
