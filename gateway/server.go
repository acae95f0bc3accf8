// Package gateway is the HTTP face of the service: echo routes, FHIR
// representations, error mapping, access checks and audit. It sees storage
// and presigning only through their interfaces; no AWS or Redis type enters.
package gateway

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"

	"fhir-binary-gateway/config"
	"fhir-binary-gateway/gateway/audit"
	"fhir-binary-gateway/gateway/auth"
	"fhir-binary-gateway/presign"
	"fhir-binary-gateway/storage"
	"fhir-binary-gateway/storage/lifecycle"
)

// Deps is everything the gateway is built from.
type Deps struct {
	Config  config.Config
	Objects storage.ObjectStore
	Catalog storage.Catalog
	// Presigner issues redirect URLs; nil means every download is streamed.
	Presigner presign.Presigner
	// SignedURLs, when the Presigner is the gateway's own HMAC signer,
	// checks a URL it signed so the gateway can serve it.
	SignedURLs presign.Verifier
	Logger     *slog.Logger
	// Now is the clock (tests move it); nil means time.Now.
	Now func() time.Time
	// Version is the build's version string.
	Version string
	// Metrics is where the gateway registers its metrics and what /metrics
	// serves; nil means a registry of its own.
	Metrics *prometheus.Registry
	// Verifier checks bearer tokens; nil means GATEWAY_AUTH=none.
	Verifier auth.Verifier
	// Audit takes one AuditEvent per access; nil drops them.
	Audit audit.Sink
	// Tracer makes a span of every request (see traced); nil: tracing off.
	Tracer trace.TracerProvider
}

// Server is the gateway's HTTP handler.
type Server struct {
	cfg      config.Config
	objects  storage.ObjectStore
	catalog  storage.Catalog
	binaries *lifecycle.Binaries
	signer   presign.Presigner
	signed   presign.Verifier
	log      *slog.Logger
	now      func() time.Time
	version  string
	echo     *echo.Echo
	metrics  *httpMetrics
	verifier auth.Verifier
	audit    audit.Sink
	trusted  map[string]bool
	tracer   trace.Tracer // nil: tracing off
}

