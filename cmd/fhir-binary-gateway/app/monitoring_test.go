package app

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var metricName = regexp.MustCompile(`\bfbg_[a-z0-9_]+\b`)

// exportedMetrics is every metric name a real gateway's /metrics shows after
// downloads, a redirect, a 404 and a store failure (label sets appear only
// once used).
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	g := startGateway(t, embedded, nil)
	id := g.upload(payload(9<<20), "application/octet-stream")
	small := g.upload([]byte("hello"), "text/plain")
	for _, p := range []string{"/Binary/" + id + "/$binary-access-read", "/Binary/" + small + "/$binary-access-read", "/Binary/none"} {
		g.do(http.MethodGet, p, nil)
	}
	// A closed catalog makes every lookup fail: the failure counter appears.
	_ = g.be.Catalog.Close()
	g.do(http.MethodGet, "/Binary/"+small, nil)
	res, body := g.do(http.MethodGet, "/metrics", nil)
	if res.StatusCode != 200 {
		t.Fatalf("/metrics: %d", res.StatusCode)
	}
	names := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		if i := strings.IndexAny(line, "{ "); i > 0 {
			names[line[:i]] = true
		}
	}
	if !names["fbg_store_operation_failures_total"] {
		t.Fatalf("no store failure was counted; the exported names are %v", names)
	}
	return names
}

type alertRules struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type dashboard struct {
	Title  string `json:"title"`
	Panels []struct {
		Title   string `json:"title"`
		Targets []struct {
			Expr string `json:"expr"`
		} `json:"targets"`
	} `json:"panels"`
}

// TestDashboardAndAlertsNameExportedMetrics loads the Grafana dashboard and
// the Prometheus rules under docs/monitoring: every expression must name at
// least one metric, every metric it names must be one the gateway exports,
// and the alerts the README promises (backend down, 5xx ratio, audit
// failures) must be there.
func TestDashboardAndAlertsNameExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	exprs := map[string]string{} // where → expression

	raw, err := os.ReadFile("../../../docs/monitoring/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for i, tg := range p.Targets {
			exprs["panel "+p.Title+" #"+string(rune('A'+i))] = tg.Expr
		}
	}
	for _, want := range []string{"route", "latency", "delivery", "store failures", "503"} {
		found := false
		for _, p := range d.Panels {
			found = found || strings.Contains(strings.ToLower(p.Title), strings.ToLower(want))
		}
		if !found {
			t.Errorf("the dashboard has no panel about %q", want)
		}
	}

	raw, err = os.ReadFile("../../../docs/monitoring/prometheus-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	var rules alertRules
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&rules); err != nil {
		t.Fatalf("alert rules YAML: %v", err)
	}
	alerts := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Labels["severity"] == "" {
				t.Errorf("rule %q: an alert needs a name and a severity", r.Alert)
			}
			alerts[r.Alert] = true
			exprs["alert "+r.Alert] = r.Expr
		}
	}
	for _, want := range []string{"FhirBinaryGatewayBackendDown", "FhirBinaryGatewayHigh5xxRatio", "FhirBinaryGatewayAuditFailing"} {
		if !alerts[want] {
			t.Errorf("alert %s is missing", want)
		}
	}

	if len(exprs) < 10 {
		t.Fatalf("only %d expressions found", len(exprs))
	}
	for where, e := range exprs {
		names := metricName.FindAllString(e, -1)
		if len(names) == 0 {
			t.Errorf("%s: %q names no gateway metric", where, e)
		}
		for _, n := range names {
			if !exported[n] {
				t.Errorf("%s: %s is not a metric the gateway exports", where, n)
			}
		}
		if strings.Count(e, "(") != strings.Count(e, ")") || strings.Count(e, "{") != strings.Count(e, "}") {
			t.Errorf("%s: unbalanced brackets in %q", where, e)
		}
	}
}
