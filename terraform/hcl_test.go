package terraform_test

// Reading Terraform with HCL's own parser (hclparse + hclsyntax, what
// Terraform itself uses): blocks, attributes, literals and the names an
// expression refers to. The rules built on these are in rules_test.go.

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// tfConfig is every top-level block of a set of .tf files.
type tfConfig struct {
	blocks []tfBlock
}

type tfBlock struct {
	file string // path relative to terraform/
	*hclsyntax.Block
}

// parseConfig parses sources (relative path → content); syntax errors are
// returned, not skipped, so a broken file cannot pass as an empty one.
func parseConfig(srcs map[string][]byte) (*tfConfig, error) {
	p := hclparse.NewParser()
	names := make([]string, 0, len(srcs))
	for n := range srcs {
		names = append(names, n)
	}
	sort.Strings(names)
	c := &tfConfig{}
	for _, n := range names {
		f, diags := p.ParseHCL(srcs[n], n)
		if diags.HasErrors() {
			return nil, fmt.Errorf("%s: %s", n, diags.Error())
		}
		for _, b := range f.Body.(*hclsyntax.Body).Blocks {
			c.blocks = append(c.blocks, tfBlock{n, b})
		}
	}
	return c, nil
}

// find returns the top-level blocks of kind ("resource", "data") and type.
func (c *tfConfig) find(kind, typ string) []tfBlock {
	var out []tfBlock
	for _, b := range c.blocks {
		if b.Type == kind && len(b.Labels) >= 1 && b.Labels[0] == typ {
			out = append(out, b)
		}
	}
	return out
}

func (c *tfConfig) named(kind, typ, name string) (tfBlock, bool) {
	for _, b := range c.find(kind, typ) {
		if len(b.Labels) == 2 && b.Labels[1] == name {
			return b, true
		}
	}
	return tfBlock{}, false
}

func (b tfBlock) String() string { return b.file + ": " + b.Type + " " + strings.Join(b.Labels, ".") }

func attr(b *hclsyntax.Block, name string) hclsyntax.Expression {
	if a, ok := b.Body.Attributes[name]; ok {
		return a.Expr
	}
	return nil
}

// children returns the nested blocks of type typ, including the content of
// `dynamic "typ"` blocks.
func children(b *hclsyntax.Block, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, n := range b.Body.Blocks {
		if n.Type == typ {
			out = append(out, n)
		}
		if n.Type == "dynamic" && len(n.Labels) == 1 && n.Labels[0] == typ {
			for _, content := range n.Body.Blocks {
				if content.Type == "content" {
					out = append(out, content)
				}
			}
		}
	}
	return out
}

// literal evaluates an expression without variables; ok is false for
// anything that refers to something (var.x, resources, functions of them).
func literal(e hclsyntax.Expression) (cty.Value, bool) {
	if e == nil || len(e.Variables()) > 0 {
		return cty.NilVal, false
	}
	v, diags := e.Value(nil)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		return cty.NilVal, false
	}
	return v, true
}

func isTrue(e hclsyntax.Expression) bool {
	v, ok := literal(e)
	return ok && v.Type() == cty.Bool && v.True()
}

func literalString(e hclsyntax.Expression) (string, bool) {
	v, ok := literal(e)
	if !ok || v.Type() != cty.String {
		return "", false
	}
	return v.AsString(), true
}

// listItems splits a list expression into its literal strings and the
// elements that are not literals (references, templates with references).
func listItems(e hclsyntax.Expression) (lits []string, exprs []hclsyntax.Expression) {
	t, ok := e.(*hclsyntax.TupleConsExpr)
	if !ok {
		return nil, []hclsyntax.Expression{e}
	}
	for _, x := range t.Exprs {
		if s, ok := literalString(x); ok {
			lits = append(lits, s)
		} else {
			exprs = append(exprs, x)
		}
	}
	return lits, exprs
}

// refs names what an expression refers to, e.g. "aws_s3_bucket.this.arn".
func refs(e hclsyntax.Expression) []string {
	if e == nil {
		return nil
	}
	var out []string
	for _, t := range e.Variables() {
		parts := []string{t.RootName()}
		for _, s := range t[1:] {
			if a, ok := s.(hcl.TraverseAttr); ok {
				parts = append(parts, a.Name)
			}
		}
		out = append(out, strings.Join(parts, "."))
	}
	return out
}

func refersTo(e hclsyntax.Expression, prefix string) bool {
	return slices.ContainsFunc(refs(e), func(r string) bool { return strings.HasPrefix(r, prefix) })
}

// docName returns X when e refers to data.aws_iam_policy_document.X.
func docName(e hclsyntax.Expression) string {
	for _, r := range refs(e) {
		if p := strings.Split(r, "."); len(p) >= 3 && p[0] == "data" && p[1] == "aws_iam_policy_document" {
			return p[2]
		}
	}
	return ""
}
