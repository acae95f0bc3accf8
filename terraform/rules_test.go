package terraform_test

// The security rules: every invariant the deployment must keep, checked
// statically on the parsed configuration (literals are compared, references
// are followed by name).

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// check returns every violated invariant; none means the configuration passes.
func check(c *tfConfig) []string {
	var v []string
	bad := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }

	// 1. All four public access blocks on, for every bucket's block.
	pabs := c.find("resource", "aws_s3_bucket_public_access_block")
	for _, bucket := range c.find("resource", "aws_s3_bucket") {
		if len(configuring(c, pabs, bucket)) == 0 {
			bad("public access block: no aws_s3_bucket_public_access_block for %s", bucket)
		}
	}
	for _, b := range pabs {
		for _, f := range []string{"block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"} {
			if !isTrue(attr(b.Block, f)) {
				bad("public access block: %s: %s is not literally true", b, f)
			}
		}
	}

	// 2. TLS only: the bucket policy denies aws:SecureTransport = false.
	for _, bucket := range c.find("resource", "aws_s3_bucket") {
		if !bucketPolicyDeniesPlainHTTP(c, bucket) {
			bad("bucket policy: %s has no policy statement denying aws:SecureTransport = false", bucket)
		}
	}

	// 3. Server-side encryption.
	sses := c.find("resource", "aws_s3_bucket_server_side_encryption_configuration")
	for _, bucket := range c.find("resource", "aws_s3_bucket") {
		if len(configuring(c, sses, bucket)) == 0 {
			bad("encryption: no aws_s3_bucket_server_side_encryption_configuration for %s", bucket)
		}
	}
	for _, b := range sses {
		ok := false
		for _, r := range children(b.Block, "rule") {
			for _, d := range children(r, "apply_server_side_encryption_by_default") {
				alg := attr(d, "sse_algorithm")
				if s, lit := literalString(alg); alg != nil && (!lit || slices.Contains([]string{"AES256", "aws:kms", "aws:kms:dsse"}, s)) {
					ok = true
				}
			}
		}
		if !ok {
			bad("encryption: %s has no apply_server_side_encryption_by_default with a valid sse_algorithm", b)
		}
	}

	// 4. Lifecycle: objects expire, stale multipart uploads are aborted.
	lcs := c.find("resource", "aws_s3_bucket_lifecycle_configuration")
	for _, bucket := range c.find("resource", "aws_s3_bucket") {
		if len(configuring(c, lcs, bucket)) == 0 {
			bad("lifecycle: no aws_s3_bucket_lifecycle_configuration for %s", bucket)
		}
	}
	for _, b := range lcs {
		var expires, aborts bool
		for _, r := range children(b.Block, "rule") {
			if s, _ := literalString(attr(r, "status")); s != "Enabled" {
				continue
			}
			for _, e := range children(r, "expiration") {
				expires = expires || attr(e, "days") != nil
			}
			for _, a := range children(r, "abort_incomplete_multipart_upload") {
				aborts = aborts || attr(a, "days_after_initiation") != nil
			}
		}
		if !expires {
			bad("lifecycle: %s has no enabled rule with expiration { days }", b)
		}
		if !aborts {
			bad("lifecycle: %s has no enabled rule with abort_incomplete_multipart_upload", b)
		}
	}

	// 5. Redis: TLS, encryption at rest, AUTH, failover across AZs.
	for _, b := range c.find("resource", "aws_elasticache_replication_group") {
		for _, f := range []string{"transit_encryption_enabled", "at_rest_encryption_enabled", "automatic_failover_enabled", "multi_az_enabled"} {
			if !isTrue(attr(b.Block, f)) {
				bad("redis: %s: %s is not literally true", b, f)
			}
		}
		if a := attr(b.Block, "auth_token"); a == nil || len(a.Variables()) == 0 {
			bad("redis: %s: auth_token must come from a generated secret, not be missing or a literal", b)
		}
		if n, ok := literal(attr(b.Block, "num_cache_clusters")); ok && n.Type() == cty.Number {
			if f, _ := n.AsBigFloat().Int64(); f < 2 {
				bad("redis: %s: num_cache_clusters < 2 cannot fail over", b)
			}
		}
	}

	// 6. The task role: object actions on the bucket prefix only.
	v = append(v, checkTaskRole(c)...)

	// 7. Logs are kept for a bounded time.
	for _, b := range c.find("resource", "aws_cloudwatch_log_group") {
		if attr(b.Block, "retention_in_days") == nil {
			bad("logs: %s has no retention_in_days", b)
		}
	}

	// 8. ALB: HTTPS with a certificate, plain HTTP only redirects, /healthz
	// probed (liveness: a /readyz health check kills every task when Redis
	// fails over).
	for _, b := range c.find("resource", "aws_lb_listener") {
		proto, _ := literalString(attr(b.Block, "protocol"))
		switch proto {
		case "HTTPS":
			if attr(b.Block, "certificate_arn") == nil || attr(b.Block, "ssl_policy") == nil {
				bad("alb: %s: HTTPS listener needs certificate_arn and ssl_policy", b)
			}
		case "HTTP":
			for _, a := range children(b.Block, "default_action") {
				if t, _ := literalString(attr(a, "type")); t != "redirect" {
					bad("alb: %s: a plain HTTP listener may only redirect to HTTPS", b)
				}
			}
		}
	}
	for _, b := range c.find("resource", "aws_lb_target_group") {
		ok := false
		for _, h := range children(b.Block, "health_check") {
			p, _ := literalString(attr(h, "path"))
			ok = ok || p == "/healthz"
		}
		if !ok {
			bad("alb: %s: health_check must probe /healthz", b)
		}
	}

	// 9. Every directory pins terraform and its providers.
	v = append(v, checkVersions(c)...)
	return v
}

