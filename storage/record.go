package storage

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// DecodeBinary reads a catalog record: the JSON of a Binary as
// json.Marshal writes it. Every read of a Binary decodes one, and
// encoding/json's reflection took 7% of the gateway's CPU per 307 redirect
// (make bench's small-request cells, pprof), so the records the catalogs
// write (no escapes, no tags or labels) are read by a plain scanner; any
// other input, and anything the scanner does not expect, goes to
// json.Unmarshal, so the result is always json.Unmarshal's
// (TestDecodeBinaryMatchesUnmarshal, FuzzDecodeBinary).
func DecodeBinary(data []byte) (Binary, error) {
	if b, ok := scanBinary(data); ok {
		return b, nil
	}
	var b Binary
	err := json.Unmarshal(data, &b)
	return b, err
}

// scanBinary decodes the simple records; ok is false when it cannot vouch
// for the result.
func scanBinary(d []byte) (b Binary, ok bool) {
	if len(d) < 2 || d[0] != '{' || d[len(d)-1] != '}' {
		return Binary{}, false
	}
	i := 1
	if d[i] == '}' {
		return b, i+1 == len(d)
	}
	for {
		key, next, ok := scanString(d, i)
		if !ok || next >= len(d) || d[next] != ':' {
			return Binary{}, false
		}
		i = next + 1
		if i >= len(d) {
			return Binary{}, false
		}
		var s *string
		var n *int64
		var flag *bool
		var t *time.Time
		var version int64
		switch key {
		case "tenant":
			s = &b.Tenant
		case "id":
			s = &b.ID
		case "objectKey":
			s = &b.ObjectKey
		case "contentType":
			s = &b.ContentType
		case "securityContext":
			s = &b.SecurityContext
		case "filename":
			s = &b.Filename
		case "sha256":
			s = &b.SHA256
		case "encoding":
			s = &b.Encoding
		case "storedSha256":
			s = &b.StoredSHA256
		case "owner":
			s = &b.Owner
		case "language":
			s = &b.Language
		case "via":
			s = &b.Via
		case "size":
			n = &b.Size
		case "storedSize":
			n = &b.StoredSize
		case "version":
			n = &version
		case "deleted":
			flag = &b.Deleted
		case "expunged":
			flag = &b.Expunged
		case "lastUpdated":
			t = &b.LastUpdated
		case "expiresAt":
			t = &b.ExpiresAt
		default:
			return Binary{}, false // tags, security, another spelling: json.Unmarshal's
		}
		switch {
		case s != nil:
			v, next, ok := scanString(d, i)
			if !ok {
				return Binary{}, false
			}
			*s, i = v, next
		case n != nil:
			j := i
			if d[j] == '-' {
				j++
			}
			for j < len(d) && d[j] >= '0' && d[j] <= '9' {
				j++
			}
			v, err := strconv.ParseInt(string(d[i:j]), 10, 64)
			if err != nil || (d[i] == '0' && j-i > 1) || (d[i] == '-' && (j-i == 1 || d[i+1] == '0')) {
				return Binary{}, false
			}
			*n, i = v, j
			if n == &version {
				if int64(int(v)) != v {
					return Binary{}, false
				}
				b.Version = int(v)
			}
		case flag != nil:
			switch {
			case bytes.HasPrefix(d[i:], []byte("true")):
				*flag, i = true, i+4
			case bytes.HasPrefix(d[i:], []byte("false")):
				*flag, i = false, i+5
			default:
				return Binary{}, false
			}
		case t != nil:
			_, next, ok := scanString(d, i)
			if !ok || t.UnmarshalJSON(d[i:next]) != nil {
				return Binary{}, false
			}
			i = next
		}
		if i >= len(d) {
			return Binary{}, false
		}
		switch d[i] {
		case ',':
			i++
		case '}':
			return b, i+1 == len(d)
		default:
			return Binary{}, false
		}
	}
}

// scanString reads the JSON string that starts at d[i], when it has no
// escapes, no control bytes and is valid UTF-8 (what json.Unmarshal would
// give back unchanged); next is the index after its closing quote.
func scanString(d []byte, i int) (s string, next int, ok bool) {
	if i >= len(d) || d[i] != '"' {
		return "", 0, false
	}
	j := i + 1
	for j < len(d) {
		c := d[j]
		if c == '"' {
			v := d[i+1 : j]
			if !utf8.Valid(v) {
				return "", 0, false
			}
			return string(v), j + 1, true
		}
		if c == '\\' || c < 0x20 {
			return "", 0, false
		}
		j++
	}
	return "", 0, false
}
