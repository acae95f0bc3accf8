package terraform_test

// The operability invariants of the deployment (issue 14): that an apply
// leaves running tasks, that they keep running, and that they can be
// operated. Like rules_test.go they are checked on the parsed HCL, where an
// expression can be evaluated (with chosen variable values) it is.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// checkDeploy returns every violated operability invariant. dockerfile is
// the Dockerfile's content, goSrc the Go sources that call S3 (path →
// content).
func checkDeploy(c *tfConfig, dockerfile []byte, goSrc map[string][]byte) []string {
	var v []string
	bad := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }

	// 1. Only the AWS provider (offline init with the machine's plugin
	// directory); v6: auth_token needs auth_token_update_strategy and
	// aws_region's name is deprecated.
	for _, b := range c.blocks {
		if b.Type == "terraform" {
			for _, rp := range children(b.Block, "required_providers") {
				for name := range rp.Body.Attributes {
					if name != "aws" {
						bad("providers: %s requires provider %q; the module needs the AWS provider only", b.file, name)
					}
				}
			}
		}
		if (b.Type == "resource" || b.Type == "data") && len(b.Labels) > 0 && !strings.HasPrefix(b.Labels[0], "aws_") && b.Labels[0] != "terraform_data" {
			bad("providers: %s is not of the AWS provider", b)
		}
		for _, e := range allExprs(b.Body) {
			for _, r := range refs(e) {
				if strings.HasPrefix(r, "data.aws_region.") && strings.HasSuffix(r, ".name") {
					bad("providers: %s uses %s, deprecated in v6 (use .id)", b, r)
				}
			}
		}
	}
	for _, b := range c.find("resource", "aws_elasticache_replication_group") {
		if attr(b.Block, "auth_token") != nil {
			if s, _ := literalString(attr(b.Block, "auth_token_update_strategy")); s == "" {
				bad("redis: %s sets auth_token without a literal auth_token_update_strategy (required by provider v6)", b)
			}
		}
	}

	// 2. The first apply leaves running tasks: the service starts only after
	// the secret has a value and the execution role its rights, and apply
	// waits for steady state.
	for _, svc := range c.find("resource", "aws_ecs_service") {
		deps := refs(attr(svc.Block, "depends_on"))
		for _, want := range []string{"aws_secretsmanager_secret_version.", "aws_elasticache_replication_group.", "aws_iam_role_policy.execution", "aws_iam_role_policy_attachment.execution"} {
			if !slices.ContainsFunc(deps, func(d string) bool { return strings.HasPrefix(d, want) }) {
				bad("ecs: %s: depends_on lacks %s (tasks would start before it exists and fail)", svc, strings.TrimSuffix(want, "."))
			}
		}
		if !isTrue(attr(svc.Block, "wait_for_steady_state")) {
			bad("ecs: %s: wait_for_steady_state is not literally true (apply would report success with no task running)", svc)
		}
	}

	// 3. Defaults that cannot work are refused with a message.
	if !hasPrecondition(c, "resource", "aws_lb", "var.public_subnet_ids", "var.alb_internal") {
		bad("alb: no precondition on aws_lb refusing an internet-facing ALB without public_subnet_ids")
	}
	if !hasPrecondition(c, "resource", "aws_ecs_task_definition", "var.auth", "var.jwt_jwks_url", "var.jwt_jwks_file") {
		bad("ecs: no precondition on the task definition refusing auth = jwt without a JWKS")
	}

	// 4. No empty environment values (ECS drops them: a diff on every plan).
	v = append(v, checkEnvironment(c)...)

	// 5. The server's idle timeout outlives the ALB's.
	if e := setting(c, "GATEWAY_IDLE_TIMEOUT"); e == nil {
		bad("ecs: GATEWAY_IDLE_TIMEOUT is not set")
	} else {
		for _, alb := range []int64{1, 60, 300, 4000} {
			d, err := evalDuration(e, map[string]cty.Value{"alb_idle_timeout": cty.NumberIntVal(alb)})
			if err != nil {
				bad("ecs: GATEWAY_IDLE_TIMEOUT: %v", err)
				break
			}
			if d <= time.Duration(alb)*time.Second {
				bad("ecs: GATEWAY_IDLE_TIMEOUT is %s with alb_idle_timeout = %d s: the server must wait longer than the ALB", d, alb)
			}
		}
	}

	// 6. The lifecycle rule never deletes a live Binary's bytes: the gateway's
	// maximum retention is set from the same variable, and no longer.
	v = append(v, checkRetention(c)...)

	// 7. Operator commands run on ECS: ENTRYPOINT is the binary alone,
	// CMD ["serve"]; gc is scheduled with the command ["gc"].
	v = append(v, checkDockerfile(dockerfile)...)
	if len(c.find("resource", "aws_scheduler_schedule")) == 0 {
		bad("gc: no aws_scheduler_schedule runs gc")
	}
	gcCommand := false
	for _, td := range c.find("resource", "aws_ecs_task_definition") {
		for _, e := range allExprs(td.Body) {
			if call, ok := e.(*hclsyntax.FunctionCallExpr); ok && call.Name == "merge" {
				for _, a := range call.Args {
					if o, ok := a.(*hclsyntax.ObjectConsExpr); ok {
						for _, it := range o.Items {
							if k := hcl.ExprAsKeyword(it.KeyExpr); k == "command" {
								lits, _ := listItems(it.ValueExpr)
								gcCommand = gcCommand || slices.Equal(lits, []string{"gc"})
							}
						}
					}
				}
			}
		}
	}
	if !gcCommand {
		bad("gc: no task definition runs the command [\"gc\"]")
	}

	// 8. The task role grants exactly the S3 actions the code calls.
	v = append(v, checkExactActions(c, goSrc)...)

	// 9. /metrics and /readyz are not served through the ALB.
	internal := false
	for _, r := range c.find("resource", "aws_lb_listener_rule") {
		if !refersTo(attr(r.Block, "listener_arn"), "aws_lb_listener.https") {
			continue
		}
		for _, a := range children(r.Block, "action") {
			if t, _ := literalString(attr(a, "type")); t != "fixed-response" {
				continue
			}
			paths := localStrings(c, r.Block)
			internal = internal || slices.Contains(paths, "/metrics*") && slices.Contains(paths, "/readyz*")
		}
	}
	if !internal {
		bad("alb: no HTTPS listener rule answers /metrics* and /readyz* itself (fixed-response)")
	}

	// 10. The audit trusts only the ALB's X-Forwarded-For.
	if e := setting(c, "GATEWAY_TRUSTED_PROXIES"); e == nil || !refersTo(e, "local.alb_subnet_cidrs") {
		bad("ecs: GATEWAY_TRUSTED_PROXIES is not set from the ALB's subnets (local.alb_subnet_cidrs)")
	}

	// 11. Access logs, a long-kept audit log group, S3 server access logs.
	if lb, ok := c.named("resource", "aws_lb", "this"); !ok || len(children(lb.Block, "access_logs")) == 0 {
		bad("alb: aws_lb.this has no access_logs")
	}
	if len(c.find("resource", "aws_s3_bucket_logging")) == 0 {
		bad("s3: no aws_s3_bucket_logging (S3 server access logs)")
	}
	if lg, ok := c.named("resource", "aws_cloudwatch_log_group", "audit"); !ok {
		bad("logs: no aws_cloudwatch_log_group.audit")
	} else if d := variableDefault(c, strings.TrimPrefix(strings.Join(refs(attr(lg.Block, "retention_in_days")), ""), "var.")); d == cty.NilVal || d.Type() != cty.Number || d.LessThan(cty.NumberIntVal(2190)).True() {
		bad("logs: the audit log group's retention must default to at least six years (2190 days)")
	}

	// 12. The health check is liveness (rules_test.go checks the path).

	// 13. Long transfers: least outstanding requests, deregistration delay
	// from the shutdown grace, GOMEMLIMIT from the task memory, an optional
	// S3 gateway endpoint.
	for _, tg := range c.find("resource", "aws_lb_target_group") {
		if s, _ := literalString(attr(tg.Block, "load_balancing_algorithm_type")); s != "least_outstanding_requests" {
			bad("alb: %s: load_balancing_algorithm_type is not least_outstanding_requests", tg)
		}
		if !refersTo(attr(tg.Block, "deregistration_delay"), "var.shutdown_grace_seconds") {
			bad("alb: %s: deregistration_delay is not derived from var.shutdown_grace_seconds", tg)
		}
	}
	if e := setting(c, "GATEWAY_SHUTDOWN_GRACE"); e == nil || !refersTo(e, "var.shutdown_grace_seconds") {
		bad("ecs: GATEWAY_SHUTDOWN_GRACE is not var.shutdown_grace_seconds")
	}
	if e := localAttr(c, "gomemlimit_mib"); e == nil || !refersTo(e, "var.task_memory") {
		bad("ecs: GOMEMLIMIT (local.gomemlimit_mib) is not derived from var.task_memory")
	}
	endpoint := false
	for _, ep := range c.find("resource", "aws_vpc_endpoint") {
		s, _ := literalString(attr(ep.Block, "vpc_endpoint_type"))
		endpoint = endpoint || s == "Gateway"
	}
	if !endpoint {
		bad("network: no optional S3 gateway VPC endpoint")
	}

	// 14. API Gateway in front: its limits are enforced.
	if !hasPrecondition(c, "resource", "aws_lb", "var.api_gateway_in_front", "local.redirect_min_bytes") ||
		!hasPrecondition(c, "resource", "aws_lb", "var.api_gateway_in_front", "local.max_upload_bytes") {
		bad("alb: no preconditions holding redirect_min_size and max_upload_size under API Gateway's 10 MB")
	}

	// 16. Tags on everything that takes them; the outputs users expect.
	for _, b := range c.blocks {
		if b.Type != "resource" || !strings.HasPrefix(b.file, module) {
			continue
		}
		if _, untaggable := untaggable[b.Labels[0]]; untaggable {
			continue
		}
		if attr(b.Block, "tags") == nil {
			bad("tags: %s has no tags (add them, or list the type in untaggable if it takes none)", b)
		}
	}
	for _, out := range []string{"alb_arn", "alb_dns_name", "target_group_arn", "alb_security_group_id", "tasks_security_group_id", "redis_security_group_id", "task_role_arn", "execution_role_arn", "export_writer_policy_json"} {
		if _, ok := c.namedOutput(out); !ok {
			bad("outputs: the module has no output %q", out)
		}
	}
	sort.Strings(v)
	return v
}

