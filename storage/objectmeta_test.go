package storage

import (
	"reflect"
	"testing"
	"time"
)

func TestObjectMetadataRoundTrip(t *testing.T) {
	b := Binary{
		Tenant: "acme", ID: "abc-1.2", Version: 3, ObjectKey: "binaries/acme/abc-1.2/v3-x",
		ContentType: "application/fhir+ndjson", SecurityContext: "Group/example-group",
		Filename: "Résumé \"final\".pdf", Owner: "pct:client", Size: 42, Via: "PUT", Language: "de-CH",
		Tags:        []Coding{{System: "urn:export", Code: "job-7"}},
		Security:    []Coding{{System: "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", Code: "R"}},
		LastUpdated: time.Date(2024, 1, 15, 10, 30, 0, 123000000, time.UTC),
		ExpiresAt:   time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	m := ObjectMetadata(b)
	for k, v := range m {
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] > 0x7e {
				t.Fatalf("metadata %s=%q is not printable ASCII", k, v)
			}
		}
	}
	got, err := BinaryFromObject(ObjectInfo{Key: b.ObjectKey, Size: 42, Metadata: m})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, b) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, b)
	}
	if _, err := BinaryFromObject(ObjectInfo{Key: "stray", Metadata: map[string]string{}}); err == nil {
		t.Fatal("an object without metadata must not become a Binary")
	}
}
