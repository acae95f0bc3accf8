// Package uploadclient is the client side of upload sessions ($upload):
// it opens a session for a file, PUTs its parts in parallel straight to
// the URLs the gateway hands out, and completes it. Its state (the session
// URL) is kept in a small file next to the upload, so a run that was
// killed resumes on the next from GET <upload>.
package uploadclient

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options describe one upload.
type Options struct {
	BaseURL     string // FHIR base, before /Binary
	File        string
	ContentType string // "" : from the file's extension, else application/octet-stream
	Token       string // bearer token ("" : none)
	Parallel    int    // parts in flight (default 4)
	PartSize    int64  // 0: the gateway's
	// StateFile keeps the session URL between runs (default File+".upload").
	StateFile string
	// Progress, when set, is called after each part with the bytes sent so
	// far and the total.
	Progress func(sent, total int64)
	HTTP     *http.Client
}

type state struct {
	Upload  string    `json:"upload"`
	Size    int64     `json:"size"`
	ModTime time.Time `json:"modTime"`
}

type part struct {
	Number   int
	Size     int64
	Received *int64
	URL      string
}

type session struct {
	ID, Upload string
	PartSize   int64
	Parts      []part
}

// Upload sends o.File and returns the Binary's URL (its Location).
func Upload(ctx context.Context, o Options) (string, error) {
	if o.Parallel <= 0 {
		o.Parallel = 4
	}
	if o.StateFile == "" {
		o.StateFile = o.File + ".upload"
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{Timeout: 0}
	}
	f, err := os.Open(o.File)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	var sess session
	if st, ok := readState(o.StateFile); ok && st.Size == fi.Size() && st.ModTime.Equal(fi.ModTime()) {
		sess, err = o.status(ctx, st.Upload)
		if err != nil {
			sess = session{} // gone or expired: start again
		}
	}
	if sess.Upload == "" {
		if sess, err = o.start(ctx, f, fi); err != nil {
			return "", err
		}
		if err := writeState(o.StateFile, state{Upload: sess.Upload, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
			return "", err
		}
	}
	if err := o.sendParts(ctx, f, fi.Size(), sess); err != nil {
		return "", err
	}
	loc, err := o.complete(ctx, sess.Upload)
	if err != nil {
		return "", err
	}
	os.Remove(o.StateFile)
	return loc, nil
}

func (o Options) request(ctx context.Context, method, u string, body io.Reader, hdr ...string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, nil, err
	}
	if o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+o.Token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := o.HTTP.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 16<<20))
	return res, data, err
}

func (o Options) start(ctx context.Context, f *os.File, fi os.FileInfo) (session, error) {
	sum := sha256.New()
	// 1 MiB reads: fewer system calls per GiB than io.Copy's 32 KiB.
	if _, err := io.CopyBuffer(sum, io.NewSectionReader(f, 0, fi.Size()), make([]byte, 1<<20)); err != nil {
		return session{}, err
	}
	ct := o.ContentType
	if ct == "" {
		ct = mime.TypeByExtension(filepath.Ext(o.File))
	}
	if ct == "" {
		ct = "application/octet-stream"
	}
	hdr := []string{
		"X-Upload-Content-Type", ct,
		"X-Upload-Length", strconv.FormatInt(fi.Size(), 10),
		"Repr-Digest", "sha-256=:" + base64.StdEncoding.EncodeToString(sum.Sum(nil)) + ":",
		"Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": filepath.Base(o.File)}),
	}
	if o.PartSize > 0 {
		hdr = append(hdr, "X-Upload-Part-Size", strconv.FormatInt(o.PartSize, 10))
	}
	res, body, err := o.request(ctx, http.MethodPost, strings.TrimRight(o.BaseURL, "/")+"/Binary/$upload", nil, hdr...)
	if err != nil {
		return session{}, err
	}
	if res.StatusCode != http.StatusCreated {
		return session{}, fmt.Errorf("$upload: %s: %s", res.Status, outcome(body))
	}
	return decode(body)
}

func (o Options) status(ctx context.Context, upload string) (session, error) {
	res, body, err := o.request(ctx, http.MethodGet, upload, nil)
	if err != nil {
		return session{}, err
	}
	if res.StatusCode != http.StatusOK {
		return session{}, fmt.Errorf("GET %s: %s: %s", upload, res.Status, outcome(body))
	}
	return decode(body)
}

