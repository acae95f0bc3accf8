package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"fhir-binary-gateway/cmd/fhir-binary-gateway/app"
	"fhir-binary-gateway/config"
	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/lifecycle"
)

// expungeCmd erases Binaries by id, as POST /Binary/{id}/$expunge does:
// every version's record and bytes, leaving a tombstone that answers 410.
func expungeCmd(args []string, stdout, stderr io.Writer) error {
	var tenant string
	var set *flag.FlagSet
	return operatorCommand("expunge",
		"Erases the Binaries named (ids as arguments): every version's record and bytes; a tombstone keeps answering 410.",
		args, stdout, stderr,
		func(fs *flag.FlagSet) {
			set = fs // the ids are its arguments once parsed
			fs.StringVar(&tenant, "tenant", "", "the tenant of the ids (multi-tenant mode)")
		},
		func(ctx context.Context, cfg config.Config, b *app.Backends) error {
			ids := set.Args()
			if len(ids) == 0 {
				return fmt.Errorf("%w: expunge needs at least one Binary id", app.ErrUsage)
			}
			l := lifecycle.New(b.Objects, b.Catalog, lifecycle.Options{BackendTimeout: cfg.BackendTimeout})
			var failed error
			for _, id := range ids {
				cur, err := l.Current(ctx, storage.Ref{Tenant: tenant, ID: id})
				if errors.Is(err, storage.ErrNotFound) {
					fmt.Fprintf(stderr, "expunge: Binary/%s is not known\n", id)
					failed = errors.New("some ids were not known")
					continue
				}
				if err == nil {
					err = l.Expunge(ctx, cur)
				}
				if err != nil {
					return fmt.Errorf("Binary/%s: %w", id, err)
				}
				fmt.Fprintf(stdout, "expunged Binary/%s\n", id)
			}
			return failed
		})
}