// untaggable are the resource types of the module that take no tags.
var untaggable = map[string]bool{
	"aws_s3_bucket_ownership_controls":                   true,
	"aws_s3_bucket_public_access_block":                  true,
	"aws_s3_bucket_server_side_encryption_configuration": true,
	"aws_s3_bucket_versioning":                           true,
	"aws_s3_bucket_lifecycle_configuration":              true,
	"aws_s3_bucket_policy":                               true,
	"aws_s3_bucket_cors_configuration":                   true,
	"aws_s3_bucket_logging":                              true,
	"aws_iam_role_policy":                                true,
	"aws_iam_role_policy_attachment":                     true,
	"aws_secretsmanager_secret_version":                  true,
	"aws_appautoscaling_policy":                          true,
	"aws_scheduler_schedule":                             true, // Scheduler schedules take no tags (schedule groups do)
	"terraform_data":                                     true,
}

func (c *tfConfig) namedOutput(name string) (tfBlock, bool) {
	for _, b := range c.blocks {
		if b.Type == "output" && len(b.Labels) == 1 && b.Labels[0] == name && strings.HasPrefix(b.file, module) {
			return b, true
		}
	}
	return tfBlock{}, false
}

// allExprs returns every expression below body (attributes of nested blocks
// too) and, recursively, their sub-expressions that are function calls or
// object constructors.
func allExprs(body *hclsyntax.Body) []hclsyntax.Expression {
	var out []hclsyntax.Expression
	var walk func(hclsyntax.Node)
	walk = func(n hclsyntax.Node) {
		hclsyntax.VisitAll(n, func(n hclsyntax.Node) hcl.Diagnostics {
			if e, ok := n.(hclsyntax.Expression); ok {
				out = append(out, e)
			}
			return nil
		})
	}
	walk(body)
	return out
}

