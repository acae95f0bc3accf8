package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"fhir-binary-gateway/cmd/fhir-binary-gateway/app"
	"fhir-binary-gateway/config"
	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/operator"
)

// operatorCommand opens the stores with the serve settings plus the
// command's own flags, and runs fn.
func operatorCommand(name, summary string, args []string, stdout, stderr io.Writer,
	flags func(fs *flag.FlagSet), fn func(ctx context.Context, cfg config.Config, b *app.Backends) error) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	flags(fs)
	cfg, err := config.LoadInto(fs, args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stdout, "usage: fhir-binary-gateway %s [flags]\n\n%s\n\nflags:\n", name, summary)
		fs.VisitAll(func(f *flag.Flag) {
			if !strings.Contains(f.Usage, "(env GATEWAY_") {
				fmt.Fprintf(stdout, "  --%-18s %s\n", f.Name, f.Usage)
			}
		})
		fmt.Fprintln(stdout, "\nand every serve setting (see fhir-binary-gateway --help).")
		return err
	}
	if err != nil {
		return err
	}
	for _, w := range config.UnknownEnv(os.Environ()) {
		fmt.Fprintln(stderr, "fhir-binary-gateway: warning:", w)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	b, err := app.OpenBackends(ctx, cfg)
	if err != nil {
		return err
	}
	defer b.Close()
	return fn(ctx, cfg, b)
}

func importCmd(args []string, stdout, stderr io.Writer) error {
	var key, prefix, contentType, securityContext, expires, owner, tenant, filename string
	return operatorCommand("import",
		"Registers objects that already sit in the store (written by an export pipeline) as Binaries,\nand prints each new id with its download URL.",
		args, stdout, stderr,
		func(fs *flag.FlagSet) {
			fs.StringVar(&key, "key", "", "object key to register (relative to the bucket prefix / data dir)")
			fs.StringVar(&prefix, "prefix", "", "register every object under this key prefix")
			fs.StringVar(&contentType, "content-type", "", "content type (default: from the extension; .ndjson → application/fhir+ndjson)")
			fs.StringVar(&securityContext, "security-context", "", "securityContext reference, e.g. Group/example-group")
			fs.StringVar(&expires, "expires-at", "", "RFC 3339 instant after which the Binaries are gone")
			fs.StringVar(&owner, "owner", "", "client id the Binaries belong to")
			fs.StringVar(&tenant, "tenant", "", "tenant (multi-tenant mode)")
			fs.StringVar(&filename, "filename", "", "download filename (default: the key's base name; with --prefix, each key's own)")
		},
		func(ctx context.Context, cfg config.Config, b *app.Backends) error {
			if (key == "") == (prefix == "") {
				return fmt.Errorf("%w: import needs exactly one of --key and --prefix", app.ErrUsage)
			}
			if err := checkFilename(filename); err != nil {
				return err
			}
			if filename != "" && prefix != "" {
				return fmt.Errorf("%w: --filename names one file: use it with --key, not --prefix", app.ErrUsage)
			}
			req := operator.ImportRequest{ContentType: contentType, SecurityContext: securityContext, Owner: owner, Tenant: tenant, Filename: filename}
			if expires != "" {
				t, err := time.Parse(time.RFC3339Nano, expires)
				if err != nil {
					return fmt.Errorf("%w: --expires-at %q is not an RFC 3339 instant", app.ErrUsage, expires)
				}
				if !t.After(time.Now()) {
					return fmt.Errorf("%w: --expires-at %s is not in the future", app.ErrUsage, expires)
				}
				req.ExpiresAt = t
			} else if cfg.DefaultRetention > 0 {
				req.ExpiresAt = time.Now().Add(cfg.DefaultRetention)
			}
			keys := []string{key}
			if prefix != "" {
				keys = nil
				err := b.Objects.List(ctx, prefix, func(o storage.ObjectInfo) error {
					if !strings.HasPrefix(o.Key, storage.BinariesPrefix) && !strings.HasPrefix(o.Key, storage.ImportsPrefix) {
						keys = append(keys, o.Key)
					}
					return nil
				})
				if err != nil {
					return err
				}
				if len(keys) == 0 {
					return fmt.Errorf("no objects under the prefix %q (keys are relative to the bucket prefix / data dir)", prefix)
				}
			}
			base := cfg.BaseURL
			if base == "" {
				base = localBaseURL(cfg.Listen) + cfg.BasePath
			}
			if tenant != "" {
				base += "/" + tenant
			}
			prog := newProgress(stderr, "imported")
			for i, k := range keys {
				r := req
				r.Key = k
				bin, err := operator.Import(ctx, b.Objects, b.Catalog, r)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "%s\t%s/Binary/%s/$binary-access-read\t%s\n", bin.ID, base, bin.ID, k)
				prog(i + 1)
			}
			prog.done(len(keys))
			return nil
		})
}

