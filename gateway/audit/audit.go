// Package audit writes one FHIR AuditEvent per access as a JSON line, shaped
// after the IHE Basic Audit Log Patterns (BALP) RESTful events. What goes in
// is chosen by the caller; tokens, signatures and content never do.
package audit

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Record is what one request did, in the gateway's terms.
type Record struct {
	Time time.Time
	// Interaction is the FHIR restful-interaction code: read, vread,
	// history-instance, create, update, delete, search-type, operation.
	Interaction string
	// Operation names the operation for Interaction "operation"
	// ($binary-access-read, $export-download, $import).
	Operation string
	// Redirect is set when the content was handed out as a presigned URL.
	Redirect bool
	// Status is the HTTP status answered.
	Status int
	// Reason is why a request failed or was refused ("" on success).
	Reason string
	// Client is the authenticated client ("" without authentication),
	// Subject the token's sub, Tenant the tenant of the request.
	Client, Subject, Tenant string
	// Address is the client's network address.
	Address string
	// Binary is "Binary/{id}" (with "/_history/{n}" for a version) and
	// SecurityContext its securityContext reference, when known.
	Binary, SecurityContext string
	// Query is the search's query string, for search-type.
	Query string
	// RequestID ties the event to the request log line.
	RequestID string
}

// Sink takes audit records; Write fails when the record is not durably
// handed to the sink (the gateway then serves nothing).
type Sink interface {
	Write(Record) error
	Close() error
}

// Open returns the sink for a GATEWAY_AUDIT_LOG value: "-" is stdout, any
// other value a file opened for appending (created 0600).
func Open(path string, stdout io.Writer) (Sink, error) {
	if path == "-" || path == "" {
		return NewWriter(stdout, nil), nil
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return NewWriter(f, f), nil
}

// Writer writes each record as one JSON line with one Write call, so lines
// from concurrent requests never interleave.
type Writer struct {
	mu     sync.Mutex
	w      io.Writer
	closer io.Closer
}

// NewWriter writes lines to w; closer (may be nil) is closed by Close.
func NewWriter(w io.Writer, closer io.Closer) *Writer { return &Writer{w: w, closer: closer} }

func (s *Writer) Write(r Record) error {
	line, err := Line(r)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w == nil {
		return errors.New("audit log closed")
	}
	n, err := s.w.Write(line)
	if err == nil && n < len(line) {
		err = io.ErrShortWrite
	}
	return err
}

func (s *Writer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.w = nil
	if s.closer != nil {
		return s.closer.Close()
	}
	return nil
}

// Discard accepts and drops every record.
type Discard struct{}

func (Discard) Write(Record) error { return nil }
func (Discard) Close() error       { return nil }

// The FHIR AuditEvent, only the elements BALP's RESTful patterns use, and
// without displays: codes and systems say it all, and an event stays under
// MaxEvent bytes whatever the request.
type auditEvent struct {
	ResourceType string   `json:"resourceType"`
	Extension    []ext    `json:"extension,omitempty"`
	Type         coding   `json:"type"`
	Subtype      []coding `json:"subtype"`
	Action       string   `json:"action"`
	Recorded     string   `json:"recorded"`
	Outcome      string   `json:"outcome"`
	OutcomeDesc  string   `json:"outcomeDesc,omitempty"`
	Agent        []agent  `json:"agent"`
	Source       source   `json:"source"`
	Entity       []entity `json:"entity,omitempty"`
}

type coding struct {
	System string `json:"system,omitempty"`
	Code   string `json:"code"`
}

type concept struct {
	Coding []coding `json:"coding"`
}

type identifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value"`
}

