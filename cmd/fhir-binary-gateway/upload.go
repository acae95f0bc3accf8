package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"fhir-binary-gateway/cmd/fhir-binary-gateway/app"
	"fhir-binary-gateway/cmd/fhir-binary-gateway/uploadclient"
)

// uploadCmd is `fhir-binary-gateway upload --url BASE FILE`: a client of
// the gateway's upload sessions. A killed run resumes on the next.
func uploadCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("upload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o uploadclient.Options
	tokenEnv := "GATEWAY_TOKEN"
	quiet := false
	fs.StringVar(&o.BaseURL, "url", "", "the gateway's FHIR base URL, e.g. https://gw.example/fhir (required)")
	fs.StringVar(&o.ContentType, "content-type", "", "the Binary's contentType (default: from the file's extension)")
	fs.StringVar(&tokenEnv, "token-env", tokenEnv, "environment variable holding the bearer token")
	fs.IntVar(&o.Parallel, "parallel", 4, "parts in flight")
	fs.Int64Var(&o.PartSize, "part-size", 0, "part size in bytes (default: the gateway's)")
	fs.StringVar(&o.StateFile, "state", "", "where the session is kept between runs (default FILE.upload)")
	fs.BoolVar(&quiet, "quiet", false, "no progress bar")
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: fhir-binary-gateway upload --url BASE [flags] FILE\n\n"+
			"Uploads FILE as a Binary through an upload session: parts go straight to the store, in parallel;\n"+
			"a run that was interrupted resumes on the next. Prints the Binary's URL.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.BaseURL == "" || fs.NArg() != 1 {
		fs.Usage()
		return fmt.Errorf("%w: upload needs --url and one FILE", app.ErrUsage)
	}
	o.File = fs.Arg(0)
	o.Token = os.Getenv(tokenEnv)
	if !quiet {
		var mu sync.Mutex
		start := time.Now()
		o.Progress = func(sent, total int64) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprint(stderr, "\r"+progressBar(sent, total, time.Since(start)))
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	loc, err := uploadclient.Upload(ctx, o)
	if !quiet {
		fmt.Fprintln(stderr)
	}
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted: run the same command again to resume")
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, loc)
	return nil
}

func progressBar(sent, total int64, took time.Duration) string {
	const width = 30
	frac := 1.0
	if total > 0 {
		frac = float64(sent) / float64(total)
	}
	n := int(frac * width)
	rate := 0.0
	if s := took.Seconds(); s > 0 {
		rate = float64(sent) / s / (1 << 20)
	}
	return fmt.Sprintf("[%s%s] %5.1f%% %d/%d bytes %.1f MiB/s", strings.Repeat("#", n), strings.Repeat(".", width-n), frac*100, sent, total, rate)
}
