package terraform_test

// The inputs and outputs tables of the module's and the example's README
// (terraform-docs style) are generated from the variables and outputs; this
// test fails when they differ. Regenerate with
//
//	UPDATE_TF_DOCS=1 go test ./terraform/ -run TestReadmeTables

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclwrite"
)

const (
	docsBegin = "<!-- BEGIN_TF_DOCS -->"
	docsEnd   = "<!-- END_TF_DOCS -->"
)

// tfDocs renders the inputs and outputs of the .tf files in dir.
func tfDocs(srcs map[string][]byte, dir string) string {
	c, err := parseConfig(srcs)
	if err != nil {
		panic(err)
	}
	type row struct{ name, desc, typ, def string }
	var ins, outs []row
	for _, b := range c.blocks {
		if path.Dir(b.file) != dir || len(b.Labels) != 1 {
			continue
		}
		src := srcs[b.file]
		text := func(attrName string) string {
			a, ok := b.Body.Attributes[attrName]
			if !ok {
				return ""
			}
			r := a.Expr.Range()
			return string(hclwrite.Format(src[r.Start.Byte:r.End.Byte]))
		}
		desc, _ := literalString(attr(b.Block, "description"))
		switch b.Type {
		case "variable":
			def := "n/a"
			if _, ok := b.Body.Attributes["default"]; ok {
				def = text("default")
			}
			ins = append(ins, row{b.Labels[0], desc, text("type"), def})
		case "output":
			outs = append(outs, row{name: b.Labels[0], desc: desc})
		}
	}
	sort.Slice(ins, func(i, j int) bool { return ins[i].name < ins[j].name })
	sort.Slice(outs, func(i, j int) bool { return outs[i].name < outs[j].name })
	cell := func(s string) string {
		s = strings.ReplaceAll(strings.TrimSpace(s), "|", "\\|")
		return strings.ReplaceAll(s, "\n", "<br>")
	}
	var w bytes.Buffer
	w.WriteString(docsBegin + "\n## Inputs\n\n| Name | Description | Type | Default | Required |\n|------|-------------|------|---------|:--------:|\n")
	for _, r := range ins {
		req := "no"
		def := "`" + cell(r.def) + "`"
		if r.def == "n/a" {
			req, def = "yes", "n/a"
		}
		fmt.Fprintf(&w, "| <a name=\"input_%s\"></a> [%s](#input_%s) | %s | `%s` | %s | %s |\n", r.name, r.name, r.name, cell(r.desc), cell(r.typ), def, req)
	}
	w.WriteString("\n## Outputs\n\n| Name | Description |\n|------|-------------|\n")
	for _, r := range outs {
		fmt.Fprintf(&w, "| <a name=\"output_%s\"></a> [%s](#output_%s) | %s |\n", r.name, r.name, r.name, cell(r.desc))
	}
	w.WriteString(docsEnd)
	return w.String()
}

func TestReadmeTables(t *testing.T) {
	srcs := sources(t)
	for _, dir := range []string{"modules/fhir-binary-gateway", "examples/aws"} {
		readme := dir + "/README.md"
		b, err := os.ReadFile(readme)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		i, j := strings.Index(s, docsBegin), strings.Index(s, docsEnd)
		if i < 0 || j < i {
			t.Fatalf("%s has no %s … %s section", readme, docsBegin, docsEnd)
		}
		want := tfDocs(srcs, dir)
		if got := s[i : j+len(docsEnd)]; got != want {
			if os.Getenv("UPDATE_TF_DOCS") != "" {
				if err := os.WriteFile(readme, []byte(s[:i]+want+s[j+len(docsEnd):]), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			t.Errorf("%s: the inputs/outputs tables do not match the variables and outputs; run UPDATE_TF_DOCS=1 go test ./terraform/ -run TestReadmeTables", readme)
		}
	}
}