type reference struct {
	Reference  string      `json:"reference,omitempty"`
	Identifier *identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

type network struct {
	Address string `json:"address"`
	Type    string `json:"type"`
}

type agent struct {
	Type      *concept   `json:"type,omitempty"`
	Who       *reference `json:"who,omitempty"`
	AltID     string     `json:"altId,omitempty"`
	Requestor bool       `json:"requestor"`
	Network   *network   `json:"network,omitempty"`
}

type source struct {
	Site     string    `json:"site,omitempty"` // the tenant
	Observer reference `json:"observer"`
}

type entity struct {
	What  *reference `json:"what,omitempty"`
	Type  *coding    `json:"type,omitempty"`
	Role  *coding    `json:"role,omitempty"`
	Name  string     `json:"name,omitempty"`
	Query string     `json:"query,omitempty"` // base64, as FHIR's base64Binary
}

type ext struct {
	URL      string `json:"url"`
	ValueInt int    `json:"valueInteger"`
}

const (
	sysEventType   = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	sysInteraction = "http://hl7.org/fhir/restful-interaction"
	sysBALPEntity  = "https://profiles.ihe.net/ITI/BALP/CodeSystem/BasicAuditEntityType"
	sysClientID    = "urn:ietf:params:oauth:client-id"
	// The full length of a query cut to MaxQuery.
	extQueryLength = "https://fhir-binary-gateway.dev/fhir/StructureDefinition/audit-query-length"
	gatewayName    = "fhir-binary-gateway"
)

// actions maps an interaction to AuditEvent.action (C, R, U, D, E).
var actions = map[string]string{
	"create": "C", "read": "R", "vread": "R", "history-instance": "R",
	"update": "U", "delete": "D", "search-type": "E", "operation": "E",
}

// MaxEvent bounds one AuditEvent line, newline included (issue 10, item
// 1: a refused request with a long query once wrote an event 2.7 times the
// request's size). Each field a client can influence has a cap below; when
// fields at their caps would still pass MaxEvent, Line cuts them further
// in the order of fit, least needed first (TestEventSizeBound tries the
// worst case of every kind of request).
const MaxEvent = 1024

// Caps, in bytes of the field as JSON encodes it (a cut value ends in "…").
const (
	// MaxQuery is the most of a search's query string recorded (before
	// base64); a longer one is cut there and its full length noted.
	MaxQuery    = 144
	maxReason   = 96
	maxClient   = 64  // client_id
	maxSubject  = 64  // sub, when it differs from the client
	maxLabel    = 64  // securityContext reference
	maxBinary   = 100 // "Binary/" + a 64-character id + "/_history/" + a version
	maxRequest  = 64  // X-Request-Id
	maxAddress  = 46  // an IPv6 address in text
	maxTenant   = 32
	maxInteract = 20 // interaction, operation: the gateway's own names
)

// jsonCost is how many bytes encoding/json (HTML escaping off) writes for
// the rune r that took size bytes of the input.
func jsonCost(r rune, size int) int {
	switch {
	case r == utf8.RuneError && size == 1:
		return 6 // \ufffd
	case r == '"' || r == '\\' || r == '\n' || r == '\r' || r == '\t':
		return 2
	case r < 0x20 || r == '\u2028' || r == '\u2029':
		return 6
	}
	return size
}

// jsonLen is the length of s as encoding/json writes it, quotes aside.
func jsonLen(s string) int {
	i := 0
	for i < len(s) && jsonSafe[s[i]] {
		i++ // the common case: printable ASCII, one byte each
	}
	n := i
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		n += jsonCost(r, size)
		i += size
	}
	return n
}

// clip cuts s so that its JSON encoding takes at most n bytes, on a rune
// boundary, marking the cut with "…".
func clip(s string, n int) string {
	if jsonLen(s) <= n {
		return s
	}
	const mark = "…"
	budget, end := n-len(mark), 0
	for end < len(s) {
		r, size := utf8.DecodeRuneInString(s[end:])
		c := jsonCost(r, size)
		if c > budget {
			break
		}
		budget -= c
		end += size
	}
	return s[:end] + mark
}

// bounded is r with every client-influenced field clipped, and the query's
// full length when it was cut.
func bounded(r Record) (Record, int) {
	queryLen := len(r.Query)
	if queryLen > MaxQuery {
		r.Query = r.Query[:MaxQuery-len("…")]
		for len(r.Query) > 0 && !utf8.ValidString(r.Query) {
			r.Query = r.Query[:len(r.Query)-1]
		}
		r.Query += "…"
	} else {
		queryLen = 0
	}
	r.Interaction, r.Operation = clip(r.Interaction, maxInteract), clip(r.Operation, maxInteract)
	r.Tenant = clip(r.Tenant, maxTenant)
	r.Reason = clip(r.Reason, maxReason)
	r.Client, r.Subject, r.SecurityContext = clip(r.Client, maxClient), clip(r.Subject, maxSubject), clip(r.SecurityContext, maxLabel)
	r.Address = clip(r.Address, maxAddress)
	r.Binary, r.RequestID = clip(r.Binary, maxBinary), clip(r.RequestID, maxRequest)
	return r, queryLen
}