// hasPrecondition: a block of kind/type has a lifecycle precondition whose
// condition refers to every one of names.
func hasPrecondition(c *tfConfig, kind, typ string, names ...string) bool {
	for _, b := range c.find(kind, typ) {
		for _, lc := range children(b.Block, "lifecycle") {
			for _, pc := range children(lc, "precondition") {
				cond := attr(pc, "condition")
				msg, _ := literalString(attr(pc, "error_message"))
				all := msg != ""
				for _, n := range names {
					all = all && refersTo(cond, n)
				}
				if all {
					return true
				}
			}
		}
	}
	return false
}

// localAttr returns the expression of local.name.
func localAttr(c *tfConfig, name string) hclsyntax.Expression {
	for _, b := range c.blocks {
		if b.Type == "locals" && strings.HasPrefix(b.file, module) {
			if a, ok := b.Body.Attributes[name]; ok {
				return a.Expr
			}
		}
	}
	return nil
}

// setting returns the expression a GATEWAY_* setting gets in
// local.gateway_settings, nil when it is not there.
func setting(c *tfConfig, name string) hclsyntax.Expression {
	o, ok := localAttr(c, "gateway_settings").(*hclsyntax.ObjectConsExpr)
	if !ok {
		return nil
	}
	for _, it := range o.Items {
		if hcl.ExprAsKeyword(it.KeyExpr) == name {
			return it.ValueExpr
		}
	}
	return nil
}