// configuring returns the blocks among bs whose bucket argument refers to
// the aws_s3_bucket resource bucket.
func configuring(c *tfConfig, bs []tfBlock, bucket tfBlock) []tfBlock {
	var out []tfBlock
	for _, b := range bs {
		if refersTo(attr(b.Block, "bucket"), "aws_s3_bucket."+bucket.Labels[1]+".") {
			out = append(out, b)
		}
	}
	return out
}

func bucketPolicyDeniesPlainHTTP(c *tfConfig, bucket tfBlock) bool {
	ref := "aws_s3_bucket." + bucket.Labels[1]
	for _, p := range c.find("resource", "aws_s3_bucket_policy") {
		if !refersTo(attr(p.Block, "bucket"), ref) {
			continue
		}
		doc, ok := c.named("data", "aws_iam_policy_document", docName(attr(p.Block, "policy")))
		if !ok {
			continue
		}
		for _, st := range children(doc.Block, "statement") {
			if e, _ := literalString(attr(st, "effect")); e != "Deny" {
				continue
			}
			for _, cond := range children(st, "condition") {
				test, _ := literalString(attr(cond, "test"))
				variable, _ := literalString(attr(cond, "variable"))
				vals, _ := listItems(attr(cond, "values"))
				if test == "Bool" && variable == "aws:SecureTransport" && slices.Equal(vals, []string{"false"}) {
					return true
				}
			}
		}
	}
	return false
}

var objectActions = []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"}

// bucketARNRefs are the expressions that name the content bucket's ARN: the
// resource's own, or the module's local that is it or the brought bucket's.
func isBucketARNRef(r string) bool {
	return r == "local.bucket_arn" || (strings.HasPrefix(r, "aws_s3_bucket.") && strings.HasSuffix(r, ".arn"))
}

func checkTaskRole(c *tfConfig) []string {
	var v []string
	bad := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	for _, td := range c.find("resource", "aws_ecs_task_definition") {
		var role string
		for _, r := range refs(attr(td.Block, "task_role_arn")) {
			if p := strings.Split(r, "."); len(p) >= 2 && p[0] == "aws_iam_role" {
				role = "aws_iam_role." + p[1]
			}
		}
		if role == "" {
			bad("task role: %s has no task_role_arn from an aws_iam_role", td)
			continue
		}
		for _, a := range c.find("resource", "aws_iam_role_policy_attachment") {
			if refersTo(attr(a.Block, "role"), role) {
				bad("task role: %s attaches a managed policy to %s; only the scoped inline policy is allowed", a, role)
			}
		}
		found := false
		for _, p := range c.find("resource", "aws_iam_role_policy") {
			if !refersTo(attr(p.Block, "role"), role) {
				continue
			}
			doc, ok := c.named("data", "aws_iam_policy_document", docName(attr(p.Block, "policy")))
			if !ok {
				bad("task role: %s: policy must come from an aws_iam_policy_document", p)
				continue
			}
			found = true
			v = append(v, checkTaskPolicy(doc)...)
		}
		if !found {
			bad("task role: no aws_iam_role_policy for %s", role)
		}
	}
	return v
}

