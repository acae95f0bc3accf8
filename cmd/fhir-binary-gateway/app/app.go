// Package app builds a running gateway from a Config: it picks the object
// store (S3 or the data dir), the catalog (Redis or bbolt) and the presigner
// that goes with the store, and hands them to the gateway. main and the
// end-to-end tests both start the service through here.
package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/gateway"
	"fhir-binary-gateway/gateway/audit"
	"fhir-binary-gateway/gateway/auth"
	"fhir-binary-gateway/presign"
	"fhir-binary-gateway/presign/localsign"
	"fhir-binary-gateway/presign/s3presign"
	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/boltcatalog"
	"fhir-binary-gateway/storage/fsstore"
	"fhir-binary-gateway/storage/instrument"
	"fhir-binary-gateway/storage/rediscatalog"
	"fhir-binary-gateway/storage/s3store"
)

// Backends are the stores a gateway runs on.
type Backends struct {
	Objects    storage.ObjectStore
	Catalog    storage.Catalog
	Presigner  presign.Presigner
	SignedURLs presign.Verifier // the embedded store's signed URLs; nil with S3
	// Describe says in a few words where objects and records live.
	Describe string
	// Verifier checks bearer tokens (nil: GATEWAY_AUTH=none) and Audit
	// takes AuditEvents; OpenAccess sets both.
	Verifier auth.Verifier
	Audit    audit.Sink
	// Tracer is the OpenTelemetry tracer provider (OpenTracing); nil when
	// tracing is off.
	Tracer  *sdktrace.TracerProvider
	closers []func() error
}

// Close releases the catalog, the token verifier and the audit log.
func (b *Backends) Close() error {
	var errs []error
	for _, c := range b.closers {
		errs = append(errs, c())
	}
	if b.Catalog != nil {
		errs = append(errs, b.Catalog.Close())
	}
	return errors.Join(errs...)
}

// OpenAccess opens what serving needs besides the stores: the token
// verifier (GATEWAY_AUTH=jwt) and the audit log ("-" is stdout).
func (b *Backends) OpenAccess(cfg config.Config, stdout io.Writer) error {
	sink, err := audit.Open(cfg.AuditLog, stdout)
	if err != nil {
		return fmt.Errorf("GATEWAY_AUDIT_LOG: %w", err)
	}
	b.Audit = sink
	b.closers = append(b.closers, sink.Close)
	if cfg.Auth != config.AuthJWT {
		return nil
	}
	v, err := auth.NewJWT(auth.Options{
		JWKSURL:     cfg.JWKSURL,
		JWKSFile:    cfg.JWKSFile,
		Issuer:      cfg.JWTIssuer,
		Audience:    cfg.JWTAudience,
		TenantClaim: cfg.TenantClaim,
	})
	if err != nil {
		setting := "GATEWAY_JWT_JWKS_URL"
		if cfg.JWKSFile != "" {
			setting = "GATEWAY_JWT_JWKS_FILE"
		}
		return fmt.Errorf("%s: %w", setting, err)
	}
	b.Verifier = v
	b.closers = append(b.closers, func() error { v.Close(); return nil })
	return nil
}

