package config

import (
	"flag"
	"fmt"
	"sort"
	"strings"
	"time"
)

// EnvPrefix starts the name of every setting's environment variable.
const EnvPrefix = "GATEWAY_"

// UnknownEnv returns, sorted, a warning for each GATEWAY_* variable of
// environ ("NAME=value" pairs, as os.Environ gives) that is no setting: a
// typo such as GATEWAY_S3_BUCKETS would otherwise fall back to the embedded
// store without a word. Each warning names the variable and, when one is
// close, the setting that was probably meant.
func UnknownEnv(environ []string) []string {
	known := map[string]bool{}
	for _, s := range settings() {
		known[s.env] = true
	}
	var out []string
	seen := map[string]bool{}
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, EnvPrefix) || known[name] || seen[name] {
			continue
		}
		seen[name] = true
		msg := name + " is not a setting of this program and is ignored"
		if near := nearestSetting(name); near != "" {
			msg += " (did you mean " + near + "?)"
		}
		out = append(out, msg)
	}
	sort.Strings(out)
	return out
}

// nearestSetting is the setting whose name is within a few edits of name.
func nearestSetting(name string) string {
	best, bestD := "", 4
	for _, s := range settings() {
		if d := editDistance(name, s.env); d < bestD {
			best, bestD = s.env, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance of a and b (ASCII names).
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// ParseDuration reads a Go duration that is zero or more ("0", "90s", "5m",
// "24h"), with the same one-line error the settings give.
func ParseDuration(v string) (time.Duration, error) {
	return nonNegDuration(strings.TrimSpace(v))
}

// DurationFlag defines a duration flag on fs whose bad values are reported
// like the settings' ("--grace: \"banana\" is not a duration such as ..."),
// not with the flag package's "parse error".
func DurationFlag(fs *flag.FlagSet, p *time.Duration, name string, def time.Duration, usage string) {
	*p = def
	fs.Func(name, fmt.Sprintf("%s (default %s)", usage, def), func(v string) error {
		d, err := ParseDuration(v)
		if err != nil {
			return err
		}
		*p = d
		return nil
	})
}

// flagValues rewrites the flag package's "invalid value %q for flag -%s: %v"
// into the settings' one-line form, naming the flag as users type it
// (--name): every flag's Value is wrapped so that a failing Set records the
// flag and the error its parser gave.
type flagValues struct {
	failed, value string
	isBool        bool
	err           error
}

func (w *flagValues) watch(fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		f.Value = watchedValue{Value: f.Value, name: f.Name, w: w}
	})
}

type watchedValue struct {
	flag.Value
	name string
	w    *flagValues
}

func (v watchedValue) Set(s string) error {
	err := v.Value.Set(s)
	if err != nil && v.w.err == nil {
		v.w.failed, v.w.value, v.w.isBool, v.w.err = v.name, s, v.IsBoolFlag(), err
	}
	return err
}

// IsBoolFlag keeps a wrapped bool flag taking no value (--dry-run).
func (v watchedValue) IsBoolFlag() bool {
	b, ok := v.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// explain turns a parse error of the flag set into one line naming the flag.
func (w *flagValues) explain(err error) error {
	switch {
	case w.err == nil:
		return fmt.Errorf("command line: %v", err)
	case w.isBool:
		return fmt.Errorf("--%s: %q is not true or false", w.failed, w.value)
	}
	return fmt.Errorf("--%s: %v", w.failed, w.err)
}
