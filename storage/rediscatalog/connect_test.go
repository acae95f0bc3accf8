package rediscatalog

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"fhir-binary-gateway/storage"
)

func TestClientFromURL(t *testing.T) {
	const timeout = 1500 * time.Millisecond
	for _, tc := range []struct {
		url     string
		cluster bool
	}{
		{"redis://127.0.0.1:6379/2", false},
		{"rediss://user:secret@cache.example:6380", false},
		{"redis://s1:26379?master_name=mymaster&addr=s2:26379", false},
		{"redis://n1:6379?addr=n2:6379&addr=n3:6379", true},
		{"redis://config.example:6379?cluster=true", true},
	} {
		client, err := newClient(tc.url, timeout)
		if err != nil {
			t.Errorf("%s: %v", tc.url, err)
			continue
		}
		var read time.Duration
		var retries int
		switch c := client.(type) {
		case *redis.ClusterClient:
			read, retries = c.Options().ReadTimeout, c.Options().MaxRetries
		case *redis.Client:
			read, retries = c.Options().ReadTimeout, c.Options().MaxRetries
		}
		if _, isCluster := client.(*redis.ClusterClient); isCluster != tc.cluster {
			t.Errorf("%s: cluster client %v, want %v", tc.url, isCluster, tc.cluster)
		}
		if read != timeout || retries != 1 {
			t.Errorf("%s: read timeout %v, retries %d; want %v and 1", tc.url, read, retries, timeout)
		}
		_ = client.Close()
	}
	for _, bad := range []string{"http://h:1", "redis://h:1?bogus=1", "redis://h:1/x", "://"} {
		if c, err := newClient(bad, timeout); err == nil {
			_ = c.Close()
			t.Errorf("%s accepted", bad)
		}
	}
	if _, err := newClient("redis://:hunter2@h:1/x", timeout); err == nil || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("bad URL error %v: want an error without the password", err)
	}
}

// A Redis that is down must turn into ErrUnavailable in about Timeout, both
// when nothing listens and when something accepts but never answers.
func TestUnreachableRedisFailsFast(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	_ = closed.Close()

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			defer conn.Close() // hold it open, say nothing
		}
	}()

	for name, addr := range map[string]string{"closed port": closedAddr, "silent server": silent.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			o, _ := Options{URL: "redis://" + addr, Timeout: 500 * time.Millisecond}.withDefaults()
			start := time.Now()
			_, err := New(context.Background(), o)
			check(t, "New", err, start)

			client, err := newClient(o.URL, o.Timeout)
			if err != nil {
				t.Fatal(err)
			}
			c := newCatalog(client, o, true)
			defer c.Close()
			ctx := context.Background()
			start = time.Now()
			_, err = c.Get(ctx, storage.Ref{ID: "x"})
			check(t, "Get", err, start)
			start = time.Now()
			err = c.Put(ctx, storage.Binary{ID: "x", Version: 1})
			check(t, "Put", err, start)
			start = time.Now()
			check(t, "Ping", c.Ping(ctx), start)
			start = time.Now()
			_, err = c.Search(ctx, storage.Query{Count: 10})
			check(t, "Search", err, start)
		})
	}
}

func check(t *testing.T, op string, err error, start time.Time) {
	t.Helper()
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("%s took %v, want under 3s", op, took)
	}
	if !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("%s: %v, want ErrUnavailable", op, err)
	}
}

func TestCancelledContextPassesThrough(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	c, _ := NewFromClient(client, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := c.Get(ctx, storage.Ref{ID: "x"})
	if !errors.Is(err, context.Canceled) || errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Get with a cancelled context: %v, want context.Canceled only", err)
	}
}
