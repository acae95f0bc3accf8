// Package config turns the GATEWAY_* environment and the command-line flags
// into one validated Config. Every setting is both an environment variable and
// a flag of the same meaning; a flag wins over the environment.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Download modes.
const (
	ModeStream   = "stream"
	ModeRedirect = "redirect"
	ModeAuto     = "auto"
)

// Auth modes.
const (
	AuthNone = "none"
	AuthJWT  = "jwt"
)

// Config is every setting of the gateway.
type Config struct {
	Listen           string
	BaseURL          string
	BasePath         string
	DataDir          string
	S3Bucket         string
	S3Prefix         string
	S3PathStyle      bool
	S3PublicEndpoint string
	RedisURL         string
	DownloadMode     string
	RedirectMinSize  int64
	PresignTTL       time.Duration
	InlineMaxSize    int64
	MaxUploadSize    int64
	DefaultRetention time.Duration
	Auth             string
	JWKSURL          string
	JWKSFile         string
	JWTIssuer        string
	JWTAudience      string
	AuditLog         string

	// Beyond the contract's table (documented in the README).
	PresignSecret   string        // HMAC key for the filesystem store's signed URLs; empty: kept in the data dir
	BackendTimeout  time.Duration // per Redis call and S3 connect/first byte; past it: 503
	ShutdownGrace   time.Duration // how long SIGTERM waits for in-flight transfers
	TrustedClients  []string      // clients that may import on behalf of others
	MultiTenant     bool          // routes under /{tenant}/...
	TenantClaim     string        // token claim naming the tenant
	TombstoneTTL    time.Duration // how long a deleted/expired id keeps answering 410
	RedisPrefix     string        // key prefix in Redis, so gateways can share one server
	LogLevel        string        // debug, info, warn, error
	ReadHeaderLimit time.Duration // http.Server ReadHeaderTimeout

	// Settings the open issues add (their behaviour lands with each issue).
	TrustedProxies   []netip.Prefix // peers whose X-Forwarded-For is believed
	ImportPrefixes   []string       // key prefixes $import and $import-manifest may register
	CORSOrigins      []string       // browser origins allowed by CORS
	StoreGzip        []string       // media types stored gzip-compressed
	UploadSessionTTL time.Duration  // longest life of an upload session
	CompleteTimeout  time.Duration  // floor of an upload complete's time limit (grown with the size)
	IdleTimeout      time.Duration  // http.Server IdleTimeout (longer than the load balancer's)
	MaxRetention     time.Duration  // longest expiry a Binary may have (0: no cap)
	S3Splice         string         // auto: splice streamed downloads from a plain-HTTP S3 endpoint; off: always the SDK's reads
}

// setting describes one variable/flag pair.
type setting struct {
	env, flag, def, usage string
	set                   func(c *Config, v string) error
}