func (o Options) complete(ctx context.Context, upload string) (string, error) {
	res, body, err := o.request(ctx, http.MethodPost, upload, nil, "Prefer", "return=minimal")
	if err != nil {
		return "", err
	}
	if res.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("complete: %s: %s", res.Status, outcome(body))
	}
	return res.Header.Get("Location"), nil
}

// sendParts PUTs every part that has not arrived, o.Parallel at a time.
func (o Options) sendParts(ctx context.Context, f *os.File, total int64, sess session) error {
	var sent atomic.Int64
	var todo []part
	for _, p := range sess.Parts {
		if p.Received != nil && *p.Received == p.Size {
			sent.Add(p.Size)
			continue
		}
		todo = append(todo, p)
	}
	if o.Progress != nil {
		o.Progress(sent.Load(), total)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	jobs := make(chan part)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for range o.Parallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range jobs {
				if err := o.putPart(ctx, f, sess.PartSize, p); err != nil {
					once.Do(func() { first = err; cancel() })
					continue
				}
				if o.Progress != nil {
					o.Progress(sent.Add(p.Size), total)
				}
			}
		}()
	}
	for _, p := range todo {
		select {
		case jobs <- p:
		case <-ctx.Done():
		}
	}
	close(jobs)
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

func (o Options) putPart(ctx context.Context, f *os.File, partSize int64, p part) error {
	if p.URL == "" {
		return fmt.Errorf("part %d: the gateway gave no URL", p.Number)
	}
	var lastErr error
	for attempt := range 3 {
		if attempt > 0 {
			time.Sleep(time.Duration(attempt) * 500 * time.Millisecond)
		}
		body := io.NewSectionReader(f, int64(p.Number-1)*partSize, p.Size)
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, p.URL, body)
		if err != nil {
			return err
		}
		req.ContentLength = p.Size
		res, err := o.HTTP.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			lastErr = err
			continue
		}
		data, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
		res.Body.Close()
		if res.StatusCode/100 == 2 {
			return nil
		}
		lastErr = fmt.Errorf("part %d: %s: %s", p.Number, res.Status, bytes.TrimSpace(data))
		if res.StatusCode < 500 {
			return lastErr
		}
	}
	return lastErr
}

// decode reads the session's Parameters.
func decode(body []byte) (session, error) {
	type value struct {
		Name         string  `json:"name"`
		ValueString  string  `json:"valueString"`
		ValueURL     string  `json:"valueUrl"`
		ValueInteger *int    `json:"valueInteger"`
		ValueDecimal *int64  `json:"valueDecimal"`
		Part         []value `json:"part"`
	}
	var p struct {
		ResourceType string  `json:"resourceType"`
		Parameter    []value `json:"parameter"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.ResourceType != "Parameters" {
		return session{}, errors.New("the gateway's answer is not a Parameters resource")
	}
	var s session
	for _, v := range p.Parameter {
		switch v.Name {
		case "id":
			s.ID = v.ValueString
		case "upload":
			s.Upload = v.ValueURL
		case "partSize":
			if v.ValueDecimal != nil {
				s.PartSize = *v.ValueDecimal
			}
		case "part":
			var pt part
			for _, f := range v.Part {
				switch f.Name {
				case "number":
					if f.ValueInteger != nil {
						pt.Number = *f.ValueInteger
					}
				case "size":
					if f.ValueDecimal != nil {
						pt.Size = *f.ValueDecimal
					}
				case "received":
					pt.Received = f.ValueDecimal
				case "url":
					pt.URL = f.ValueURL
				}
			}
			s.Parts = append(s.Parts, pt)
		}
	}
	if s.Upload == "" || s.PartSize <= 0 {
		return s, errors.New("the gateway's answer names no upload session")
	}
	return s, nil
}

func outcome(body []byte) string {
	var oo struct {
		Issue []struct{ Diagnostics string } `json:"issue"`
	}
	if json.Unmarshal(body, &oo) == nil && len(oo.Issue) > 0 {
		return oo.Issue[0].Diagnostics
	}
	return string(bytes.TrimSpace(body))
}

func readState(path string) (state, bool) {
	var st state
	raw, err := os.ReadFile(path)
	if err != nil || json.Unmarshal(raw, &st) != nil || st.Upload == "" {
		return st, false
	}
	return st, true
}

func writeState(path string, st state) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return err
	}
	return os.WriteFile(path, raw, 0o600)
}