func checkTaskPolicy(doc tfBlock) []string {
	var v []string
	bad := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	for _, st := range children(doc.Block, "statement") {
		if e, _ := literalString(attr(st, "effect")); e == "Deny" {
			continue
		}
		sid, _ := literalString(attr(st, "sid"))
		where := fmt.Sprintf("task role: %s statement %q", doc, sid)
		actions, _ := listItems(attr(st, "actions"))
		if attr(st, "not_actions") != nil || attr(st, "not_resources") != nil {
			bad("%s: not_actions/not_resources grant too much", where)
		}
		for _, a := range actions {
			if strings.Contains(a, "*") {
				bad("%s: wildcard action %q", where, a)
			}
		}
		lits, exprs := listItems(attr(st, "resources"))
		for _, r := range lits {
			if strings.Contains(r, "*") || !strings.HasPrefix(r, "arn:") {
				bad("%s: literal resource %q is not scoped to the bucket", where, r)
			}
		}
		hasObject := slices.ContainsFunc(actions, func(a string) bool { return slices.Contains(objectActions, a) })
		if hasObject {
			if len(lits) > 0 || len(exprs) == 0 {
				bad("%s: object actions need resources built from the bucket ARN and prefix", where)
			}
			for _, e := range exprs {
				if !isBucketPrefixARN(e) {
					bad("%s: object resource is not \"${aws_s3_bucket.X.arn}/${<prefix>}*\" (bucket ARN, prefix, then *)", where)
				}
			}
		}
		if slices.Contains(actions, "s3:ListBucket") {
			limited := false
			for _, cond := range children(st, "condition") {
				variable, _ := literalString(attr(cond, "variable"))
				limited = limited || variable == "s3:prefix"
			}
			if !limited {
				bad("%s: s3:ListBucket without an s3:prefix condition lists the whole bucket", where)
			}
		}
	}
	return v
}

// isBucketPrefixARN: a template "${aws_s3_bucket.X.arn or local.bucket_arn}/${var or local}...*".
func isBucketPrefixARN(e hclsyntax.Expression) bool {
	t, ok := e.(*hclsyntax.TemplateExpr)
	if !ok || len(t.Parts) < 4 {
		return false
	}
	first, ok := t.Parts[0].(*hclsyntax.ScopeTraversalExpr)
	if !ok || !isBucketARNRef(strings.Join(refs(first), "")) {
		return false
	}
	if s, ok := literalString(t.Parts[1]); !ok || s != "/" {
		return false
	}
	prefix := refs(t.Parts[2])
	if len(prefix) != 1 || !(strings.HasPrefix(prefix[0], "var.") || strings.HasPrefix(prefix[0], "local.")) {
		return false
	}
	last, ok := literalString(t.Parts[len(t.Parts)-1])
	return ok && strings.HasSuffix(last, "*") && !strings.Contains(strings.TrimSuffix(last, "*"), "*")
}

func checkVersions(c *tfConfig) []string {
	var v []string
	dirs := map[string]bool{}
	pinned := map[string]bool{}
	for _, b := range c.blocks {
		dir := path.Dir(b.file)
		dirs[dir] = true
		if b.Type != "terraform" {
			continue
		}
		if s, _ := literalString(attr(b.Block, "required_version")); !strings.HasPrefix(strings.TrimSpace(s), ">=") {
			v = append(v, fmt.Sprintf("versions: %s: required_version must be a \">= x.y\" constraint", b.file))
		}
		for _, rp := range children(b.Block, "required_providers") {
			aws := attr(rp, "aws")
			if aws == nil {
				continue
			}
			val, ok := literal(aws)
			if !ok || !val.Type().IsObjectType() || !val.Type().HasAttribute("version") {
				v = append(v, fmt.Sprintf("versions: %s: hashicorp/aws has no version constraint", b.file))
				continue
			}
			// A lower bound and an upper one: v5 (from 5.70) and v6 are
			// accepted, an unknown next major is not.
			if s := val.GetAttr("version").AsString(); awsVersionBounded(s) {
				pinned[dir] = true
			} else {
				v = append(v, fmt.Sprintf("versions: %s: hashicorp/aws version %q is not bounded (>= 5.70 with < 7.0, or ~>)", b.file, s))
			}
		}
	}
	for dir := range dirs {
		if !pinned[dir] {
			v = append(v, fmt.Sprintf("versions: %s bounds no hashicorp/aws version", dir))
		}
	}
	sort.Strings(v)
	return v
}

// awsVersionBounded: ">= 5.70" (or higher) together with a "< N" upper bound
// that lets v6 in (N >= 7). "~> 5.70" would keep v6 out.
func awsVersionBounded(c string) bool {
	var lower, upper bool
	for _, part := range strings.Split(c, ",") {
		part = strings.TrimSpace(part)
		switch {
		case strings.HasPrefix(part, ">="):
			var major, minor int
			if _, err := fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(part, ">=")), "%d.%d", &major, &minor); err == nil {
				lower = major > 5 || major == 5 && minor >= 70
			}
		case strings.HasPrefix(part, "<"):
			var major int
			if _, err := fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(part, "<")), "%d", &major); err == nil {
				upper = major >= 7
			}
		}
	}
	return lower && upper
}
