package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"fhir-binary-gateway/cmd/fhir-binary-gateway/app"
	"fhir-binary-gateway/config"
	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/lifecycle"
	"fhir-binary-gateway/storage/operator"
)

// importManifestCmd is $import-manifest from the command line: every file
// of a Bulk Data manifest registered at once, all or nothing, through the
// same lifecycle as the HTTP operation (import prefixes, retention, the
// export's tag). It prints the answer manifest.
func importManifestCmd(args []string, stdout, stderr io.Writer) error {
	var securityContext, expires, owner, tenant string
	var fs *flag.FlagSet
	return operatorCommand("import-manifest",
		"Registers every file of a Bulk Data complete-status manifest (FILE, or - for stdin) as Binaries,\nall or nothing, each tagged with the export, and prints the manifest with each url the\nBinary's $binary-access-read. Usage: fhir-binary-gateway import-manifest [flags] FILE",
		args, stdout, stderr,
		func(f *flag.FlagSet) {
			fs = f
			f.StringVar(&securityContext, "security-context", "", "securityContext reference, e.g. Group/example-group")
			f.StringVar(&expires, "expires-at", "", "RFC 3339 instant after which the Binaries are gone")
			f.StringVar(&owner, "owner", "", "client id the Binaries belong to")
			f.StringVar(&tenant, "tenant", "", "tenant (multi-tenant mode)")
		},
		func(ctx context.Context, cfg config.Config, b *app.Backends) error {
			if fs.NArg() != 1 {
				return fmt.Errorf("%w: import-manifest needs the manifest file after the flags (- for stdin)", app.ErrUsage)
			}
			tmpl := operator.ImportRequest{SecurityContext: securityContext, Owner: owner, Tenant: tenant}
			if expires != "" {
				t, err := time.Parse(time.RFC3339Nano, expires)
				if err != nil {
					return fmt.Errorf("%w: --expires-at %q is not an RFC 3339 instant", app.ErrUsage, expires)
				}
				tmpl.ExpiresAt = t
			}
			in := io.Reader(os.Stdin)
			if name := fs.Arg(0); name != "-" {
				f, err := os.Open(name)
				if err != nil {
					return err
				}
				defer f.Close()
				in = f
			}
			m, err := lifecycle.ParseManifest(in, 64<<20)
			if err != nil {
				return err
			}
			if err := m.ResolveKeys(cfg.S3Bucket, cfg.S3Prefix); err != nil {
				return err
			}
			tag := storage.Coding{System: lifecycle.ExportTagSystem, Code: m.ExportCode()}
			reqs := make([]operator.ImportRequest, len(m.Files))
			for i, f := range m.Files {
				r := tmpl
				r.Key, r.Tags = f.Key, []storage.Coding{tag}
				reqs[i] = r
			}
			l := lifecycle.New(b.Objects, b.Catalog, lifecycle.Options{
				DefaultRetention: cfg.DefaultRetention,
				MaxRetention:     cfg.MaxRetention,
				ImportPrefixes:   cfg.ImportPrefixes,
			})
			bins, err := l.ImportAll(ctx, reqs)
			if err != nil {
				return fmt.Errorf("nothing was registered: %w", err)
			}
			base := cfg.BaseURL
			if base == "" {
				base = localBaseURL(cfg.Listen) + cfg.BasePath
			}
			if tenant != "" {
				base += "/" + tenant
			}
			i := 0
			out, err := m.Answer(func(lifecycle.ExportFile) string {
				u := base + "/Binary/" + bins[i].ID + "/$binary-access-read"
				i++
				return u
			}, cfg.Auth == config.AuthJWT, &tag)
			if err != nil {
				return err
			}
			_, err = stdout.Write(out)
			fmt.Fprintf(stderr, "import-manifest: %d files registered, tag %s|%s\n", len(bins), tag.System, tag.Code)
			return err
		})
}
