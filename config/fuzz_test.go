package config

import (
	"strings"
	"testing"
)

// FuzzLoad: any value of any setting is either accepted or refused with one
// line that names the setting; nothing panics.
func FuzzLoad(f *testing.F) {
	f.Add("GATEWAY_PRESIGN_TTL", "5m")
	f.Add("GATEWAY_MAX_UPLOAD_SIZE", "9999999999999TiB")
	f.Add("GATEWAY_REDIS_URL", "redis://:pw@host:6379/0")
	f.Add("GATEWAY_BASE_PATH", "/a b")
	f.Fuzz(func(t *testing.T, name, value string) {
		var names []string
		for _, s := range settings() {
			names = append(names, s.env)
		}
		if !strings.HasPrefix(name, "GATEWAY_") && len(name) > 0 {
			name = names[int(name[0])%len(names)]
		}
		_, err := Load(nil, func(k string) string {
			if k == name {
				return value
			}
			return ""
		})
		if err != nil && (strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "GATEWAY_")) {
			t.Fatalf("%s=%q: error %q is not one line naming a setting", name, value, err)
		}
	})
}

func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"1MiB", "8MiB", "5GiB", "1048576", "12KB", " 3 GiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n, err := ParseSize(s); err == nil && n < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, n)
		}
	})
}