func settings() []setting {
	return []setting{
		{"GATEWAY_LISTEN", "listen", ":8080", "listen address", func(c *Config, v string) error { c.Listen = v; return nonEmpty(v) }},
		{"GATEWAY_BASE_URL", "base-url", "", "external absolute base URL (default: from the request)", setBaseURL},
		{"GATEWAY_BASE_PATH", "base-path", "", "path prefix of the FHIR routes, e.g. /uscore/v1/bulk-data", setBasePath},
		{"GATEWAY_DATA_DIR", "data-dir", "./data", "where the embedded default keeps objects and metadata", func(c *Config, v string) error { c.DataDir = v; return nonEmpty(v) }},
		{"GATEWAY_S3_BUCKET", "s3-bucket", "", "S3 bucket for objects (empty: embedded filesystem store)", func(c *Config, v string) error { c.S3Bucket = v; return nil }},
		{"GATEWAY_S3_PREFIX", "s3-prefix", "", "key prefix inside the bucket", setS3Prefix},
		{"GATEWAY_S3_PATH_STYLE", "s3-path-style", "false", "path-style S3 addressing (LocalStack, MinIO)", func(c *Config, v string) (err error) { c.S3PathStyle, err = parseBool(v); return }},
		{"GATEWAY_S3_PUBLIC_ENDPOINT", "s3-public-endpoint", "", "endpoint redirect URLs are signed for", func(c *Config, v string) error { c.S3PublicEndpoint = v; return absURL(v) }},
		{"GATEWAY_REDIS_URL", "redis-url", "", "redis:// or rediss:// URL for metadata (empty: embedded store)", setRedisURL},
		{"GATEWAY_DOWNLOAD_MODE", "download-mode", ModeAuto, "stream, redirect or auto", setMode},
		{"GATEWAY_REDIRECT_MIN_SIZE", "redirect-min-size", "8MiB", "in auto mode, objects at least this large are redirected", func(c *Config, v string) (err error) { c.RedirectMinSize, err = ParseSize(v); return }},
		{"GATEWAY_PRESIGN_TTL", "presign-ttl", "5m", "longest life of a presigned URL", func(c *Config, v string) (err error) { c.PresignTTL, err = positiveDuration(v); return }},
		{"GATEWAY_INLINE_MAX_SIZE", "inline-max-size", "1MiB", "largest content returned base64 in Binary.data", func(c *Config, v string) (err error) { c.InlineMaxSize, err = ParseSize(v); return }},
		{"GATEWAY_MAX_UPLOAD_SIZE", "max-upload-size", "5GiB", "larger uploads get 413", func(c *Config, v string) (err error) { c.MaxUploadSize, err = positiveSize(v); return }},
		{"GATEWAY_DEFAULT_RETENTION", "default-retention", "0", "expiry given to new Binaries that name none (0: none)", func(c *Config, v string) (err error) { c.DefaultRetention, err = nonNegDuration(v); return }},
		{"GATEWAY_AUTH", "auth", AuthNone, "none or jwt", setAuth},
		{"GATEWAY_JWT_JWKS_URL", "jwt-jwks-url", "", "URL of the token-signing keys (JWKS)", func(c *Config, v string) error { c.JWKSURL = v; return absURL(v) }},
		{"GATEWAY_JWT_JWKS_FILE", "jwt-jwks-file", "", "file holding the token-signing keys (JWKS)", func(c *Config, v string) error { c.JWKSFile = v; return nil }},
		{"GATEWAY_JWT_ISSUER", "jwt-issuer", "", "required iss", func(c *Config, v string) error { c.JWTIssuer = v; return nil }},
		{"GATEWAY_JWT_AUDIENCE", "jwt-audience", "", "required aud", func(c *Config, v string) error { c.JWTAudience = v; return nil }},
		{"GATEWAY_AUDIT_LOG", "audit-log", "-", "where AuditEvent lines go (- for stdout, or a file path)", func(c *Config, v string) error { c.AuditLog = v; return nonEmpty(v) }},
		{"GATEWAY_PRESIGN_SECRET", "presign-secret", "", "HMAC key for signed URLs of the filesystem store (empty: generated once into the data dir)", func(c *Config, v string) error { c.PresignSecret = v; return nil }},
		{"GATEWAY_BACKEND_TIMEOUT", "backend-timeout", "2s", "longest wait for Redis or S3 before answering 503", func(c *Config, v string) (err error) { c.BackendTimeout, err = positiveDuration(v); return }},
		{"GATEWAY_SHUTDOWN_GRACE", "shutdown-grace", "30s", "how long SIGTERM lets in-flight transfers finish", func(c *Config, v string) (err error) { c.ShutdownGrace, err = nonNegDuration(v); return }},
		{"GATEWAY_TRUSTED_CLIENTS", "trusted-clients", "", "comma-separated client ids that may import for other clients", func(c *Config, v string) error { c.TrustedClients = splitList(v); return nil }},
		{"GATEWAY_MULTI_TENANT", "multi-tenant", "false", "serve FHIR routes under /{tenant}/", func(c *Config, v string) (err error) { c.MultiTenant, err = parseBool(v); return }},
		{"GATEWAY_TENANT_CLAIM", "tenant-claim", "tenant", "token claim that names the tenant", func(c *Config, v string) error { c.TenantClaim = v; return nonEmpty(v) }},
		{"GATEWAY_TOMBSTONE_TTL", "tombstone-ttl", "720h", "how long a deleted or expired id keeps answering 410", func(c *Config, v string) (err error) { c.TombstoneTTL, err = positiveDuration(v); return }},
		{"GATEWAY_REDIS_PREFIX", "redis-prefix", "fbg", "prefix of every Redis key this gateway writes", func(c *Config, v string) error { c.RedisPrefix = v; return nonEmpty(v) }},
		{"GATEWAY_LOG_LEVEL", "log-level", "info", "debug, info, warn or error", setLogLevel},
		{"GATEWAY_READ_HEADER_TIMEOUT", "read-header-timeout", "10s", "longest time to read request headers", func(c *Config, v string) (err error) { c.ReadHeaderLimit, err = positiveDuration(v); return }},
		{"GATEWAY_TRUSTED_PROXIES", "trusted-proxies", "", "comma-separated CIDRs whose X-Forwarded-For is believed (the load balancer)", setTrustedProxies},
		{"GATEWAY_IMPORT_PREFIXES", "import-prefixes", "", "comma-separated key prefixes $import and $import-manifest may register (default: the gateway's own import area)", setImportPrefixes},
		{"GATEWAY_CORS_ORIGINS", "cors-origins", "", "comma-separated browser origins allowed by CORS", func(c *Config, v string) error { c.CORSOrigins = splitList(v); return nil }},
		{"GATEWAY_STORE_GZIP", "store-gzip", "application/fhir+ndjson,application/ndjson,application/x-ndjson", "media types stored gzip-compressed (empty: none)", func(c *Config, v string) error { c.StoreGzip = splitList(v); return nil }},
		{"GATEWAY_UPLOAD_SESSION_TTL", "upload-session-ttl", "24h", "longest life of an upload session", func(c *Config, v string) (err error) { c.UploadSessionTTL, err = positiveDuration(v); return }},
		{"GATEWAY_COMPLETE_TIMEOUT", "complete-timeout", "60s", "longest time an upload session's complete may take (S3 copy and read-back), grown by 1 s per 50 MiB of the upload", func(c *Config, v string) (err error) { c.CompleteTimeout, err = positiveDuration(v); return }},
		{"GATEWAY_IDLE_TIMEOUT", "idle-timeout", "10m", "how long an idle keep-alive connection stays open (must exceed the load balancer's idle timeout)", func(c *Config, v string) (err error) { c.IdleTimeout, err = positiveDuration(v); return }},
		{"GATEWAY_S3_SPLICE", "s3-splice", SpliceOff, "off: streamed downloads read through the SDK and a 1 MiB copy; auto: from a plain-HTTP S3 endpoint they are spliced socket to socket (more CPU per GiB in make bench on both S3 servers)", setSplice},
		{"GATEWAY_MAX_RETENTION", "max-retention", "0", "longest expiry a Binary may have, and the life given to one that names none (0: no cap)", func(c *Config, v string) (err error) { c.MaxRetention, err = nonNegDuration(v); return }},
	}
}

