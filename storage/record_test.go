package storage_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"fhir-binary-gateway/storage"
)

func sameAsUnmarshal(t testing.TB, data []byte) {
	t.Helper()
	var want storage.Binary
	wantErr := json.Unmarshal(data, &want)
	got, err := storage.DecodeBinary(data)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("DecodeBinary(%q) error %v, json.Unmarshal's %v", data, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeBinary(%q)\n got %#v\nwant %#v", data, got, want)
	}
}

func recordSeeds() [][]byte {
	yes := true
	full := storage.Binary{
		Tenant: "t1", ID: "beaa10be-0ce4-411f-9533-c43b0283fbf0", Version: 3, ObjectKey: "binaries/t1/x/v3-abc",
		ContentType: "application/fhir+ndjson", SecurityContext: "Patient/1", Filename: "héllo.ndjson",
		Size: 1 << 40, SHA256: "ab", Encoding: "gzip", StoredSize: 12, StoredSHA256: "cd", Owner: "app",
		LastUpdated: time.Date(2026, 12, 3, 7, 0, 0, 123456789, time.UTC),
		ExpiresAt:   time.Date(2027, 1, 1, 0, 0, 0, 0, time.FixedZone("x", 3600)),
		Deleted:     true, Language: "en-GB", Via: "PUT", Expunged: true,
	}
	withTags := full
	withTags.Tags = []storage.Coding{{System: "s", Code: "c", UserSelected: &yes}}
	withTags.Security = []storage.Coding{{Code: "R"}}
	escaped := full
	escaped.Filename = "a\"b\\c\n<>&\u2028"
	var seeds [][]byte
	for _, b := range []storage.Binary{{}, {ID: "x", Version: 1}, full, withTags, escaped} {
		data, err := json.Marshal(b)
		if err != nil {
			panic(err)
		}
		seeds = append(seeds, data)
	}
	return append(seeds,
		[]byte(`{}`), []byte(`{"id":"x","ID":"y"}`), []byte(`{"id":"x","id":"y"}`), []byte(`{"version":1.0}`),
		[]byte(`{"version":01}`), []byte(`{"version":-0}`), []byte(`{"version":-1}`), []byte(`{"version":99999999999999999999}`),
		[]byte(`{"size":-}`), []byte(`{"deleted":null}`), []byte(`{"id":null}`), []byte(`{"deleted":tru}`),
		[]byte(`{"lastUpdated":"2026-13-01T00:00:00Z"}`), []byte(`{"lastUpdated":"2026-12-01T00:00:00Z"}`),
		[]byte(`{"lastUpdated":"2026-12-01T00:00:00+25:00"}`), []byte(`{"expiresAt":"2026-12-01T00:00:00.5Z"}`),
		[]byte(`{"id":"\xff"}`), []byte("{\"id\":\"a\tb\"}"), []byte(`{"id":"x",}`), []byte(`{"id":"x"}x`),
		[]byte(`{"id" : "x"}`), []byte(` {"id":"x"}`), []byte(`{"id":"x"`), []byte(`{"unknown":1}`), []byte(`[]`), []byte(``),
		[]byte(`{"size":12,"storedSize":-3,"version":2147483648}`), []byte(`{"id":"x"}}`), []byte(`{"id":"x"{}`),
	)
}

// TestDecodeBinaryMatchesUnmarshal: the scanner's record is json.Unmarshal's,
// for what the catalogs write and for what they never do.
func TestDecodeBinaryMatchesUnmarshal(t *testing.T) {
	for _, s := range recordSeeds() {
		sameAsUnmarshal(t, s)
	}
}

func FuzzDecodeBinary(f *testing.F) {
	for _, s := range recordSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { sameAsUnmarshal(t, data) })
}

func BenchmarkDecodeBinary(b *testing.B) {
	data, _ := json.Marshal(storage.Binary{
		ID: "beaa10be-0ce4-411f-9533-c43b0283fbf0", Version: 1, ObjectKey: "binaries/default/beaa10be-0ce4-411f-9533-c43b0283fbf0/v1-5f1c2a",
		ContentType: "application/octet-stream", Size: 400, SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
		LastUpdated: time.Now().UTC(), Via: "POST",
	})
	b.Run("DecodeBinary", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := storage.DecodeBinary(data); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json.Unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var v storage.Binary
			if err := json.Unmarshal(data, &v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
