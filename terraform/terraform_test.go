// Package terraform_test checks the Terraform under terraform/ statically:
// the security invariants of the deployment (checker_test.go), that every
// gateway setting reaches the task definition, and the HCL layout. It needs
// neither terraform nor a network; `make tf-validate` does the provider-backed
// validation where a network is available.
package terraform_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclwrite"
)

const module = "modules/fhir-binary-gateway/"

// sources reads every .tf file below this directory (path → content).
func sources(t *testing.T) map[string][]byte {
	t.Helper()
	srcs := map[string][]byte{}
	err := filepath.WalkDir(".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".terraform" {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".tf") {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			srcs[filepath.ToSlash(p)] = b
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{module + "s3.tf", module + "iam.tf", module + "ecs.tf", "examples/aws/main.tf"} {
		if _, ok := srcs[want]; !ok {
			t.Fatalf("%s is missing: the checks below would pass on nothing", want)
		}
	}
	return srcs
}

func mustParse(t *testing.T, srcs map[string][]byte) *tfConfig {
	t.Helper()
	c, err := parseConfig(srcs)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSecurityInvariants(t *testing.T) {
	c := mustParse(t, sources(t))
	for _, v := range check(c) {
		t.Error(v)
	}
}

// TestCheckerRejects breaks the real configuration one invariant at a time
// and expects the checker to notice each, so a passing TestSecurityInvariants
// means something.
func TestCheckerRejects(t *testing.T) {
	cases := []struct {
		name, file, re, repl, want string
	}{
		{"public policy allowed", module + "s3.tf", `block_public_policy\s*=\s*true`, `block_public_policy = false`, "block_public_policy is not literally true"},
		{"public buckets not restricted", module + "s3.tf", `\n\s*restrict_public_buckets\s*=\s*true`, ``, "restrict_public_buckets is not literally true"},
		{"no public access block", module + "s3.tf", `resource "aws_s3_bucket_public_access_block"`, `resource "aws_s3_bucket_acl"`, "no aws_s3_bucket_public_access_block"},
		{"TLS deny inverted", module + "s3.tf", `values\s*=\s*\["false"\]`, `values = ["true"]`, "aws:SecureTransport"},
		{"TLS statement allows", module + "s3.tf", `effect\s*=\s*"Deny"`, `effect = "Allow"`, "aws:SecureTransport"},
		{"no encryption", module + "s3.tf", `resource "aws_s3_bucket_server_side_encryption_configuration"`, `resource "aws_s3_bucket_logging"`, "no aws_s3_bucket_server_side_encryption_configuration"},
		{"bad sse algorithm", module + "s3.tf", `sse_algorithm\s*=\s*local.sse_algorithm`, `sse_algorithm = "none"`, "valid sse_algorithm"},
		{"no expiration", module + "s3.tf", `expiration\s*\{\s*days\s*=\s*var.retention_days\s*\}`, ``, "expiration { days }"},
		{"no multipart abort", module + "s3.tf", `abort_incomplete_multipart_upload\s*\{[^}]*\}`, ``, "abort_incomplete_multipart_upload"},
		{"lifecycle disabled", module + "s3.tf", `status\s*=\s*"Enabled"\s*\n(\s*filter)`, "status = \"Disabled\"\n$1", "expiration { days }"},
		{"redis without TLS", module + "redis.tf", `transit_encryption_enabled\s*=\s*true`, `transit_encryption_enabled = false`, "transit_encryption_enabled"},
		{"redis without failover", module + "redis.tf", `automatic_failover_enabled\s*=\s*true`, `automatic_failover_enabled = false`, "automatic_failover_enabled"},
		{"redis single AZ", module + "redis.tf", `multi_az_enabled\s*=\s*true`, `multi_az_enabled = var.multi_az`, "multi_az_enabled"},
		{"redis literal token", module + "redis.tf", `auth_token\s*=\s*local.redis_auth_token`, `auth_token = "hunter2hunter2hunter2"`, "auth_token"},
		{"redis one node", module + "redis.tf", `num_cache_clusters\s*=\s*var.redis_num_cache_clusters`, `num_cache_clusters = 1`, "num_cache_clusters < 2"},
		{"objects on any resource", module + "iam.tf", `resources = \["\$\{local.bucket_arn\}/\$\{var.s3_prefix\}\*"\]`, `resources = ["*"]`, "not scoped to the bucket"},
		{"objects on the whole bucket", module + "iam.tf", `\$\{local.bucket_arn\}/\$\{var.s3_prefix\}\*`, `$${local.bucket_arn}/*`, "bucket ARN, prefix, then *"},
		{"s3:* action", module + "iam.tf", `"s3:GetObject",`, `"s3:*",`, `wildcard action "s3:*"`},
		{"list without prefix", module + "iam.tf", `variable = "s3:prefix"`, `variable = "s3:delimiter"`, "without an s3:prefix condition"},
		{"managed policy on task role", module + "iam.tf", `(resource "aws_iam_role" "task")`, "resource \"aws_iam_role_policy_attachment\" \"s3full\" {\n  role       = aws_iam_role.task.name\n  policy_arn = \"arn:aws:iam::aws:policy/AmazonS3FullAccess\"\n}\n\n$1", "attaches a managed policy"},
		{"no log retention", module + "ecs.tf", `\n\s*retention_in_days\s*=\s*var.log_retention_days`, ``, "no retention_in_days"},
		{"health check elsewhere", module + "alb.tf", `path\s*=\s*"/healthz"`, `path = "/"`, "must probe /healthz"},
		{"health check on readiness", module + "alb.tf", `path\s*=\s*"/healthz"`, `path = "/readyz"`, "must probe /healthz"},
		{"plain HTTP forwards", module + "alb.tf", `type = "redirect"`, `type = "forward"`, "may only redirect"},
		{"aws provider unbounded", module + "versions.tf", `version\s*=\s*">= 5.70, < 7.0"`, `version = ">= 5.70"`, "is not bounded"},
		{"aws provider too old", module + "versions.tf", `version\s*=\s*">= 5.70, < 7.0"`, `version = ">= 5.0, < 7.0"`, "is not bounded"},
		{"aws provider v5 only", "examples/aws/versions.tf", `version\s*=\s*">= 5.70, < 7.0"`, `version = "~> 5.70"`, "is not bounded"},
		{"no terraform version", "examples/aws/versions.tf", `required_version\s*=\s*">= 1.7.0"`, `required_version = "1.5.0"`, "required_version"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srcs := sources(t)
			orig, ok := srcs[tc.file]
			if !ok {
				t.Fatalf("no %s", tc.file)
			}
			broken := regexp.MustCompile(tc.re).ReplaceAll(orig, []byte(tc.repl))
			if bytes.Equal(orig, broken) {
				t.Fatalf("mutation %q does not match %s any more: update the case", tc.re, tc.file)
			}
			srcs[tc.file] = broken
			vs := check(mustParse(t, srcs))
			for _, v := range vs {
				if strings.Contains(v, tc.want) {
					return
				}
			}
			t.Errorf("checker missed it: want a violation containing %q, got %q", tc.want, vs)
		})
	}
}

// TestCheckerRejectsBareBucket feeds a deliberately bad configuration written
// from scratch: a bucket and a task with none of the protections.
func TestCheckerRejectsBareBucket(t *testing.T) {
	bad := `
terraform {
  required_providers {
    aws = { source = "hashicorp/aws" }
  }
}
resource "aws_s3_bucket" "b" { bucket = "x" }
resource "aws_cloudwatch_log_group" "l" { name = "x" }
resource "aws_iam_role" "task" { name = "t" }
data "aws_iam_policy_document" "task" {
  statement {
    actions   = ["s3:*"]
    resources = ["*"]
  }
}
resource "aws_iam_role_policy" "task" {
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task.json
}
resource "aws_ecs_task_definition" "t" { task_role_arn = aws_iam_role.task.arn }
resource "aws_elasticache_replication_group" "r" { transit_encryption_enabled = false }
`
	vs := check(mustParse(t, map[string][]byte{"bad/main.tf": []byte(bad)}))
	for _, want := range []string{
		"no aws_s3_bucket_public_access_block",
		"aws:SecureTransport",
		"no aws_s3_bucket_server_side_encryption_configuration",
		"no aws_s3_bucket_lifecycle_configuration",
		"transit_encryption_enabled",
		"automatic_failover_enabled",
		"auth_token",
		`wildcard action "s3:*"`,
		`literal resource "*"`,
		"no retention_in_days",
		"required_version",
		"hashicorp/aws has no version constraint",
	} {
		found := false
		for _, v := range vs {
			found = found || strings.Contains(v, want)
		}
		if !found {
			t.Errorf("checker accepted the bare configuration: no violation containing %q in %q", want, vs)
		}
	}
}

// gatewaySettingsNotInECS are GATEWAY_* settings deliberately left out of the
// task definition, each with its reason.
var gatewaySettingsNotInECS = map[string]string{
	"GATEWAY_PRESIGN_SECRET": "signs the filesystem store's own URLs only; on AWS redirects are SigV4-presigned with the task role",
}

// TestEveryGatewaySettingWired: each GATEWAY_* variable config.go reads is set
// in the task definition (environment or secrets), so a new setting cannot be
// forgotten in the deployment.
func TestEveryGatewaySettingWired(t *testing.T) {
	cfg, err := os.ReadFile("../config/config.go")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile(`"(GATEWAY_[A-Z0-9_]+)"`).FindAllStringSubmatch(string(cfg), -1) {
		names[m[1]] = true
	}
	if len(names) < 20 {
		t.Fatalf("found only %d GATEWAY_* settings in config.go; the pattern no longer matches it", len(names))
	}
	ecs := string(sources(t)[module+"ecs.tf"])
	for n := range names {
		if _, skip := gatewaySettingsNotInECS[n]; skip {
			continue
		}
		set := regexp.MustCompile(`(?m)^\s*`+n+`\s*=`).MatchString(ecs) ||
			regexp.MustCompile(`name\s*=\s*"`+n+`"`).MatchString(ecs)
		if !set {
			t.Errorf("%s (config/config.go) is not set in %secs.tf", n, module)
		}
	}
	if !regexp.MustCompile(`secrets\s*=\s*\[\{\s*name\s*=\s*"GATEWAY_REDIS_URL"`).MatchString(ecs) {
		t.Error("GATEWAY_REDIS_URL must reach the task through `secrets` (it carries the Redis AUTH token)")
	}
}

// TestFormatted is terraform fmt's layout rule, checked with HCL's own
// formatter, so the layout is checked even where terraform is not installed.
func TestFormatted(t *testing.T) {
	for name, src := range sources(t) {
		if got := hclwrite.Format(src); !bytes.Equal(got, src) {
			t.Errorf("%s is not formatted: run `make tf-fmt`", name)
		}
	}
}

// TestVariablesDocumented: every input says what it is and what type it takes.
func TestVariablesDocumented(t *testing.T) {
	c := mustParse(t, sources(t))
	n := 0
	for _, b := range c.blocks {
		if b.Type != "variable" {
			continue
		}
		n++
		if d, _ := literalString(attr(b.Block, "description")); strings.TrimSpace(d) == "" {
			t.Errorf("%s: no description", b)
		}
		if attr(b.Block, "type") == nil {
			t.Errorf("%s: no type", b)
		}
	}
	if n == 0 {
		t.Fatal("no variables found")
	}
}
