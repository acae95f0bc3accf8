package faults_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTwoGatewaysRaceOnIfMatch: two gateway processes on one Redis and one
// S3, each with writers updating one id with If-Match. Every version is won
// by exactly one writer, every win is in the history with its own bytes,
// and every loss is a 412: nothing is lost, nothing is written twice.
func TestTwoGatewaysRaceOnIfMatch(t *testing.T) {
	st := newStack(t)
	env := st.env()
	gws := []*gatewayProc{startGateway(t, env), startGateway(t, env)}
	client := &http.Client{Timeout: 30 * time.Second}
	do := func(method, url, body string, hdr ...string) (int, string, http.Header) {
		req, err := http.NewRequest(method, url, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := client.Do(req)
		if err != nil {
			t.Errorf("%s %s: %v", method, url, err)
			return 0, "", nil
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b), res.Header
	}
	const id = "raced"
	if code, body, _ := do(http.MethodPut, gws[0].url+"/Binary/"+id, "start", "Content-Type", "text/plain"); code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}

	const writers, rounds = 4, 12 // per gateway
	var (
		mu   sync.Mutex
		wins = map[int]string{} // version -> body that won it
		lost int
		wg   sync.WaitGroup
	)
	for g := range gws {
		for w := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range rounds {
					// Read the current version, then update conditionally on it.
					code, _, h := do(http.MethodHead, gws[g].url+"/Binary/"+id+"?_format=json", "")
					if code != http.StatusOK {
						t.Errorf("read: %d", code)
						return
					}
					etag := h.Get("ETag")
					body := fmt.Sprintf("gateway %d writer %d round %d", g, w, r)
					code, resBody, rh := do(http.MethodPut, gws[g].url+"/Binary/"+id, body, "Content-Type", "text/plain", "If-Match", etag)
					mu.Lock()
					switch code {
					case http.StatusOK:
						var v int
						if _, err := fmt.Sscanf(rh.Get("ETag"), `W/"%d"`, &v); err != nil {
							t.Errorf("update answered ETag %q", rh.Get("ETag"))
						}
						if prev, dup := wins[v]; dup {
							t.Errorf("version %d won twice: %q and %q", v, prev, body)
						}
						wins[v] = body
					case http.StatusPreconditionFailed:
						lost++
					default:
						t.Errorf("conditional update: %d %s", code, resBody)
					}
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	t.Logf("%d updates won, %d refused with 412", len(wins), lost)
	if len(wins)+lost != 2*writers*rounds || len(wins) == 0 {
		t.Fatalf("%d wins + %d losses, want %d attempts in all", len(wins), lost, 2*writers*rounds)
	}
	// The history holds exactly the versions won, each with its bytes, read
	// through either gateway.
	code, body, _ := do(http.MethodGet, gws[1].url+"/Binary/"+id+"/_history?_count=1000", "")
	if code != http.StatusOK {
		t.Fatalf("history: %d %s", code, body)
	}
	var h struct{ Total int }
	_ = json.Unmarshal([]byte(body), &h)
	if h.Total != len(wins)+1 {
		t.Errorf("history has %d versions, want %d (the create and every win)", h.Total, len(wins)+1)
	}
	for v, want := range wins {
		g := gws[v%2]
		if code, got, _ := do(http.MethodGet, fmt.Sprintf("%s/Binary/%s/_history/%d", g.url, id, v), ""); code != http.StatusOK || got != want {
			t.Errorf("version %d: %d %q, want the winner's %q", v, code, got, want)
		}
	}
}