// Load reads the settings from getenv, then from args (flags, without the
// program name). The error names the setting, on one line.
func Load(args []string, getenv func(string) string) (Config, error) {
	return load(flag.NewFlagSet("serve", flag.ContinueOnError), args, getenv)
}

// LoadInto registers the settings as flags on fs (for subcommands that add
// flags of their own), parses args and returns the Config.
func LoadInto(fs *flag.FlagSet, args []string, getenv func(string) string) (Config, error) {
	return load(fs, args, getenv)
}

func load(fs *flag.FlagSet, args []string, getenv func(string) string) (Config, error) {
	var c Config
	all := settings()
	values := make(map[string]*string, len(all))
	for _, s := range all {
		v := s.def
		if e, ok := lookup(getenv, s.env); ok {
			v = e
		}
		p := new(string)
		fs.StringVar(p, s.flag, v, fmt.Sprintf("%s (env %s, default %q)", s.usage, s.env, s.def))
		values[s.env] = p
	}
	fs.SetOutput(io.Discard)
	var flagErr flagValues
	flagErr.watch(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return c, err
		}
		return c, flagErr.explain(err)
	}
	for _, s := range all {
		v := strings.TrimSpace(*values[s.env])
		if err := s.set(&c, v); err != nil {
			return c, fmt.Errorf("%s (--%s): %v", s.env, s.flag, err)
		}
	}
	return c, c.validate()
}

