package rediscatalog_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/catalogtest"
	"fhir-binary-gateway/storage/rediscatalog"
	"fhir-binary-gateway/storage/testenv"
)

// These tests run the catalog's conformance suite through Redis Cluster and
// Redis Sentinel, each started here from the redis-server that make test
// installs: the Lua scripts must keep every key they touch in one hash slot,
// and the URL forms of the README must reach a working client.

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRedis runs redis-server with args (after a config file, when conf is
// not empty) in a directory of its own until the test ends, and waits until
// it answers PING.
func startRedis(t *testing.T, conf string, args ...string) int {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	var argv []string
	if conf != "" {
		file := filepath.Join(dir, "redis.conf")
		if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		argv = append(argv, file)
	}
	argv = append(argv, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir, "--save", "", "--appendonly", "no")
	argv = append(argv, args...)
	cmd := exec.Command(testenv.Program(t, "redis-server"), argv...)
	log, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = log.Close()
	})
	rc := redis.NewClient(&redis.Options{Addr: addr(port), MaxRetries: -1})
	defer rc.Close()
	waitFor(t, fmt.Sprintf("redis-server on %d (log %s)", port, log.Name()), func() bool {
		return rc.Ping(context.Background()).Err() == nil
	})
	return port
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not ready after 20s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func conformanceAt(t *testing.T, url string) {
	catalogtest.Run(t, func(t *testing.T) storage.Catalog {
		c, err := rediscatalog.New(context.Background(), rediscatalog.Options{
			URL: url, Namespace: testenv.RandomName("fbgtopo"), TombstoneTTL: time.Hour,
		})
		if err != nil {
			t.Fatalf("New(%s): %v", url, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	})
}

func TestConformanceOnCluster(t *testing.T) {
	var ports []int
	for range 3 {
		ports = append(ports, startRedis(t, "", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000"))
	}
	args := []string{"--cluster", "create"}
	for _, p := range ports {
		args = append(args, addr(p))
	}
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.Command(testenv.Program(t, "redis-cli"), args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, p := range ports {
		rc := redis.NewClient(&redis.Options{Addr: addr(p)})
		waitFor(t, "cluster state ok on "+addr(p), func() bool {
			info, err := rc.ClusterInfo(context.Background()).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
		_ = rc.Close()
	}
	url := fmt.Sprintf("redis://%s?addr=%s&addr=%s", addr(ports[0]), addr(ports[1]), addr(ports[2]))
	conformanceAt(t, url)
}

func TestConformanceOnSentinel(t *testing.T) {
	master := startRedis(t, "")
	// A sentinel rewrites its config file, so it gets one of its own.
	sentinel := startRedis(t, fmt.Sprintf("sentinel monitor fbgmaster 127.0.0.1 %d 1\nsentinel down-after-milliseconds fbgmaster 5000\n", master), "--sentinel")
	sc := redis.NewSentinelClient(&redis.Options{Addr: addr(sentinel)})
	defer sc.Close()
	waitFor(t, "sentinel knows the master", func() bool {
		a, err := sc.GetMasterAddrByName(context.Background(), "fbgmaster").Result()
		return err == nil && len(a) == 2 && a[1] == strconv.Itoa(master)
	})
	conformanceAt(t, fmt.Sprintf("redis://%s/0?master_name=fbgmaster", addr(sentinel)))
}
