// Command fhir-binary-gateway serves the FHIR R4 Binary resource over content
// kept in S3 (or a local data dir), with metadata in Redis (or bbolt).
//
//	fhir-binary-gateway [serve] [flags]   run the HTTP service (default)
//	fhir-binary-gateway import|reindex|gc  operator commands (--help for each)
//	fhir-binary-gateway version           print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"fhir-binary-gateway/cmd/fhir-binary-gateway/app"
	"fhir-binary-gateway/config"
	"fhir-binary-gateway/gateway"
)

// version is set at build time (-ldflags "-X main.version=..."); a plain
// go build or go run falls back to the commit Go stamps into the binary.
var version = "dev"

func init() {
	if version != "dev" {
		return
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "-dirty"
			}
		}
	}
	if len(rev) >= 7 {
		version = "dev-" + rev[:7] + modified
	}
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && (!strings.HasPrefix(args[0], "-") || isVersionFlag(args[0])) {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = serve(args, stdout, stderr)
	case "import":
		err = importCmd(args, stdout, stderr)
	case "import-manifest":
		err = importManifestCmd(args, stdout, stderr)
	case "reindex":
		err = reindexCmd(args, stdout, stderr)
	case "gc":
		err = gcCmd(args, stdout, stderr)
	case "expunge":
		err = expungeCmd(args, stdout, stderr)
	case "upload":
		err = uploadCmd(args, stdout, stderr)
	case "version", "--version", "-version", "-v":
		fmt.Fprintln(stdout, "fhir-binary-gateway", version)
	case "help", "-h", "--help":
		usage(stdout)
	default:
		fmt.Fprintf(stderr, "fhir-binary-gateway: unknown command %q\n", cmd)
		usage(stderr)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, app.ErrUsage):
		fmt.Fprintln(stderr, "fhir-binary-gateway:", err)
		return 2
	}
	fmt.Fprintln(stderr, "fhir-binary-gateway:", oneLine(err))
	return 1
}

// isVersionFlag: --version and -v answer like the version command, as in
// most command-line tools.
func isVersionFlag(a string) bool {
	switch a {
	case "--version", "-version", "-v":
		return true
	}
	return false
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage: fhir-binary-gateway [command] [flags]

commands:
  serve     run the HTTP service (default)
  import    register objects already in the store as Binaries
  import-manifest  register every file of a Bulk Data manifest at once (all or nothing)
  reindex   rebuild the metadata catalog from the objects
  gc        remove expired, expunged and orphan objects (--dry-run lists them)
  expunge   erase Binaries by id: every version, a tombstone answers 410
  upload    upload a file through an upload session (parallel, resumable)
  version   print the version (also --version, -v)

Each command takes --help.

settings (each also an environment variable):
`)
	config.Usage(w)
}

func serve(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	cfg, err := config.LoadInto(fs, args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		usage(stdout)
		return err
	}
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg.LogLevel)
	for _, w := range config.UnknownEnv(os.Environ()) {
		log.Warn(w)
	}
	tuneGC()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	backends, err := app.OpenBackendsRetrying(ctx, cfg, app.StartRetry, log)
	if err != nil {
		return err
	}
	defer backends.Close()
	if err := backends.OpenAccess(cfg, stdout); err != nil {
		return err
	}
	if err := backends.OpenTracing(ctx, version); err != nil {
		return err
	}
	if backends.Tracer != nil {
		log.Info("OpenTelemetry tracing on: spans go over OTLP/HTTP to OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT")
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("GATEWAY_LISTEN: %w", err)
	}
	defer ln.Close()
	if cfg.Auth == config.AuthJWT && (cfg.JWTIssuer == "" || cfg.JWTAudience == "") {
		log.Warn("GATEWAY_JWT_ISSUER or GATEWAY_JWT_AUDIENCE is empty: tokens are accepted from any issuer or for any audience the keys sign")
	}
	if cfg.Auth == config.AuthNone && !loopback(ln.Addr()) {
		log.Warn("GATEWAY_AUTH=none on an address other hosts can reach: every caller may read and write every Binary (bind 127.0.0.1 on a laptop, set GATEWAY_AUTH=jwt anywhere else)",
			"listen", ln.Addr().String())
	}
	handler := app.NewServer(cfg, backends, log, version)

	srv := gateway.NewHTTPServer(handler, cfg.ReadHeaderLimit, cfg.IdleTimeout)
	fmt.Fprintf(stdout, "fhir-binary-gateway %s listening on %s (%s%s)\n", version, listenURL(ln.Addr(), cfg), reach(ln.Addr()), backends.Describe)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(gateway.LimitHeads(ln, handler)) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Stop accepting, let in-flight transfers finish within the grace period.
	log.Info("shutting down", "grace", cfg.ShutdownGrace.String())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("shutdown: transfers still running after %s were cut", cfg.ShutdownGrace)
	}
	return nil
}

// gcPercent replaces Go's default GOGC of 100 for serve. The gateway's live
// heap is a few MiB (pooled copy buffers, records in flight), so at 100 it
// collects after every few MiB allocated: hundreds of cycles a second under
// a redirect load, about a tenth of the CPU. At 400 the heap may grow to five
// times that small live set, still far under the memory targets (the 1 GiB
// and 16-client streaming tests check), for a quarter of the collections.
const gcPercent = 400

// tuneGC applies gcPercent unless the operator set GOGC (or GOMEMLIMIT,
// which then governs) themselves.
func tuneGC() {
	if os.Getenv("GOGC") == "" && os.Getenv("GOMEMLIMIT") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

// listenURL is the address the server is bound to, as a URL: a wildcard
// bind shows as 0.0.0.0 or [::], so the start line never hides that every
// interface listens.
func listenURL(addr net.Addr, cfg config.Config) string {
	return "http://" + addr.String() + cfg.BasePath
}

// reach says who can connect, for the start line.
func reach(addr net.Addr) string {
	if loopback(addr) {
		return "this machine only; "
	}
	return "every host that reaches this one; "
}

// loopback reports whether addr accepts connections from this machine only.
func loopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", "; ")
}