// Line renders a record as one AuditEvent JSON line, newline included,
// shorter than MaxEvent.
func Line(r Record) ([]byte, error) {
	r, cutQuery := bounded(r)
	line, err := render(r, cutQuery)
	// Still too long only when several fields are at their caps: cut the
	// least needed further, one at a time, until the event fits. The
	// Binary, the address and the gateway's own names are never cut, and
	// with everything else empty an event is far below MaxEvent.
	for _, f := range []*string{&r.Reason, &r.Subject, &r.SecurityContext, &r.Tenant, &r.Client, &r.RequestID} {
		if err != nil || len(line) < MaxEvent {
			break
		}
		over := len(line) - MaxEvent + 1
		if n := jsonLen(*f) - over; n > len("…") {
			*f = clip(*f, n)
		} else {
			*f = ""
		}
		line, err = render(r, cutQuery)
	}
	return line, err
}

// render writes the event as encoding/json would with HTML escaping off
// (so that clip's costs hold: "<" stays one byte), newline included.
func render(r Record, cutQuery int) ([]byte, error) {
	ev := event(r, cutQuery)
	return append(ev.appendJSON(make([]byte, 0, MaxEvent)), '\n'), nil
}

// Event renders a record as a FHIR AuditEvent, every field bounded. What
// a request can't have is left out, which is what keeps the worst case of
// each kind of request under MaxEvent: a reason only on a failure, a query
// only on a search that ran, delivery only on a success.
func Event(r Record) any {
	r, cutQuery := bounded(r)
	return event(r, cutQuery)
}

func event(r Record, cutQuery int) auditEvent {
	failed := r.Status >= 400
	if failed {
		r.Redirect, r.Query, cutQuery = false, "", 0
	} else {
		r.Reason = ""
	}
	if r.Interaction == "search-type" {
		r.Binary, r.SecurityContext = "", "" // a search is of the type
	} else {
		r.Query, cutQuery = "", 0
	}
	action := actions[r.Interaction]
	if action == "" {
		action = "E"
	}
	if r.Interaction == "operation" && r.Operation != "$import" {
		action = "R" // the download operations read content
	}
	ev := auditEvent{
		ResourceType: "AuditEvent",
		Type:         coding{System: sysEventType, Code: "rest"},
		Subtype:      []coding{{System: sysInteraction, Code: r.Interaction}},
		Action:       action,
		Recorded:     r.Time.UTC().Format("2006-01-02T15:04:05.000Z07:00"),
		Outcome:      outcome(r.Status),
		OutcomeDesc:  outcomeDesc(r),
		// The gateway is the source (an application server); BALP's
		// server agent would only repeat it.
		Source: source{Site: r.Tenant, Observer: reference{Display: gatewayName}},
	}
	if r.Operation != "" {
		ev.Subtype = append(ev.Subtype, coding{Code: r.Operation})
	}
	client := agent{Requestor: true}
	if r.Client != "" {
		client.Who = &reference{Identifier: &identifier{System: sysClientID, Value: r.Client}}
	} else {
		client.Who = &reference{Display: "anonymous"}
	}
	if r.Subject != "" && r.Subject != r.Client {
		client.AltID = r.Subject
	}
	if r.Address != "" {
		client.Network = &network{Address: r.Address, Type: "2"} // IP address
	}
	ev.Agent = []agent{client}
	if r.Binary != "" {
		ev.Entity = append(ev.Entity, entity{What: &reference{Reference: r.Binary}})
	}
	if r.SecurityContext != "" {
		ev.Entity = append(ev.Entity, entity{What: &reference{Reference: r.SecurityContext}})
	}
	if r.Query != "" {
		ev.Entity = append(ev.Entity, entity{Query: b64(r.Query)})
	}
	if r.RequestID != "" {
		ev.Entity = append(ev.Entity, entity{
			What: &reference{Identifier: &identifier{Value: r.RequestID}},
			Type: &coding{System: sysBALPEntity, Code: "XrequestId"},
		})
	}
	if cutQuery > 0 {
		ev.Extension = []ext{{URL: extQueryLength, ValueInt: cutQuery}}
	}
	return ev
}

// outcomeDesc is the HTTP status first, then "redirect" when the content
// was handed out as a presigned URL, or why the request failed.
func outcomeDesc(r Record) string {
	d := strconv.Itoa(r.Status)
	if r.Redirect {
		d += " redirect"
	}
	if r.Reason != "" {
		d += " " + r.Reason
	}
	return d
}

// outcome is AuditEvent.outcome: 0 success, 4 minor failure (the client's
// mistake or a refusal), 8 serious failure (the server's).
func outcome(status int) string {
	switch {
	case status >= 500:
		return "8"
	case status >= 400:
		return "4"
	}
	return "0"
}

func b64(s string) string {
	return base64.StdEncoding.EncodeToString([]byte(s))
}
