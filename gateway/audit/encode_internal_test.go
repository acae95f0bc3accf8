package audit

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// encodingJSON is the line as encoding/json writes it, the reference the
// hand-written encoder must match byte for byte.
func encodingJSON(t testing.TB, ev auditEvent) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(ev); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func checkSame(t testing.TB, ev auditEvent) {
	t.Helper()
	want := encodingJSON(t, ev)
	got := append(ev.appendJSON(nil), '\n')
	if !bytes.Equal(got, want) {
		t.Fatalf("hand-written JSON differs from encoding/json\n got: %s\nwant: %s", got, want)
	}
}

// Strings that exercise every escape: quotes, backslashes, each control
// byte, HTML characters (kept as they are), invalid UTF-8, U+2028/2029,
// multi-byte runes and a rune cut short.
var awkward = []string{
	"", "plain", `quo"te`, `back\slash`, "\b\f\n\r\t", "\x00\x01\x1f\x7f", "<a&b>",
	"\xff", "ok\xc3", "\u2028 \u2029", "héllo wörld ✓ 🙂", "\xe2\x80", "a\u2027b\u202ac",
}

func TestEncodeMatchesEncodingJSON(t *testing.T) {
	full := auditEvent{
		ResourceType: "AuditEvent",
		Extension:    []ext{{URL: extQueryLength, ValueInt: 4242}, {URL: "u", ValueInt: -1}},
		Type:         coding{System: sysEventType, Code: "rest"},
		Subtype:      []coding{{System: sysInteraction, Code: "operation"}, {Code: "$binary-access-read"}},
		Action:       "R", Recorded: "2026-12-03T07:00:00.000Z", Outcome: "0", OutcomeDesc: "307 redirect",
		Agent: []agent{
			{Type: &concept{Coding: []coding{{Code: "x"}}}, Who: &reference{Identifier: &identifier{System: sysClientID, Value: "c"}}, AltID: "sub", Requestor: true, Network: &network{Address: "::1", Type: "2"}},
			{Type: &concept{}, Who: &reference{Reference: "r", Display: "d"}},
		},
		Source: source{Site: "tenant", Observer: reference{Display: gatewayName}},
		Entity: []entity{
			{What: &reference{Reference: "Binary/1/_history/2"}},
			{What: &reference{Identifier: &identifier{Value: "req"}}, Type: &coding{System: sysBALPEntity, Code: "XrequestId"}, Role: &coding{Code: "4"}, Name: "n", Query: "cT0x"},
			{},
		},
	}
	checkSame(t, full)
	checkSame(t, auditEvent{}) // every slice nil, every string empty
	for _, s := range awkward {
		ev := full
		ev.OutcomeDesc, ev.Source.Site = s, s
		ev.Agent = []agent{{Who: &reference{Identifier: &identifier{Value: s}}, AltID: s, Network: &network{Address: s}}}
		ev.Entity = []entity{{What: &reference{Reference: s, Display: s}, Name: s, Query: s}}
		checkSame(t, ev)
	}
	// Every kind of record event builds, through Line as the gateway uses it.
	for _, r := range []Record{
		{Interaction: "operation", Operation: "$binary-access-read", Redirect: true, Status: 307, Client: "app", Address: "127.0.0.1", Binary: "Binary/x", SecurityContext: "Patient/1", RequestID: "id"},
		{Interaction: "search-type", Status: 200, Query: "_lastUpdated=gt2020&x=" + string(make([]byte, 400)), Tenant: "t"},
		{Interaction: "read", Status: 403, Reason: "label \"R\" <refused>", Client: "a", Subject: "b"},
		{Interaction: "create", Status: 500, Reason: "\xffbroken\u2028"},
	} {
		r.Time = time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
		rb, cut := bounded(r)
		checkSame(t, event(rb, cut))
	}
}

func FuzzEncodeMatchesEncodingJSON(f *testing.F) {
	for _, s := range awkward {
		f.Add(s, s, 307)
	}
	f.Fuzz(func(t *testing.T, a, b string, status int) {
		r := Record{Time: time.Unix(0, 0), Interaction: "operation", Operation: a, Status: status, Reason: b,
			Client: a, Subject: b, Tenant: a, Address: b, Binary: a, SecurityContext: b, Query: a, RequestID: b}
		for _, in := range []string{"operation", "search-type"} {
			r.Interaction = in
			rb, cut := bounded(r)
			checkSame(t, event(rb, cut))
			checkSame(t, event(r, 0)) // unclipped too
		}
	})
}

func BenchmarkLine(b *testing.B) {
	r := Record{Time: time.Now(), Interaction: "operation", Operation: "$binary-access-read", Redirect: true, Status: 307,
		Client: "bulk-export-client", Address: "10.1.2.3", Binary: "Binary/beaa10be-0ce4-411f-9533-c43b0283fbf0", RequestID: "62222938-38a1-4c02-abaa-ea9f7b1888a5"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Line(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLineEncodingJSON(b *testing.B) {
	r := Record{Time: time.Now(), Interaction: "operation", Operation: "$binary-access-read", Redirect: true, Status: 307,
		Client: "bulk-export-client", Address: "10.1.2.3", Binary: "Binary/beaa10be-0ce4-411f-9533-c43b0283fbf0", RequestID: "62222938-38a1-4c02-abaa-ea9f7b1888a5"}
	b.ReportAllocs()
	for b.Loop() {
		rb, cut := bounded(r)
		encodingJSON(b, event(rb, cut))
	}
}