// New builds the Server and its routes.
func New(d Deps) *Server {
	s := &Server{
		cfg:      d.Config,
		objects:  d.Objects,
		catalog:  d.Catalog,
		signer:   d.Presigner,
		signed:   d.SignedURLs,
		log:      d.Logger,
		now:      d.Now,
		version:  d.Version,
		verifier: d.Verifier,
		audit:    d.Audit,
		trusted:  map[string]bool{},
	}
	if s.audit == nil {
		s.audit = audit.Discard{}
	}
	s.binaries = lifecycle.New(d.Objects, d.Catalog, lifecycle.Options{
		MaxUploadSize:    d.Config.MaxUploadSize,
		DefaultRetention: d.Config.DefaultRetention,
		MaxRetention:     d.Config.MaxRetention,
		ImportPrefixes:   d.Config.ImportPrefixes,
		StoreGzip:        d.Config.StoreGzip,
		BackendTimeout:   s.backendTimeout(),
		Now:              d.Now,
		Log:              d.Logger,
	})
	for _, c := range d.Config.TrustedClients {
		s.trusted[c] = true
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	reg := d.Metrics
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s.metrics = newHTTPMetrics(reg)
	e := echo.New()
	e.HideBanner, e.HidePort = true, true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = ipExtractor(d.Config.TrustedProxies)
	e.Use(s.requestID)
	if d.Tracer != nil {
		s.tracer = d.Tracer.Tracer(TracerName)
		e.Use(s.traced)
	}
	// CORS before the request bound, so a browser app can read the 414 too.
	e.Use(s.observe, s.cors(), s.boundRequest, s.recoverPanics)
	s.routes(e)
	e.GET("/metrics", metricsHandler(reg))
	s.echo = e
	return s
}

// ServeHTTP makes the Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

func (s *Server) routes(e *echo.Echo) {
	probe := []string{http.MethodGet, http.MethodHead}
	e.Match(probe, "/healthz", s.healthz)
	e.Match(probe, "/readyz", s.readyz)

	base := e.Group(s.cfg.BasePath)
	base.Match([]string{http.MethodGet, http.MethodHead}, "/_signed/*", s.signedDownload, s.audited)
	base.PUT("/_upload/*", s.uploadPart, s.audited)
	if s.cfg.BasePath != "" {
		// Health also answers under the base path, where an API gateway may
		// route only that prefix to the service.
		base.Match(probe, "/healthz", s.healthz)
		base.Match(probe, "/readyz", s.readyz)
	}

	fhir := base
	if s.cfg.MultiTenant {
		fhir = base.Group("/:tenant")
	}
	get := []string{http.MethodGet, http.MethodHead}
	fhir.Match(get, "/metadata", s.capabilities)
	fhir.Match(get, "/OperationDefinition/:id", s.operationDefinition)
	fhir.Match(get, "/StructureDefinition/:id", s.readStructureDefinition)
	fhir.Match(get, "/StructureDefinition", s.searchStructureDefinitions)
	for _, p := range []string{"/metadata", "/OperationDefinition/:id", "/StructureDefinition", "/StructureDefinition/:id", "/Binary", "/Binary/:id", "/Binary/:id/:op", "/Binary/:id/_history/:vid"} {
		fhir.OPTIONS(p, s.options)
	}
	// Every Binary route checks the bearer token and writes an AuditEvent.
	fhir.POST("/Binary", s.create, s.guard)
	fhir.GET("/Binary", s.search, s.guard)
	fhir.DELETE("/Binary", s.conditionalDelete, s.guard)
	fhir.POST("/Binary/_search", s.searchForm, s.guard)
	fhir.POST("/Binary/"+opUpload, s.uploadStart, s.guard)
	fhir.GET("/Binary/"+opUpload+"/:id", s.uploadStatus, s.guard)
	fhir.POST("/Binary/"+opUpload+"/:id", s.uploadComplete, s.guard)
	fhir.DELETE("/Binary/"+opUpload+"/:id", s.uploadAbort, s.guard)
	fhir.POST("/Binary/:op", s.importOp, s.guard)
	fhir.Match(get, "/Binary/:id", s.read, s.guard)
	fhir.PUT("/Binary/:id", s.update, s.guard)
	fhir.DELETE("/Binary/:id", s.remove, s.guard)
	// A literal route, so that POST on another /Binary/{id}/{op} stays a
	// 405 the router answers (before any token check).
	fhir.POST("/Binary/:id/"+opExpunge, s.expunge, s.guard)
	fhir.Match(get, "/Binary/:id/:op", s.operation, s.guard)
	fhir.Match(get, "/Binary/:id/_history/:vid", s.vread, s.guard)
}

// healthz answers while the process can serve at all.
func (s *Server) healthz(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 only when the catalog and the object store both answer.
func (s *Server) readyz(c echo.Context) error {
	// Both at once, each with its own deadline: a hung Redis must not use
	// up the time S3 has to answer (and be blamed on it).
	ping := func(p func(context.Context) error) <-chan error {
		done := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(c.Request().Context(), s.backendTimeout())
			defer cancel()
			done <- p(ctx)
		}()
		return done
	}
	catalogErr, objectsErr := ping(s.catalog.Ping), ping(s.objects.Ping)
	status := map[string]string{"catalog": "ok", "objects": "ok"}
	ready := true
	if err := <-catalogErr; err != nil {
		status["catalog"], ready = err.Error(), false
	}
	if err := <-objectsErr; err != nil {
		status["objects"], ready = err.Error(), false
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	if !ready {
		// Like every error, an OperationOutcome: one issue a backend down.
		var issues []outcomeIssue
		for _, name := range []string{"catalog", "objects"} {
			if status[name] != "ok" {
				issues = append(issues, outcomeIssue{Severity: "error", Code: "transient", Diagnostics: name + ": " + status[name]})
			}
		}
		c.Response().Header().Set("Retry-After", "2")
		body, err := json.Marshal(OperationOutcome{ResourceType: "OperationOutcome", Issue: issues})
		if err != nil {
			return err
		}
		return c.Blob(http.StatusServiceUnavailable, mimeFHIRJSON, body)
	}
	return c.JSON(http.StatusOK, status)
}

func (s *Server) backendTimeout() time.Duration {
	if s.cfg.BackendTimeout > 0 {
		return s.cfg.BackendTimeout
	}
	return 2 * time.Second
}

// catalogCtx bounds one catalog call so a hung Redis gives 503, not a hang.
func (s *Server) catalogCtx(c echo.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(c.Request().Context(), s.backendTimeout())
}

// baseURL is the external base of the FHIR routes (before /Binary).
func (s *Server) baseURL(c echo.Context) string {
	base := s.cfg.BaseURL
	if base == "" {
		base = c.Scheme() + "://" + c.Request().Host + s.cfg.BasePath
	}
	if t := c.Param("tenant"); s.cfg.MultiTenant && t != "" {
		base += "/" + t
	}
	return base
}

// rootURL is the external base without the tenant segment (signed URLs).
func (s *Server) rootURL(c echo.Context) string {
	if s.cfg.BaseURL != "" {
		return s.cfg.BaseURL
	}
	return c.Scheme() + "://" + c.Request().Host + s.cfg.BasePath
}