// evalDuration evaluates e with var.* set to vars and parses the result as a
// Go duration.
func evalDuration(e hclsyntax.Expression, vars map[string]cty.Value) (time.Duration, error) {
	val, diags := e.Value(&hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)}})
	if diags.HasErrors() {
		return 0, fmt.Errorf("cannot evaluate with %v: %s", vars, diags.Error())
	}
	if val.Type() != cty.String {
		return 0, fmt.Errorf("not a string: %#v", val)
	}
	return time.ParseDuration(val.AsString())
}

func variableDefault(c *tfConfig, name string) cty.Value {
	for _, b := range c.blocks {
		if b.Type == "variable" && len(b.Labels) == 1 && b.Labels[0] == name && strings.HasPrefix(b.file, module) {
			if v, ok := literal(attr(b.Block, "default")); ok {
				return v
			}
		}
	}
	return cty.NilVal
}

// localStrings returns the literal strings of the path_pattern values of a
// listener rule, following one local.X reference.
func localStrings(c *tfConfig, rule *hclsyntax.Block) []string {
	var out []string
	for _, cond := range children(rule, "condition") {
		for _, pp := range children(cond, "path_pattern") {
			e := attr(pp, "values")
			if r := refs(e); len(r) == 1 && strings.HasPrefix(r[0], "local.") {
				e = localAttr(c, strings.TrimPrefix(r[0], "local."))
			}
			for _, x := range allExprs(&hclsyntax.Body{Attributes: hclsyntax.Attributes{"x": {Name: "x", Expr: e}}}) {
				if s, ok := literalString(x); ok {
					out = append(out, s)
				}
			}
		}
	}
	return out
}

