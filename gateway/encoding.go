package gateway

import (
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"fhir-binary-gateway/storage"
)

// codingPrefs are the q-values an Accept-Encoding header gives gzip and
// identity (RFC 9110 §12.5.3).
type codingPrefs struct{ gzip, identity float64 }

// acceptEncoding reads Accept-Encoding. A request without one is given the
// content as is: a plain client (curl without --compressed) gets the bytes
// it would have got before gzip storage, and the Bulk Data IG asks for the
// uncompressed file unless the client listed an encoding. identity stays
// acceptable unless identity;q=0, or *;q=0 without identity named; gzip is
// acceptable when named (gzip or x-gzip) with q > 0, or covered by * with
// q > 0. A malformed q counts as 0.
func acceptEncoding(h http.Header) codingPrefs {
	vs, ok := h["Accept-Encoding"]
	if !ok {
		return codingPrefs{identity: 1}
	}
	star, gzip, identity := -1.0, -1.0, -1.0
	for _, part := range strings.Split(strings.Join(vs, ","), ",") {
		fields := strings.Split(part, ";")
		coding := strings.ToLower(strings.TrimSpace(fields[0]))
		if coding == "" {
			continue
		}
		q := 1.0
		for _, f := range fields[1:] {
			k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				n, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil || n < 0 || n > 1 {
					n = 0
				}
				q = n
			}
		}
		switch coding {
		case "*":
			star = max(star, q)
		case "gzip", "x-gzip":
			gzip = max(gzip, q)
		case "identity":
			identity = max(identity, q)
		}
	}
	p := codingPrefs{gzip: gzip, identity: identity}
	if p.gzip < 0 {
		p.gzip = max(star, 0)
	}
	if p.identity < 0 {
		p.identity = 1
		if star == 0 {
			p.identity = 0
		}
	}
	return p
}

// sendsGzip decides, for content stored gzip-compressed, whether the
// client is sent the stored gzip bytes (true) or the decoded content;
// a Problem (406) when it accepts neither. Between two acceptable codings
// the higher q wins, and gzip a tie.
func (p codingPrefs) sendsGzip() (bool, *Problem) {
	switch {
	case p.gzip > 0 && p.gzip >= p.identity:
		return true, nil
	case p.identity > 0:
		return false, nil
	}
	return false, problem(http.StatusNotAcceptable, "not-supported",
		"Accept-Encoding allows neither gzip nor identity, the only codings this content is available in")
}

// representation of content that a download sends: the stored gzip bytes
// or the content itself, with its own length and strong ETag.
type encodedRep struct {
	gzip   bool   // Content-Encoding: gzip, the stored bytes as they are
	decode bool   // the stored gzip bytes decoded on the way
	size   int64  // bytes of this representation (-1: unknown, sent chunked)
	etag   string // strong, quoted; "" when unknown
}

// chooseRep negotiates the representation of ct for the request headers h.
// Content stored as is is always sent as is: the gateway does not compress
// on the way out (a client that refuses identity still gets it, RFC 9110
// §12.5.3 lets a server disregard the header).
func chooseRep(h http.Header, ct content) (encodedRep, *Problem) {
	if ct.encoding != storage.EncodingGzip {
		return encodedRep{size: ct.size, etag: ct.etag}, nil
	}
	gz, p := acceptEncoding(h).sendsGzip()
	if p != nil {
		return encodedRep{}, p
	}
	if gz {
		return encodedRep{gzip: true, size: ct.storedSize, etag: ct.gzipETag}, nil
	}
	return encodedRep{decode: true, size: ct.size, etag: ct.etag}, nil
}

// gzipETag is the strong ETag of the gzip representation: from the SHA-256
// of the stored gzip bytes, so two versions with equal content but other
// gzip bytes never share it (a Range resumed with If-Range must not join
// two byte streams). Without that hash (a record from before gzip storage
// counted it), the identity ETag with "-gzip" appended.
func gzipETag(b storage.Binary) string {
	switch {
	case b.StoredSHA256 != "":
		return strongETag(b.StoredSHA256)
	case b.SHA256 != "":
		return strongETag(b.SHA256 + "-gzip")
	}
	return ""
}

// addVary merges tokens into one Vary header, once each.
func addVary(h http.Header, tokens ...string) {
	var have []string
	seen := map[string]bool{}
	for _, v := range h.Values("Vary") {
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" && !seen[strings.ToLower(t)] {
				seen[strings.ToLower(t)] = true
				have = append(have, t)
			}
		}
	}
	for _, t := range tokens {
		if !seen[strings.ToLower(t)] {
			seen[strings.ToLower(t)] = true
			have = append(have, t)
		}
	}
	h.Set("Vary", strings.Join(have, ", "))
}

// requestEncoding reads an upload's Content-Encoding: "" (none, or
// identity) or "gzip"; any other coding, or more than one, is 415 with the
// Accept-Encoding that would be taken (RFC 9110 §15.5.16).
func requestEncoding(h http.Header) (string, error) {
	var codings []string
	for _, v := range h.Values("Content-Encoding") {
		for _, t := range strings.Split(v, ",") {
			if t = strings.ToLower(strings.TrimSpace(t)); t != "" && t != "identity" {
				codings = append(codings, t)
			}
		}
	}
	switch {
	case len(codings) == 0:
		return "", nil
	case len(codings) == 1 && storage.IsGzip(codings[0]):
		return storage.EncodingGzip, nil
	}
	return "", problem(http.StatusUnsupportedMediaType, "not-supported",
		"Content-Encoding %q is not supported: an upload may be sent as is or gzip-encoded", truncate(strings.Join(codings, ", "), 100)).
		with("Accept-Encoding", "gzip")
}

// gunzipBody decodes a gzip-encoded FHIR JSON body for the parser, which
// reads the resource, not its coding. A body that does not decode fails
// with storage.ErrBadEncoding (400); the body's own failure stays its own.
type gunzipBody struct {
	r      io.Reader
	zr     *gzip.Reader
	srcErr error
}

func (g *gunzipBody) Read(p []byte) (int, error) {
	if g.zr == nil {
		zr, err := gzip.NewReader(readerFunc(g.readSrc))
		if err != nil {
			return 0, g.fail(err)
		}
		g.zr = zr
	}
	n, err := g.zr.Read(p)
	if err != nil && err != io.EOF {
		return n, g.fail(err)
	}
	return n, err
}

func (g *gunzipBody) readSrc(p []byte) (int, error) {
	n, err := g.r.Read(p)
	if err != nil && err != io.EOF {
		g.srcErr = err
	}
	return n, err
}

func (g *gunzipBody) fail(err error) error {
	if g.srcErr != nil {
		return g.srcErr
	}
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("%w: %v", storage.ErrBadEncoding, err)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
