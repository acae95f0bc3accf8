package audit

import (
	"strconv"
	"unicode/utf8"
)

// The AuditEvent's JSON, written by hand: every FHIR request writes one
// event, and encoding/json's reflection took 8% of the gateway's CPU per
// 307 redirect (make bench's small-request cells, pprof). The bytes are
// exactly what encoding/json writes with HTML escaping off
// (TestEncodeMatchesEncodingJSON, FuzzEncodeMatchesEncodingJSON), so
// clip's costs and MaxEvent hold as before.

func (ev *auditEvent) appendJSON(b []byte) []byte {
	b = append(b, `{"resourceType":`...)
	b = appendString(b, ev.ResourceType)
	if len(ev.Extension) > 0 {
		b = append(b, `,"extension":[`...)
		for i, e := range ev.Extension {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"url":`...)
			b = appendString(b, e.URL)
			b = append(b, `,"valueInteger":`...)
			b = strconv.AppendInt(b, int64(e.ValueInt), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"type":`...)
	b = ev.Type.appendJSON(b)
	b = append(b, `,"subtype":`...)
	b = appendCodings(b, ev.Subtype)
	b = append(b, `,"action":`...)
	b = appendString(b, ev.Action)
	b = append(b, `,"recorded":`...)
	b = appendString(b, ev.Recorded)
	b = append(b, `,"outcome":`...)
	b = appendString(b, ev.Outcome)
	if ev.OutcomeDesc != "" {
		b = append(b, `,"outcomeDesc":`...)
		b = appendString(b, ev.OutcomeDesc)
	}
	b = append(b, `,"agent":`...)
	if ev.Agent == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range ev.Agent {
			if i > 0 {
				b = append(b, ',')
			}
			b = ev.Agent[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	b = append(b, `,"source":{`...)
	if ev.Source.Site != "" {
		b = append(b, `"site":`...)
		b = appendString(b, ev.Source.Site)
		b = append(b, ',')
	}
	b = append(b, `"observer":`...)
	b = ev.Source.Observer.appendJSON(b)
	b = append(b, '}')
	if len(ev.Entity) > 0 {
		b = append(b, `,"entity":[`...)
		for i := range ev.Entity {
			if i > 0 {
				b = append(b, ',')
			}
			b = ev.Entity[i].appendJSON(b)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func (c *coding) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if c.System != "" {
		b = append(b, `"system":`...)
		b = appendString(b, c.System)
		b = append(b, ',')
	}
	b = append(b, `"code":`...)
	b = appendString(b, c.Code)
	return append(b, '}')
}

func appendCodings(b []byte, cs []coding) []byte {
	if cs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i := range cs {
		if i > 0 {
			b = append(b, ',')
		}
		b = cs[i].appendJSON(b)
	}
	return append(b, ']')
}

// fields writes the object's members, a comma before all but the first.
type fields struct {
	b    []byte
	more bool
}

func (f *fields) name(n string) {
	if f.more {
		f.b = append(f.b, ',')
	}
	f.more = true
	f.b = append(f.b, '"')
	f.b = append(f.b, n...)
	f.b = append(f.b, '"', ':')
}

func (f *fields) str(n, v string) {
	if v != "" {
		f.name(n)
		f.b = appendString(f.b, v)
	}
}

func (r *reference) appendJSON(b []byte) []byte {
	f := fields{b: append(b, '{')}
	f.str("reference", r.Reference)
	if r.Identifier != nil {
		f.name("identifier")
		g := fields{b: append(f.b, '{')}
		g.str("system", r.Identifier.System)
		g.name("value")
		g.b = appendString(g.b, r.Identifier.Value)
		f.b = append(g.b, '}')
	}
	f.str("display", r.Display)
	return append(f.b, '}')
}

func (a *agent) appendJSON(b []byte) []byte {
	f := fields{b: append(b, '{')}
	if a.Type != nil {
		f.name("type")
		f.b = append(f.b, `{"coding":`...)
		f.b = appendCodings(f.b, a.Type.Coding)
		f.b = append(f.b, '}')
	}
	if a.Who != nil {
		f.name("who")
		f.b = a.Who.appendJSON(f.b)
	}
	f.str("altId", a.AltID)
	f.name("requestor")
	f.b = strconv.AppendBool(f.b, a.Requestor)
	if a.Network != nil {
		f.name("network")
		f.b = append(f.b, `{"address":`...)
		f.b = appendString(f.b, a.Network.Address)
		f.b = append(f.b, `,"type":`...)
		f.b = appendString(f.b, a.Network.Type)
		f.b = append(f.b, '}')
	}
	return append(f.b, '}')
}

func (e *entity) appendJSON(b []byte) []byte {
	f := fields{b: append(b, '{')}
	if e.What != nil {
		f.name("what")
		f.b = e.What.appendJSON(f.b)
	}
	if e.Type != nil {
		f.name("type")
		f.b = e.Type.appendJSON(f.b)
	}
	if e.Role != nil {
		f.name("role")
		f.b = e.Role.appendJSON(f.b)
	}
	f.str("name", e.Name)
	f.str("query", e.Query)
	return append(f.b, '}')
}

const hexDigits = "0123456789abcdef"

// jsonSafe is the ASCII bytes encoding/json writes as they are (with HTML
// escaping off): printable, neither '"' nor '\\'.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendString quotes s as encoding/json does with SetEscapeHTML(false):
// '"' and '\\' escaped, \b \f \n \r \t by name, other control bytes as
// \u00XX, invalid UTF-8 as \ufffd, U+2028 and U+2029 as \u2028, \u2029.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
