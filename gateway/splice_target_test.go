package gateway

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/labstack/echo/v4"
)

// readerFromRecorder is a response writer with a ReadFrom, as net/http's
// own is on a TCP connection.
type readerFromRecorder struct {
	*httptest.ResponseRecorder
	readFrom int64
}

func (r *readerFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	n, err := io.Copy(r.ResponseRecorder, src)
	r.readFrom += n
	return n, err
}

// Only a plain HTTP/1 request gets the response's ReadFrom (where net/http
// splices); over TLS or HTTP/2 the bounded copy stays, and what ReadFrom
// moved is counted in the response's size (metrics, log).
func TestSpliceTargetOnlyForPlainHTTP1(t *testing.T) {
	e := echo.New()
	for _, c := range []struct {
		name   string
		tls    bool
		proto  int
		splice bool
	}{
		{"http/1.1", false, 1, true},
		{"tls", true, 1, false},
		{"http/2", false, 2, false},
	} {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.ProtoMajor = c.proto
		if c.tls {
			req.TLS = &tls.ConnectionState{}
		}
		w := &readerFromRecorder{ResponseRecorder: httptest.NewRecorder()}
		ctx := e.NewContext(req, w)
		res := ctx.Response()
		res.WriteHeader(http.StatusOK)
		dst := spliceTarget(ctx, res)
		rf, ok := dst.(io.ReaderFrom)
		if ok != c.splice {
			t.Errorf("%s: ReadFrom exposed %v; want %v", c.name, ok, c.splice)
			continue
		}
		if !ok {
			continue
		}
		if _, err := rf.ReadFrom(io.LimitReader(zeros{}, 1000)); err != nil {
			t.Fatal(err)
		}
		if w.readFrom != 1000 || res.Size != 1000 {
			t.Errorf("%s: ReadFrom moved %d, response size %d; want 1000 and 1000", c.name, w.readFrom, res.Size)
		}
	}
}
