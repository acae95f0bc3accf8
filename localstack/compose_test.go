// Package localstack_test checks docker-compose.yml statically: there is no
// Docker engine where `make test` runs, so `make localstack-up` itself is
// not run here; what can be checked without one is that the file asks for
// real settings with values the gateway accepts, mounts the init script
// that check-init.sh tests, and agrees with the README's LocalStack section.
package localstack_test

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"fhir-binary-gateway/config"
)

type service struct {
	Image       string            `yaml:"image"`
	Ports       []string          `yaml:"ports"`
	Environment map[string]string `yaml:"environment"`
	Volumes     []string          `yaml:"volumes"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Build struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
}

func composeFile(t *testing.T) map[string]service {
	t.Helper()
	raw, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]service `yaml:"services"`
	}
	if err := yaml.Unmarshal(raw, &f); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	for _, name := range []string{"localstack", "redis", "gateway"} {
		if _, ok := f.Services[name]; !ok {
			t.Fatalf("docker-compose.yml has no service %q", name)
		}
	}
	return f.Services
}

// readmeSection is the README's "## Run on LocalStack" section.
func readmeSection(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	start := strings.Index(text, "\n## Run on LocalStack\n")
	if start < 0 {
		t.Fatal(`README.md has no "## Run on LocalStack" section`)
	}
	section := text[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	return section
}

// readmeValue is the first submatch of pattern in the section.
func readmeValue(t *testing.T, section, pattern string) string {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(section)
	if m == nil {
		t.Fatalf("the README's LocalStack section does not match %s", pattern)
	}
	return m[1]
}

// hostPort finds the "127.0.0.1:HOST:CONTAINER" mapping of a container port.
func hostPort(t *testing.T, name string, s service, container string) string {
	t.Helper()
	for _, p := range s.Ports {
		parts := strings.Split(p, ":")
		if len(parts) == 3 && parts[2] == container {
			if parts[0] != "127.0.0.1" {
				t.Errorf("%s publishes %s on %s: want 127.0.0.1 only (auth is none)", name, container, parts[0])
			}
			return parts[1]
		}
	}
	t.Fatalf("%s publishes no port %s (ports %v)", name, container, s.Ports)
	return ""
}

// gatewayConfig is what the gateway makes of its Compose environment.
func gatewayConfig(t *testing.T, services map[string]service) config.Config {
	t.Helper()
	env := services["gateway"].Environment
	cfg, err := config.Load(nil, func(k string) string { return env[k] })
	if err != nil {
		t.Fatalf("the gateway's environment in docker-compose.yml: %v", err)
	}
	return cfg
}

// listenPort is the container port the gateway listens on.
func listenPort(t *testing.T, cfg config.Config) string {
	t.Helper()
	_, port, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		t.Fatalf("GATEWAY_LISTEN %q: %v", cfg.Listen, err)
	}
	return port
}

// TestComposeSettingsAreRealSettings: every GATEWAY_* variable the Compose
// file sets is a setting of the program (config's own list, the one that
// warns about typos), and the gateway's environment loads without error as
// S3 objects + a Redis catalog.
func TestComposeSettingsAreRealSettings(t *testing.T) {
	services := composeFile(t)
	for name, s := range services {
		var env []string
		for k, v := range s.Environment {
			env = append(env, k+"="+v)
		}
		for _, w := range config.UnknownEnv(env) {
			t.Errorf("docker-compose.yml, service %s: %s", name, w)
		}
	}
	gw := services["gateway"].Environment
	cfg := gatewayConfig(t, services)
	if !cfg.UsesS3() || !cfg.UsesRedis() {
		t.Errorf("the Compose gateway runs on bucket %q and Redis %q; want S3 + Redis", cfg.S3Bucket, cfg.RedisURL)
	}
	if gw["AWS_ENDPOINT_URL_S3"] == "" {
		t.Error("the Compose gateway has no AWS_ENDPOINT_URL_S3: it would talk to real AWS")
	}
	// init-s3.sh (in the localstack service) must harden the gateway's own
	// bucket and prefix.
	ls := services["localstack"].Environment
	for _, k := range []string{"GATEWAY_S3_BUCKET", "GATEWAY_S3_PREFIX", "AWS_REGION"} {
		if ls[k] != gw[k] {
			t.Errorf("%s: localstack (init-s3.sh) has %q, the gateway %q", k, ls[k], gw[k])
		}
	}
	// The services the gateway's URLs name, on the ports they listen on.
	for setting, svc := range map[string]string{"AWS_ENDPOINT_URL_S3": "localstack", "GATEWAY_REDIS_URL": "redis"} {
		u, err := url.Parse(gw[setting])
		if err != nil || u.Hostname() != svc {
			t.Errorf("%s=%s: want the %s service's host name", setting, gw[setting], svc)
			continue
		}
		hostPort(t, svc, services[svc], u.Port())
		if dep, ok := services["gateway"].DependsOn[svc]; !ok || dep.Condition != "service_healthy" {
			t.Errorf("the gateway does not wait for %s to be healthy", svc)
		}
	}
	hostPort(t, "gateway", services["gateway"], listenPort(t, cfg))
	if b := services["gateway"].Build; b.Dockerfile == "" {
		t.Error("the gateway service is not built from the Dockerfile")
	} else if _, err := os.Stat(filepath.Join(b.Context, b.Dockerfile)); err != nil {
		t.Errorf("the gateway's build: %v", err)
	}
}

// TestComposeMountsTheCheckedInitScript: the ready hook LocalStack runs is
// localstack/init-s3.sh, the script check-init.sh runs against a real S3
// server in make test, and the Makefile's localstack targets use this file.
func TestComposeMountsTheCheckedInitScript(t *testing.T) {
	ls := composeFile(t)["localstack"]
	var hooks []string
	for _, v := range ls.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) < 2 || !strings.HasPrefix(parts[1], "/etc/localstack/init/ready.d/") {
			continue
		}
		hooks = append(hooks, parts[0])
		st, err := os.Stat(parts[0]) // relative to the Compose file, as Compose resolves it
		if err != nil {
			t.Errorf("the ready hook %s: %v", parts[0], err)
			continue
		}
		if st.Mode()&0o111 == 0 || !strings.HasSuffix(parts[1], ".sh") {
			t.Errorf("the ready hook %s → %s: LocalStack runs executable .sh files only", parts[0], parts[1])
		}
	}
	if len(hooks) != 1 {
		t.Fatalf("localstack mounts %d ready hooks (%v), want the one init script", len(hooks), hooks)
	}
	checker, err := os.ReadFile("check-init.sh")
	if err != nil {
		t.Fatal(err)
	}
	want := `"$ROOT/localstack/` + filepath.Base(filepath.Clean(hooks[0])) + `"`
	if filepath.Clean(hooks[0]) != "init-s3.sh" || !strings.Contains(string(checker), want) {
		t.Errorf("the ready hook is %s; check-init.sh runs %s: they must be the same script", hooks[0], want)
	}
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^COMPOSE\s*\?=.*-f localstack/docker-compose\.yml`).Match(makefile) {
		t.Error("the Makefile's COMPOSE does not name localstack/docker-compose.yml")
	}
}