func checkEnvironment(c *tfConfig) []string {
	var v []string
	bad := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	env := localAttr(c, "gateway_env")
	call, ok := env.(*hclsyntax.FunctionCallExpr)
	if !ok || call.Name != "merge" {
		return []string{"env: local.gateway_env must be merge(<the set settings>, <extra>)"}
	}
	filtered := false
	for _, a := range call.Args {
		switch a := a.(type) {
		case *hclsyntax.ForExpr:
			// { for k, v in local.gateway_settings : k => v if v != "" }
			bin, ok := a.CondExpr.(*hclsyntax.BinaryOpExpr)
			if ok && bin.Op == hclsyntax.OpNotEqual && refersTo(a.CollExpr, "local.gateway_settings") {
				if s, lit := literalString(bin.RHS); lit && s == "" {
					filtered = true
				}
			}
		case *hclsyntax.ObjectConsExpr:
			for _, it := range a.Items {
				if s, lit := literalString(it.ValueExpr); lit && s == "" {
					bad("env: %s is the empty string", hcl.ExprAsKeyword(it.KeyExpr))
				}
			}
		default:
			bad("env: local.gateway_env merges an expression that is neither the filtered settings nor literal entries")
		}
	}
	if !filtered {
		bad("env: local.gateway_env does not leave out the empty settings ({ for k, v in local.gateway_settings : k => v if v != \"\" })")
	}
	// Every container's environment comes from local.gateway_env.
	for _, td := range c.find("resource", "aws_ecs_task_definition") {
		for _, e := range allExprs(td.Body) {
			o, ok := e.(*hclsyntax.ObjectConsExpr)
			if !ok {
				continue
			}
			for _, it := range o.Items {
				if hcl.ExprAsKeyword(it.KeyExpr) == "environment" && !refersTo(it.ValueExpr, "local.gateway_env") {
					bad("env: %s: an environment not built from local.gateway_env", td)
				}
			}
		}
	}
	if gc := localAttr(c, "gateway_container"); gc == nil || !refersTo(gc, "local.gateway_env") {
		bad("env: local.gateway_container's environment is not built from local.gateway_env")
	}
	return v
}

func checkRetention(c *tfConfig) []string {
	var v []string
	bad := func(format string, args ...any) { v = append(v, fmt.Sprintf(format, args...)) }
	max := setting(c, "GATEWAY_MAX_RETENTION")
	if max == nil {
		return []string{"retention: GATEWAY_MAX_RETENTION is not set: the gateway would accept expiries past the lifecycle rule"}
	}
	var days hclsyntax.Expression
	for _, lc := range c.find("resource", "aws_s3_bucket_lifecycle_configuration") {
		if !refersTo(attr(lc.Block, "bucket"), "aws_s3_bucket.this.") {
			continue
		}
		for _, r := range children(lc.Block, "rule") {
			for _, f := range children(r, "filter") {
				if !refersTo(attr(f, "prefix"), "var.s3_prefix") {
					continue
				}
				for _, e := range children(r, "expiration") {
					days = attr(e, "days")
				}
			}
		}
	}
	if days == nil {
		return append(v, "retention: no lifecycle rule on var.s3_prefix with expiration { days }")
	}
	dr, mr := refs(days), refs(max)
	if len(dr) != 1 || len(mr) != 1 || dr[0] != mr[0] || !strings.HasPrefix(dr[0], "var.") {
		return append(v, fmt.Sprintf("retention: the lifecycle rule's days (%v) and GATEWAY_MAX_RETENTION (%v) must come from the same one variable", dr, mr))
	}
	name := strings.TrimPrefix(dr[0], "var.")
	for _, d := range []int64{1, 30, 365, 3650} {
		vars := map[string]cty.Value{name: cty.NumberIntVal(d)}
		got, err := evalDuration(max, vars)
		if err != nil {
			bad("retention: GATEWAY_MAX_RETENTION: %v", err)
			break
		}
		dv, diags := days.Value(&hcl.EvalContext{Variables: map[string]cty.Value{"var": cty.ObjectVal(vars)}})
		if diags.HasErrors() || dv.Type() != cty.Number {
			bad("retention: cannot evaluate the lifecycle days: %s", diags.Error())
			break
		}
		lifecycleDays, _ := dv.AsBigFloat().Int64()
		if got <= 0 || got > time.Duration(lifecycleDays)*24*time.Hour {
			bad("retention: with %s = %d, GATEWAY_MAX_RETENTION is %s but the lifecycle rule deletes after %d days", name, d, got, lifecycleDays)
		}
	}
	if def := setting(c, "GATEWAY_DEFAULT_RETENTION"); def != nil && !hasPrecondition(c, "resource", "aws_ecs_task_definition", "local.default_retention_seconds", "var."+name) {
		bad("retention: GATEWAY_DEFAULT_RETENTION is not held to at most %s by a precondition", name)
	}
	return v
}

