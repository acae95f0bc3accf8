package testenv

import (
	"io"
	"net"
	"net/url"
	"testing"
	"time"
)

// Forward serves 127.0.0.1 on a port of its own and forwards each
// connection to endpoint's host: the same server reached by another host
// and port. With cutAfter > 0, a connection that has sent more than
// cutAfter bytes towards the server is ended there, as a killed client's
// socket is (the kernel sends a FIN), and then closed.
func Forward(t testing.TB, endpoint string, cutAfter int64) string {
	t.Helper()
	eu, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", eu.Host)
			if err != nil {
				c.Close()
				continue
			}
			go func() { _, _ = io.Copy(c, up); c.Close() }()
			go func() {
				if cutAfter <= 0 {
					_, _ = io.Copy(up, c)
					up.Close()
					return
				}
				_, _ = io.Copy(up, io.LimitReader(c, cutAfter))
				if tc, ok := up.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				time.Sleep(500 * time.Millisecond) // let the server answer what it got
				up.Close()
				c.Close()
			}()
		}
	}()
	return "http://" + ln.Addr().String()
}