// TestComposeAgreesWithTheReadme: the ports, bucket, prefix, retention,
// endpoints and credentials the README's LocalStack section tells are the
// ones the Compose file sets.
func TestComposeAgreesWithTheReadme(t *testing.T) {
	services := composeFile(t)
	section := readmeSection(t)
	gw, ls := services["gateway"].Environment, services["localstack"].Environment
	gwPort := listenPort(t, gatewayConfig(t, services))
	s3, err := url.Parse(gw["AWS_ENDPOINT_URL_S3"])
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct{ what, readme, compose string }{
		{"the gateway's host port", readmeValue(t, section, `http://localhost:(\d+)/Binary`), hostPort(t, "gateway", services["gateway"], gwPort)},
		{"GATEWAY_BASE_URL", "http://localhost:" + readmeValue(t, section, `http://localhost:(\d+)/Binary`), gw["GATEWAY_BASE_URL"]},
		{"S3 inside the network (AWS_ENDPOINT_URL_S3)", readmeValue(t, section, "talks to S3 as `([^`]+)` inside"), gw["AWS_ENDPOINT_URL_S3"]},
		{"GATEWAY_S3_PATH_STYLE", readmeValue(t, section, "`GATEWAY_S3_PATH_STYLE=([^`]+)`"), gw["GATEWAY_S3_PATH_STYLE"]},
		{"GATEWAY_S3_PUBLIC_ENDPOINT", readmeValue(t, section, "`GATEWAY_S3_PUBLIC_ENDPOINT=([^`]+)`"), gw["GATEWAY_S3_PUBLIC_ENDPOINT"]},
		{"LocalStack's host port", readmeValue(t, section, `GATEWAY_S3_PUBLIC_ENDPOINT=http://localhost:(\d+)`), hostPort(t, "localstack", services["localstack"], s3.Port())},
		{"the bucket", readmeValue(t, section, "creates bucket `([^`]+)`"), gw["GATEWAY_S3_BUCKET"]},
		{"the prefix", readmeValue(t, section, "`GATEWAY_S3_PREFIX=([^`]+)`"), gw["GATEWAY_S3_PREFIX"]},
		{"RETENTION_DAYS", readmeValue(t, section, "`RETENTION_DAYS` \\((\\d+)\\)"), ls["RETENTION_DAYS"]},
		{"the access key", readmeValue(t, section, "dummy `([^`/]+)`/`"), gw["AWS_ACCESS_KEY_ID"]},
		{"the secret key", readmeValue(t, section, "dummy `[^`/]+`/`([^`]+)`"), gw["AWS_SECRET_ACCESS_KEY"]},
	} {
		if c.readme != c.compose {
			t.Errorf("%s: the README says %q, docker-compose.yml has %q", c.what, c.readme, c.compose)
		}
	}
	// The by-hand example of init-s3.sh names the same bucket, prefix and days.
	for _, k := range []string{"GATEWAY_S3_BUCKET", "GATEWAY_S3_PREFIX", "RETENTION_DAYS", "AWS_ACCESS_KEY_ID"} {
		v := ls[k]
		if v == "" {
			t.Errorf("the localstack service sets no %s", k)
		} else if !strings.Contains(section, k+"="+v+" ") {
			t.Errorf("the README's by-hand init-s3.sh line lacks %s=%s", k, v)
		}
	}
}