func checkDockerfile(df []byte) []string {
	var entry, cmd []string
	for _, line := range strings.Split(string(df), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		rest := strings.TrimSpace(line[len(f[0]):])
		var arr []string
		switch strings.ToUpper(f[0]) {
		case "ENTRYPOINT":
			if json.Unmarshal([]byte(rest), &arr) != nil {
				return []string{"docker: ENTRYPOINT must be the exec (JSON array) form"}
			}
			entry = arr
		case "CMD":
			if json.Unmarshal([]byte(rest), &arr) != nil {
				return []string{"docker: CMD must be the exec (JSON array) form"}
			}
			cmd = arr
		}
	}
	var v []string
	if len(entry) != 1 {
		v = append(v, fmt.Sprintf("docker: ENTRYPOINT is %q; it must be the binary alone so a command override replaces the subcommand", entry))
	}
	if !slices.Equal(cmd, []string{"serve"}) {
		v = append(v, fmt.Sprintf("docker: CMD is %q, want [\"serve\"]", cmd))
	}
	return v
}

// s3CallActions maps each S3 API the code may call to the IAM action it
// needs. A call not listed fails the check: add it here and to iam.tf.
var s3CallActions = map[string]string{
	"GetObject":                 "s3:GetObject",
	"HeadObject":                "s3:GetObject",
	"PresignGetObject":          "s3:GetObject",
	"PresignHeadObject":         "s3:GetObject",
	"PutObject":                 "s3:PutObject",
	"PresignPutObject":          "s3:PutObject",
	"NewUploader":               "s3:PutObject", // PutObject, or Create/UploadPart/Complete, all s3:PutObject
	"CreateMultipartUpload":     "s3:PutObject",
	"UploadPart":                "s3:PutObject",
	"PresignUploadPart":         "s3:PutObject",
	"CompleteMultipartUpload":   "s3:PutObject",
	"CopyObject":                "s3:PutObject",
	"DeleteObject":              "s3:DeleteObject",
	"DeleteObjects":             "s3:DeleteObject",
	"AbortMultipartUpload":      "s3:AbortMultipartUpload",
	"ListObjectsV2":             "s3:ListBucket",
	"NewListObjectsV2Paginator": "s3:ListBucket",
	"HeadBucket":                "s3:ListBucket",
	"ListMultipartUploads":      "s3:ListBucketMultipartUploads",
	"ListParts":                 "s3:ListMultipartUploadParts",
	"GetObjectTagging":          "s3:GetObjectTagging",
	"PutObjectTagging":          "s3:PutObjectTagging",
}

// s3Calls finds the S3 API calls in Go sources: client.Method( and
// s3.NewX( / manager.NewUploader(.
var s3CallRE = regexp.MustCompile(`\.(` + func() string {
	names := make([]string, 0, len(s3CallActions))
	for n := range s3CallActions {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	return strings.Join(names, "|")
}() + `)\(`)

func checkExactActions(c *tfConfig, goSrc map[string][]byte) []string {
	var v []string
	need := map[string][]string{} // action → calls
	for file, src := range goSrc {
		for _, m := range s3CallRE.FindAllSubmatch(src, -1) {
			a := s3CallActions[string(m[1])]
			need[a] = append(need[a], filepath.Base(file)+":"+string(m[1]))
		}
	}
	if len(need) == 0 {
		return []string{"iam: found no S3 calls in the Go sources: the scan no longer matches them"}
	}
	doc, ok := c.named("data", "aws_iam_policy_document", "task")
	if !ok {
		return []string{"iam: no data.aws_iam_policy_document.task"}
	}
	granted := map[string]bool{}
	for _, st := range children(doc.Block, "statement") {
		if e, _ := literalString(attr(st, "effect")); e == "Deny" {
			continue
		}
		lits, _ := listItems(attr(st, "actions"))
		for _, a := range lits {
			if strings.HasPrefix(a, "s3:") {
				granted[a] = true
			}
		}
	}
	for a, calls := range need {
		if !granted[a] {
			sort.Strings(calls)
			v = append(v, fmt.Sprintf("iam: the task role lacks %s, which %v need", a, slices.Compact(calls)))
		}
	}
	for a := range granted {
		if _, ok := need[a]; !ok {
			v = append(v, fmt.Sprintf("iam: the task role grants %s, which the code never calls", a))
		}
	}
	return v
}

// goS3Sources reads the non-test Go files of the packages that call S3 for
// the gateway (not the test environment or the benchmark).
func goS3Sources(t *testing.T) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, dir := range []string{"../storage/s3store", "../presign/s3presign"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no Go files in %s: %v", dir, err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out[f] = b
		}
	}
	return out
}

