package faults_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// newClient is an HTTP client for 127.0.0.1 only: no proxy, no gzip (so
// Content-Length is the body's length), redirects returned, not followed.
func newClient(t *testing.T, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		DisableCompression:  true,
		MaxIdleConnsPerHost: 64,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Timeout:       timeout,
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// Content of any size, generated rather than held in memory: chunk i of the
// content with seed s is a slice of one random pattern, chosen by (s, i),
// with (s, i) written over its first 16 bytes, so no two chunks of any two
// contents are alike and a mix-up of contents or offsets changes the hash.
const genChunk = 32 << 10

var pattern = func() []byte {
	b := make([]byte, 1<<20+genChunk)
	_, _ = rand.Read(b)
	return b
}()

type genReader struct {
	seed, size, off int64
	buf             []byte
	bufChunk        int64
}

func newContent(seed, size int64) *genReader {
	return &genReader{seed: seed, size: size, buf: make([]byte, genChunk), bufChunk: -1}
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.off >= g.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(p) && g.off < g.size {
		c := g.off / genChunk
		if c != g.bufChunk {
			start := uint64(c*2654435761+g.seed*40503) % (1 << 20)
			copy(g.buf, pattern[start:start+genChunk])
			binary.BigEndian.PutUint64(g.buf[0:], uint64(g.seed))
			binary.BigEndian.PutUint64(g.buf[8:], uint64(c))
			g.bufChunk = c
		}
		within := g.off % genChunk
		end := min(int64(genChunk), g.size-c*genChunk)
		k := copy(p[n:], g.buf[within:end])
		n += k
		g.off += int64(k)
	}
	return n, nil
}

func contentSHA(seed, size int64) string {
	h := sha256.New()
	_, _ = io.Copy(h, newContent(seed, size))
	return hex.EncodeToString(h.Sum(nil))
}

// prefixChecker compares what a client received with the content it should
// be, as it arrives.
type prefixChecker struct {
	want *genReader
	buf  []byte
	n    int64
	bad  int64 // offset of the first wrong byte, -1 while all are right
}

func newPrefixChecker(seed, size int64) *prefixChecker {
	return &prefixChecker{want: newContent(seed, size), bad: -1}
}

func (c *prefixChecker) Write(p []byte) (int, error) {
	if len(c.buf) < len(p) {
		c.buf = make([]byte, len(p))
	}
	w := c.buf[:len(p)]
	k, _ := io.ReadFull(c.want, w)
	if c.bad < 0 && (k < len(p) || !bytes.Equal(p[:k], w[:k])) {
		for i := range k {
			if p[i] != w[i] {
				c.bad = c.n + int64(i)
				break
			}
		}
		if c.bad < 0 {
			c.bad = c.n + int64(k) // more bytes than the content has
		}
	}
	c.n += int64(len(p))
	return len(p), nil
}

// pacedReader hands out r at about rate bytes per second.
type pacedReader struct {
	r     io.Reader
	rate  float64
	start time.Time
	sent  int64
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if p.start.IsZero() {
		p.start = time.Now()
	}
	if len(b) > 128<<10 {
		b = b[:128<<10]
	}
	n, err := p.r.Read(b)
	p.sent += int64(n)
	due := p.start.Add(time.Duration(float64(p.sent) / p.rate * float64(time.Second)))
	if d := time.Until(due); d > 0 {
		time.Sleep(d)
	}
	return n, err
}

// create POSTs a raw body and returns the new id from Location.
func create(c *http.Client, base string, body io.Reader, size int64, hdr ...string) (string, error) {
	req, err := http.NewRequest(http.MethodPost, base+"/Binary", body)
	if err != nil {
		return "", err
	}
	req.ContentLength = size
	req.Header.Set("Content-Type", "application/octet-stream")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
	if res.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("create: %d %s", res.StatusCode, msg)
	}
	return idFromLocation(res.Header.Get("Location"))
}

func mustCreate(t *testing.T, c *http.Client, base string, seed, size int64, hdr ...string) string {
	t.Helper()
	id, err := create(c, base, newContent(seed, size), size, hdr...)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// idFromLocation reads the id out of <base>/Binary/{id}/_history/{vid}.
func idFromLocation(loc string) (string, error) {
	u, err := url.Parse(loc)
	if err != nil {
		return "", fmt.Errorf("Location %q: %v", loc, err)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	for i := 0; i+1 < len(parts); i++ {
		if parts[i] == "Binary" {
			return parts[i+1], nil
		}
	}
	return "", fmt.Errorf("Location %q names no Binary", loc)
}

// download is the outcome of one GET of raw content.
type download struct {
	status   int
	header   http.Header
	n        int64
	sha      string
	body     []byte // the body when it is an error (first 4 KiB)
	err      error  // a transport or read error
	duration time.Duration
}

func get(c *http.Client, u string, hdr ...string) download {
	start := time.Now()
	var d download
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		d.err = err
		return d
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		d.err, d.duration = err, time.Since(start)
		return d
	}
	defer res.Body.Close()
	d.status, d.header = res.StatusCode, res.Header
	h := sha256.New()
	var keep bytes.Buffer
	d.n, d.err = io.Copy(io.MultiWriter(h, &limitedBuffer{&keep, 4 << 10}), res.Body)
	d.sha = hex.EncodeToString(h.Sum(nil))
	d.body = keep.Bytes()
	d.duration = time.Since(start)
	return d
}

type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// isOutcome reports whether an error answer is a FHIR OperationOutcome.
func isOutcome(d download) error {
	if ct := d.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		return fmt.Errorf("Content-Type %q is not application/fhir+json", ct)
	}
	var oo struct {
		ResourceType string `json:"resourceType"`
		Issue        []struct {
			Code string `json:"code"`
		} `json:"issue"`
	}
	if err := json.Unmarshal(d.body, &oo); err != nil {
		return fmt.Errorf("body %q: %v", d.body, err)
	}
	if oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 || oo.Issue[0].Code == "" {
		return fmt.Errorf("body %q is not an OperationOutcome with an issue code", d.body)
	}
	return nil
}

// filename is the filename parameter of a Content-Disposition header.
func filename(h http.Header) string {
	_, p, err := mime.ParseMediaType(h.Get("Content-Disposition"))
	if err != nil {
		return ""
	}
	return p["filename"]
}

// searchAll pages through GET /Binary and returns every id found.
func searchAll(t *testing.T, c *http.Client, base string) []string {
	t.Helper()
	var ids []string
	next := base + "/Binary?_count=1000"
	for page := 0; next != "" && page < 20; page++ {
		res, err := c.Get(next)
		if err != nil {
			t.Fatalf("search: %v", err)
		}
		var b struct {
			ResourceType string `json:"resourceType"`
			Link         []struct {
				Relation, URL string
			} `json:"link"`
			Entry []struct {
				Resource struct {
					ID string `json:"id"`
				} `json:"resource"`
			} `json:"entry"`
		}
		err = json.NewDecoder(res.Body).Decode(&b)
		res.Body.Close()
		if res.StatusCode != http.StatusOK || err != nil || b.ResourceType != "Bundle" {
			t.Fatalf("search %s: %d %v", next, res.StatusCode, err)
		}
		for _, e := range b.Entry {
			ids = append(ids, e.Resource.ID)
		}
		next = ""
		for _, l := range b.Link {
			if l.Relation == "next" {
				next = l.URL
			}
		}
	}
	if next != "" {
		t.Fatalf("search still had pages after 20")
	}
	return ids
}