// Usage writes the settings' help to w.
func Usage(w io.Writer) {
	for _, s := range settings() {
		def := fmt.Sprintf(" (default %q)", s.def)
		switch {
		case strings.Contains(s.usage, "(default"):
			def = "" // the usage says it in words
		case s.def == "":
			def = " (default: none)"
		}
		fmt.Fprintf(w, "  --%-22s %-28s %s%s\n", s.flag, s.env, s.usage, def)
	}
}

func (c Config) validate() error {
	if c.Auth == AuthJWT {
		if c.JWKSURL == "" && c.JWKSFile == "" {
			return errors.New("GATEWAY_JWT_JWKS_URL: GATEWAY_AUTH=jwt needs GATEWAY_JWT_JWKS_URL or GATEWAY_JWT_JWKS_FILE")
		}
		if c.JWKSURL != "" && c.JWKSFile != "" {
			return errors.New("GATEWAY_JWT_JWKS_FILE: set only one of GATEWAY_JWT_JWKS_URL and GATEWAY_JWT_JWKS_FILE")
		}
	}
	if c.MultiTenant && c.Auth != AuthJWT {
		// Without tokens the tenant in the path would be the only guard.
		return errors.New("GATEWAY_MULTI_TENANT: multi-tenant mode needs GATEWAY_AUTH=jwt")
	}
	if c.S3Bucket == "" && (c.S3Prefix != "" || c.S3PublicEndpoint != "") {
		return errors.New("GATEWAY_S3_BUCKET: GATEWAY_S3_PREFIX and GATEWAY_S3_PUBLIC_ENDPOINT need a bucket")
	}
	return nil
}

// UsesS3 reports whether objects live in S3 rather than the data dir.
func (c Config) UsesS3() bool { return c.S3Bucket != "" }

// UsesRedis reports whether metadata lives in Redis rather than the data dir.
func (c Config) UsesRedis() bool { return c.RedisURL != "" }

func lookup(getenv func(string) string, k string) (string, bool) {
	v := getenv(k)
	return v, v != ""
}

func nonEmpty(v string) error {
	if v == "" {
		return errors.New("must not be empty")
	}
	return nil
}

func parseBool(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%q is not true or false", v)
	}
	return b, nil
}

func absURL(v string) error {
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an absolute http(s) URL", v)
	}
	return nil
}

func setBaseURL(c *Config, v string) error {
	if err := absURL(v); err != nil {
		return err
	}
	c.BaseURL = strings.TrimRight(v, "/")
	return nil
}

func setBasePath(c *Config, v string) error {
	v = strings.TrimRight(v, "/")
	if v != "" && !strings.HasPrefix(v, "/") {
		return fmt.Errorf("%q must start with /", v)
	}
	if strings.ContainsAny(v, "?#* \t") {
		return fmt.Errorf("%q is not a plain path", v)
	}
	c.BasePath = v
	return nil
}