func TestDeployInvariants(t *testing.T) {
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range checkDeploy(mustParse(t, sources(t)), df, goS3Sources(t)) {
		t.Error(v)
	}
}

// TestDeployCheckerRejects breaks the real configuration one invariant at a
// time (each mutation reproduces a defect issue 14 found) and expects the
// checker to notice.
func TestDeployCheckerRejects(t *testing.T) {
	cases := []struct {
		name, file, re, repl, want string
	}{
		{"random provider", module + "versions.tf", `(required_providers \{)`, "$1\n    random = {\n      source  = \"hashicorp/random\"\n      version = \"~> 3.6\"\n    }", `requires provider "random"`},
		{"random password", module + "redis.tf", `(data "aws_secretsmanager_random_password")`, "resource \"random_password\" \"x\" {\n  length = 64\n}\n\n$1", "is not of the AWS provider"},
		{"region name", module + "ecs.tf", `data\.aws_region\.current\.id`, `data.aws_region.current.name`, "deprecated in v6"},
		{"no token update strategy", module + "redis.tf", `\n\s*auth_token_update_strategy\s*=\s*"ROTATE"`, ``, "auth_token_update_strategy"},
		{"service before the secret", module + "ecs.tf", `\n\s*aws_secretsmanager_secret_version\.redis,`, ``, "lacks aws_secretsmanager_secret_version"},
		{"service before exec policy", module + "ecs.tf", `\n\s*aws_iam_role_policy\.execution,`, ``, "lacks aws_iam_role_policy.execution"},
		{"no steady state", module + "ecs.tf", `wait_for_steady_state = true`, `wait_for_steady_state = false`, "wait_for_steady_state"},
		{"no public subnet check", module + "alb.tf", `var\.alb_internal \|\| length\(var\.public_subnet_ids\) >= 2`, `true`, "without public_subnet_ids"},
		{"no jwks check", module + "ecs.tf", `var\.auth != "jwt" \|\| \(var\.jwt_jwks_url != ""\) != \(var\.jwt_jwks_file != ""\)`, `true`, "auth = jwt without a JWKS"},
		{"empty values kept", module + "ecs.tf", `\{ for k, v in local\.gateway_settings : k => v if v != "" \}`, `local.gateway_settings`, "does not leave out the empty settings"},
		{"idle timeout fixed", module + "ecs.tf", `GATEWAY_IDLE_TIMEOUT = "\$\{var\.alb_idle_timeout \+ 60\}s"`, `GATEWAY_IDLE_TIMEOUT = "120s"`, "must wait longer than the ALB"},
		{"idle timeout shorter", module + "ecs.tf", `var\.alb_idle_timeout \+ 60`, `var.alb_idle_timeout - 1`, "must wait longer than the ALB"},
		{"no max retention", module + "ecs.tf", `\n\s*GATEWAY_MAX_RETENTION\s*=.*`, ``, "GATEWAY_MAX_RETENTION is not set"},
		{"max retention longer", module + "ecs.tf", `\$\{var\.retention_days \* 24\}h`, `$${var.retention_days * 48}h`, "the lifecycle rule deletes after"},
		{"max retention elsewhere", module + "ecs.tf", `\$\{var\.retention_days \* 24\}h`, `$${var.noncurrent_version_retention_days * 24}h`, "same one variable"},
		{"serve in the entrypoint", "Dockerfile", `ENTRYPOINT \["/usr/local/bin/fhir-binary-gateway"\]`, `ENTRYPOINT ["/usr/local/bin/fhir-binary-gateway", "serve"]`, "ENTRYPOINT is"},
		{"no gc schedule", module + "gc.tf", `resource "aws_scheduler_schedule"`, `resource "aws_cloudwatch_event_rule"`, "no aws_scheduler_schedule"},
		{"gc task serves", module + "gc.tf", `command = \["gc"\]`, `command = ["serve"]`, `runs the command ["gc"]`},
		{"list parts missing", module + "iam.tf", `\n\s*"s3:ListMultipartUploadParts",`, ``, "lacks s3:ListMultipartUploadParts"},
		{"tagging granted", module + "iam.tf", `"s3:AbortMultipartUpload",\n`, "\"s3:AbortMultipartUpload\",\n      \"s3:GetObjectTagging\",\n", "s3:GetObjectTagging, which the code never calls"},
		{"list uploads missing", module + "iam.tf", `actions   = \["s3:ListBucketMultipartUploads"\]`, `actions   = ["s3:ListBucket"]`, "lacks s3:ListBucketMultipartUploads"},
		{"metrics public", module + "alb.tf", `"/metrics\*", `, ``, "/metrics* and /readyz*"},
		{"trusted proxies anywhere", module + "ecs.tf", `join\(",", local\.alb_subnet_cidrs\)`, `"0.0.0.0/0"`, "GATEWAY_TRUSTED_PROXIES"},
		{"no alb access logs", module + "alb.tf", `dynamic "access_logs"`, `dynamic "connection_logs"`, "has no access_logs"},
		{"short audit retention", module + "variables.tf", `(variable "audit_log_retention_days" \{(?:.*\n)*?  default     = )2192`, `${1}90`, "at least six years"},
		{"round robin", module + "alb.tf", `"least_outstanding_requests"`, `"round_robin"`, "least_outstanding_requests"},
		{"fixed deregistration", module + "alb.tf", `deregistration_delay = var\.shutdown_grace_seconds`, `deregistration_delay = 300`, "deregistration_delay"},
		{"fixed GOMEMLIMIT", module + "ecs.tf", `gomemlimit_mib\s*=.*`, `gomemlimit_mib = 900`, "GOMEMLIMIT"},
		{"api gateway unchecked", module + "alb.tf", `local\.redirect_min_bytes < local\.api_gateway_payload_limit`, `true`, "API Gateway's 10 MB"},
		{"untagged", module + "redis.tf", `(resource "aws_elasticache_replication_group"(?:.*\n)*?)  tags = var\.tags\n`, `$1`, "aws_elasticache_replication_group.this has no tags"},
		{"no export policy output", module + "outputs.tf", `output "export_writer_policy_json"`, `output "export_policy"`, `no output "export_writer_policy_json"`},
	}
	df, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	goSrc := goS3Sources(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			srcs := sources(t)
			dockerfile := df
			orig := srcs[tc.file]
			if tc.file == "Dockerfile" {
				orig = df
			}
			if orig == nil {
				t.Fatalf("no %s", tc.file)
			}
			broken := regexp.MustCompile(tc.re).ReplaceAll(orig, []byte(tc.repl))
			if bytes.Equal(orig, broken) {
				t.Fatalf("mutation %q does not match %s any more: update the case", tc.re, tc.file)
			}
			if tc.file == "Dockerfile" {
				dockerfile = broken
			} else {
				srcs[tc.file] = broken
			}
			vs := checkDeploy(mustParse(t, srcs), dockerfile, goSrc)
			vs = append(vs, check(mustParse(t, srcs))...)
			for _, v := range vs {
				if strings.Contains(v, tc.want) {
					return
				}
			}
			t.Errorf("checker missed it: want a violation containing %q, got %q", tc.want, vs)
		})
	}
}

// TestExactActionsSeesNewCalls: a new S3 call in the code (say
// GetObjectTagging) without its grant is caught.
func TestExactActionsSeesNewCalls(t *testing.T) {
	c := mustParse(t, sources(t))
	src := goS3Sources(t)
	src["new.go"] = []byte(`func f() { c.client.GetObjectTagging(ctx, in) }`)
	vs := checkExactActions(c, src)
	if !slices.ContainsFunc(vs, func(v string) bool { return strings.Contains(v, "lacks s3:GetObjectTagging") }) {
		t.Errorf("a GetObjectTagging call without s3:GetObjectTagging passed: %q", vs)
	}
}