// OpenBackends opens what cfg names. Errors name the setting at fault.
func OpenBackends(ctx context.Context, cfg config.Config) (*Backends, error) {
	b := &Backends{}
	var objDesc, catDesc string
	if cfg.UsesS3() {
		st, err := s3store.New(ctx, s3store.Options{
			Bucket:    cfg.S3Bucket,
			Prefix:    cfg.S3Prefix,
			PathStyle: cfg.S3PathStyle,
			Timeout:   cfg.BackendTimeout,
		})
		if err != nil {
			return nil, fmt.Errorf("GATEWAY_S3_BUCKET: %w", err)
		}
		b.Objects = st
		b.Presigner = s3presign.New(st, cfg.S3PublicEndpoint)
		reads := "reads through the SDK"
		if cfg.S3Splice != config.SpliceOff {
			// Signed for the endpoint the store itself talks to, not the public one.
			if ok, why := st.SpliceReads(ctx, s3presign.New(st, "")); ok {
				reads = "spliced reads"
			} else {
				reads += ": " + why
			}
		}
		objDesc = "s3://" + cfg.S3Bucket + "/" + cfg.S3Prefix + " (" + reads + ")"
	} else {
		dir := filepath.Join(cfg.DataDir, "objects")
		st, err := fsstore.New(dir)
		if err != nil {
			return nil, fmt.Errorf("GATEWAY_DATA_DIR: %w", err)
		}
		b.Objects = st
		secret := []byte(cfg.PresignSecret)
		if len(secret) == 0 {
			if secret, err = localsign.LoadOrCreateSecret(filepath.Join(cfg.DataDir, "presign.key")); err != nil {
				return nil, fmt.Errorf("GATEWAY_DATA_DIR: %w", err)
			}
		}
		signer := localsign.New(secret)
		b.Presigner = signer
		b.SignedURLs = signer
		objDesc = dir
	}
	if cfg.UsesRedis() {
		cat, err := rediscatalog.New(ctx, rediscatalog.Options{
			URL:          cfg.RedisURL,
			Namespace:    cfg.RedisPrefix,
			Timeout:      cfg.BackendTimeout,
			TombstoneTTL: cfg.TombstoneTTL,
		})
		if err != nil {
			return nil, fmt.Errorf("GATEWAY_REDIS_URL: %w", err)
		}
		b.Catalog = cat
		catDesc = "redis " + redactedURL(cfg.RedisURL)
	} else {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return nil, fmt.Errorf("GATEWAY_DATA_DIR: %w", err)
		}
		path := filepath.Join(cfg.DataDir, "catalog.db")
		cat, err := boltcatalog.Open(path, boltcatalog.Options{})
		if err != nil {
			return nil, fmt.Errorf("GATEWAY_DATA_DIR: %w", err)
		}
		b.Catalog = cat
		catDesc = path
	}
	b.Describe = fmt.Sprintf("objects: %s, catalog: %s", objDesc, catDesc)
	return b, nil
}

// StartRetry bounds how long serve keeps retrying a Redis that does not
// answer at start (a failover, a cache still booting next to the service):
// long enough for an ElastiCache failover, short enough that a wrong address
// still ends the process within a minute, with every attempt logged.
const StartRetry = time.Minute

// OpenBackendsRetrying is OpenBackends for a long-running server: while a
// store answers "unreachable" (storage.ErrUnavailable) it tries again, with
// pauses growing from 250 ms to 5 s, until wait has passed or ctx ends. Any
// other error (a bad URL, a refused password) is returned at once.
func OpenBackendsRetrying(ctx context.Context, cfg config.Config, wait time.Duration, log *slog.Logger) (*Backends, error) {
	deadline := time.Now().Add(wait)
	pause := 250 * time.Millisecond
	for attempt := 1; ; attempt++ {
		b, err := OpenBackends(ctx, cfg)
		if err == nil || !errors.Is(err, storage.ErrUnavailable) {
			return b, err
		}
		if time.Now().Add(pause).After(deadline) {
			return nil, fmt.Errorf("%w (still unreachable after %d attempts in %s)", err, attempt, wait)
		}
		log.Warn("a backing store is unreachable at start; retrying", "attempt", attempt,
			"retry_in", pause.String(), "gives_up_in", time.Until(deadline).Round(time.Second).String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(pause):
		}
		pause = min(2*pause, 5*time.Second)
	}
}

// NewServer builds the gateway over opened backends, with the stores
// wrapped in metrics (and in spans when b.Tracer is set).
func NewServer(cfg config.Config, b *Backends, log *slog.Logger, version string) *gateway.Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := instrument.NewMetrics(reg)
	var tp trace.TracerProvider
	if b.Tracer != nil { // a nil *TracerProvider must not become a non-nil interface
		tp = b.Tracer
	}
	m.Trace(tp)
	objectsName, catalogName := "filesystem", "bbolt"
	if cfg.UsesS3() {
		objectsName = "s3"
	}
	if cfg.UsesRedis() {
		catalogName = "redis"
	}
	return gateway.New(gateway.Deps{
		Config:     cfg,
		Objects:    m.Objects(b.Objects, objectsName),
		Catalog:    m.Catalog(b.Catalog, catalogName),
		Metrics:    reg,
		Presigner:  b.Presigner,
		SignedURLs: b.SignedURLs,
		Verifier:   b.Verifier,
		Audit:      b.Audit,
		Logger:     log,
		Version:    version,
		Tracer:     tp,
	})
}

func redactedURL(v string) string {
	u, err := url.Parse(v)
	if err != nil {
		return "<redis>"
	}
	return u.Redacted()
}

// ErrUsage marks a command-line mistake (exit status 2).
var ErrUsage = errors.New("usage")
