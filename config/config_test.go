package config

import (
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := Load(nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != ":8080" || c.DataDir != "./data" || c.DownloadMode != ModeAuto || c.RedirectMinSize != 8<<20 ||
		c.PresignTTL != 5*time.Minute || c.InlineMaxSize != 1<<20 || c.MaxUploadSize != 5<<30 || c.DefaultRetention != 0 ||
		c.Auth != AuthNone || c.AuditLog != "-" || c.UsesS3() || c.UsesRedis() {
		t.Fatalf("defaults: %+v", c)
	}
}

func TestEnvAndFlags(t *testing.T) {
	c, err := Load([]string{"--presign-ttl=90s", "--base-path=/uscore/v1/bulk-data/"}, env(map[string]string{
		"GATEWAY_PRESIGN_TTL":       "10m",
		"GATEWAY_S3_BUCKET":         "b",
		"GATEWAY_S3_PREFIX":         "exports",
		"GATEWAY_REDIS_URL":         "rediss://:secret@cache:6380/0",
		"GATEWAY_MAX_UPLOAD_SIZE":   "1GiB",
		"GATEWAY_INLINE_MAX_SIZE":   "1048576",
		"GATEWAY_DEFAULT_RETENTION": "24h",
		"GATEWAY_TRUSTED_CLIENTS":   "exporter, admin ,",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.PresignTTL != 90*time.Second {
		t.Errorf("flag must win over env: %v", c.PresignTTL)
	}
	if c.BasePath != "/uscore/v1/bulk-data" || c.S3Prefix != "exports/" || c.MaxUploadSize != 1<<30 ||
		c.DefaultRetention != 24*time.Hour || len(c.TrustedClients) != 2 || !c.UsesS3() || !c.UsesRedis() {
		t.Errorf("parsed: %+v", c)
	}
}

func TestBadSettingsNameTheSetting(t *testing.T) {
	cases := map[string]map[string]string{
		"GATEWAY_PRESIGN_TTL":       {"GATEWAY_PRESIGN_TTL": "five minutes"},
		"GATEWAY_DOWNLOAD_MODE":     {"GATEWAY_DOWNLOAD_MODE": "teleport"},
		"GATEWAY_MAX_UPLOAD_SIZE":   {"GATEWAY_MAX_UPLOAD_SIZE": "-1"},
		"GATEWAY_REDIRECT_MIN_SIZE": {"GATEWAY_REDIRECT_MIN_SIZE": "8 potatoes"},
		"GATEWAY_REDIS_URL":         {"GATEWAY_REDIS_URL": "http://:hunter2@x"},
		"GATEWAY_AUTH":              {"GATEWAY_AUTH": "basic"},
		"GATEWAY_JWT_JWKS_URL":      {"GATEWAY_AUTH": "jwt"},
		"GATEWAY_BASE_URL":          {"GATEWAY_BASE_URL": "example.com"},
		"GATEWAY_BASE_PATH":         {"GATEWAY_BASE_PATH": "no-slash"},
		"GATEWAY_S3_PATH_STYLE":     {"GATEWAY_S3_PATH_STYLE": "maybe"},
		"GATEWAY_S3_BUCKET":         {"GATEWAY_S3_PREFIX": "p"},
		"GATEWAY_MULTI_TENANT":      {"GATEWAY_MULTI_TENANT": "true"},
	}
	for name, e := range cases {
		_, err := Load(nil, env(e))
		if err == nil {
			t.Errorf("%v: no error", e)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, name) || strings.Contains(msg, "\n") {
			t.Errorf("%v: error %q does not start with %s on one line", e, msg, name)
		}
		if strings.Contains(msg, "hunter2") {
			t.Errorf("error leaks a password: %q", msg)
		}
	}
	if _, err := Load([]string{"--no-such-flag"}, env(nil)); err == nil {
		t.Error("unknown flag accepted")
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"1048576": 1 << 20, "1MiB": 1 << 20, "1GiB": 1 << 30, "8MiB": 8 << 20, "5GiB": 5 << 30, "1KB": 1000, "0": 0, "12B": 12} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "x", "1.5MiB", "-3", "99999999999TiB", "MiB"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
}

// Streamed downloads are copied, not spliced, unless GATEWAY_S3_SPLICE=auto:
// make bench measured splicing dearer per GiB on both S3 servers.
func TestSpliceIsOffByDefault(t *testing.T) {
	c, err := Load(nil, func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if c.S3Splice != SpliceOff {
		t.Fatalf("GATEWAY_S3_SPLICE defaults to %q, want %q", c.S3Splice, SpliceOff)
	}
	c, err = Load(nil, func(k string) string {
		if k == "GATEWAY_S3_SPLICE" {
			return "auto"
		}
		return ""
	})
	if err != nil || c.S3Splice != SpliceAuto {
		t.Fatalf("GATEWAY_S3_SPLICE=auto gives %q, %v", c.S3Splice, err)
	}
}