func setS3Prefix(c *Config, v string) error {
	v = strings.TrimLeft(v, "/")
	if v != "" && !strings.HasSuffix(v, "/") {
		v += "/"
	}
	c.S3Prefix = v
	return nil
}

func setRedisURL(c *Config, v string) error {
	c.RedisURL = v
	if v == "" {
		return nil
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "redis" && u.Scheme != "rediss" && u.Scheme != "unix") {
		return fmt.Errorf("%q is not a redis://, rediss:// or unix:// URL", redactURL(v))
	}
	return nil
}

// redactURL hides a password so that it never reaches an error line.
func redactURL(v string) string {
	u, err := url.Parse(v)
	if err != nil {
		return "<unparseable>"
	}
	return u.Redacted()
}

func setMode(c *Config, v string) error {
	switch v {
	case ModeStream, ModeRedirect, ModeAuto:
		c.DownloadMode = v
		return nil
	}
	return fmt.Errorf("%q is not stream, redirect or auto", v)
}

// Values of GATEWAY_S3_SPLICE.
const (
	SpliceAuto = "auto"
	SpliceOff  = "off"
)

func setSplice(c *Config, v string) error {
	switch v {
	case SpliceAuto, SpliceOff:
		c.S3Splice = v
		return nil
	}
	return fmt.Errorf("%q is not auto or off", v)
}

func setAuth(c *Config, v string) error {
	switch v {
	case AuthNone, AuthJWT:
		c.Auth = v
		return nil
	}
	return fmt.Errorf("%q is not none or jwt", v)
}

func setLogLevel(c *Config, v string) error {
	switch strings.ToLower(v) {
	case "debug", "info", "warn", "error":
		c.LogLevel = strings.ToLower(v)
		return nil
	}
	return fmt.Errorf("%q is not debug, info, warn or error", v)
}

func setTrustedProxies(c *Config, v string) error {
	c.TrustedProxies = nil
	for _, p := range splitList(v) {
		if !strings.Contains(p, "/") {
			a, err := netip.ParseAddr(p)
			if err != nil {
				return fmt.Errorf("%q is not a CIDR such as 10.0.0.0/16", p)
			}
			p = netip.PrefixFrom(a, a.BitLen()).String()
		}
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return fmt.Errorf("%q is not a CIDR such as 10.0.0.0/16", p)
		}
		c.TrustedProxies = append(c.TrustedProxies, pfx.Masked())
	}
	return nil
}

func setImportPrefixes(c *Config, v string) error {
	c.ImportPrefixes = nil
	for _, p := range splitList(v) {
		p = strings.TrimLeft(p, "/")
		if p == "" || strings.Contains(p, "..") {
			return fmt.Errorf("%q is not a key prefix", p)
		}
		c.ImportPrefixes = append(c.ImportPrefixes, p)
	}
	return nil
}

func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func positiveDuration(v string) (time.Duration, error) {
	d, err := nonNegDuration(v)
	if err == nil && d == 0 {
		return 0, fmt.Errorf("%q must be more than zero", v)
	}
	return d, err
}

func nonNegDuration(v string) (time.Duration, error) {
	if v == "0" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 90s, 5m or 24h", v)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q must not be negative", v)
	}
	return d, nil
}

func positiveSize(v string) (int64, error) {
	n, err := ParseSize(v)
	if err == nil && n == 0 {
		return 0, fmt.Errorf("%q must be more than zero", v)
	}
	return n, err
}

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"TB", 1000 * 1000 * 1000 * 1000},
	{"B", 1},
}

// ParseSize reads 1048576, 1MiB, 1GiB (binary) or 1MB (decimal).
func ParseSize(v string) (int64, error) {
	s := strings.TrimSpace(v)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(s, u.suffix) {
			mult, s = u.mult, strings.TrimSpace(strings.TrimSuffix(s, u.suffix))
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a size such as 1048576, 1MiB or 1GiB", v)
	}
	if n > 0 && mult > 1 && n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is too large", v)
	}
	return n * mult, nil
}