func reindexCmd(args []string, stdout, stderr io.Writer) error {
	return operatorCommand("reindex",
		"Rebuilds the metadata catalog from the objects (after a Redis loss or FLUSHALL).\nVersions the catalog already has are left alone.",
		args, stdout, stderr, func(*flag.FlagSet) {},
		func(ctx context.Context, cfg config.Config, b *app.Backends) error {
			prog := newProgress(stderr, "objects read")
			rep, err := operator.Reindex(ctx, b.Objects, b.Catalog, operator.ReindexOptions{Progress: prog.report})
			prog.done(rep.Objects)
			for _, p := range rep.Problems {
				fmt.Fprintln(stderr, "warning:", p)
			}
			fmt.Fprintf(stdout, "reindex: %d objects read, %d versions restored, %d already present, %d expired left out, %d problems\n",
				rep.Objects, rep.Restored, rep.Present, rep.Expired, len(rep.Problems))
			if err == nil && len(rep.Problems) > 0 {
				// What could be restored was; the exit status tells a
				// script that something needs a look.
				err = fmt.Errorf("%d problems (listed above)", len(rep.Problems))
			}
			return err
		})
}

func gcCmd(args []string, stdout, stderr io.Writer) error {
	var dryRun bool
	var grace time.Duration
	return operatorCommand("gc",
		"Removes the objects of expired and deleted Binaries, and orphan objects older than the grace period.",
		args, stdout, stderr,
		func(fs *flag.FlagSet) {
			fs.BoolVar(&dryRun, "dry-run", false, "list what would be removed, remove nothing")
			config.DurationFlag(fs, &grace, "grace", operator.DefaultGrace, "keep unreferenced objects younger than this (uploads in flight)")
		},
		func(ctx context.Context, cfg config.Config, b *app.Backends) error {
			prog := newProgress(stderr, "objects scanned")
			rep, err := operator.GC(ctx, b.Objects, b.Catalog, operator.GCOptions{Grace: grace, DryRun: dryRun, Progress: prog.report})
			prog.done(rep.Scanned)
			verb := "removed"
			if dryRun {
				verb = "would remove"
			}
			for _, r := range rep.Removed {
				fmt.Fprintf(stdout, "%s %s\n", verb, r)
			}
			for _, k := range rep.AbortedUploads {
				fmt.Fprintf(stdout, "%s %s (unfinished upload)\n", verb, k)
			}
			for _, k := range rep.Leased {
				fmt.Fprintf(stdout, "kept %s (a download is reading it; a later gc removes it)\n", k)
			}
			for _, w := range rep.Warnings {
				fmt.Fprintf(stderr, "gc: warning: %s\n", w)
			}
			aborted := "aborted"
			if dryRun {
				aborted = "would be aborted"
			}
			fmt.Fprintf(stdout, "gc: %d objects scanned, %d kept, %d %s, %d unfinished uploads %s\n",
				rep.Scanned, rep.Kept, len(rep.Removed), verb, len(rep.AbortedUploads), aborted)
			return err
		})
}

// checkFilename refuses a download filename that is a path or carries
// control characters (the gateway's $import cleans such a name; a person at
// the command line is told instead).
func checkFilename(name string) error {
	bad := name == "." || name == ".." || len(name) > 255 || strings.ContainsAny(name, `/\`) ||
		strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f })
	if name != "" && (bad || strings.TrimSpace(name) != name) {
		return fmt.Errorf("%w: --filename %q is not a plain file name (no path, no control characters, at most 255 bytes)", app.ErrUsage, name)
	}
	return nil
}

// progress prints count and rate on a terminal, at most a few times a second.
type progress func(done int)

func newProgress(w io.Writer, what string) progress {
	f, ok := w.(*os.File)
	tty := false
	if ok {
		if st, err := f.Stat(); err == nil {
			tty = st.Mode()&os.ModeCharDevice != 0
		}
	}
	start, last := time.Now(), time.Time{}
	return func(done int) {
		if !tty || time.Since(last) < 200*time.Millisecond {
			return
		}
		last = time.Now()
		rate := float64(done) / time.Since(start).Seconds()
		fmt.Fprintf(w, "\r%d %s (%.0f/s)   ", done, what, rate)
	}
}

func (p progress) report(done int) { p(done) }

func (p progress) done(n int) { p(n) }

// localBaseURL is the gateway's URL on this host for a listen address, for
// the download URLs import prints when GATEWAY_BASE_URL is not set.
func localBaseURL(listen string) string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "http://localhost" + listen
	}
	switch host {
	case "", "0.0.0.0", "::":
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}
