package storage

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// ObjectMetadata is what an object carries of its Binary, so that the
// objects alone are enough to rebuild the catalog (reindex). The SHA-256 is
// not known until the bytes have been written, so reindex recomputes it
// (and, for a gzip object, the decoded size).
func ObjectMetadata(b Binary) map[string]string {
	m := map[string]string{
		"binary-id":      b.ID,
		"binary-version": strconv.Itoa(b.Version),
		"content-type":   escapeMeta(b.ContentType),
		"last-updated":   b.LastUpdated.UTC().Format(time.RFC3339Nano),
	}
	put := func(k, v string) {
		if v != "" {
			m[k] = escapeMeta(v)
		}
	}
	put("tenant", b.Tenant)
	put("security-context", b.SecurityContext)
	put("filename", b.Filename)
	put("owner", b.Owner)
	put("via", b.Via)
	put("language", b.Language)
	put("content-encoding", b.Encoding)
	if len(b.Tags)+len(b.Security) > 0 {
		// Compact JSON, so reindex restores them too (S3 keeps 2 KiB of
		// user metadata in all: codings beyond 1 KiB are left to the catalog).
		if j, err := json.Marshal(struct {
			Tags     []Coding `json:"t,omitempty"`
			Security []Coding `json:"s,omitempty"`
		}{b.Tags, b.Security}); err == nil && len(j) <= 1024 {
			m["codings"] = escapeMeta(string(j))
		}
	}
	if !b.ExpiresAt.IsZero() {
		m["expires-at"] = b.ExpiresAt.UTC().Format(time.RFC3339Nano)
	}
	if b.Deleted {
		m["deleted"] = "true"
	}
	if b.Expunged {
		m["expunged"] = "true"
	}
	return m
}

// BinaryFromObject rebuilds a Binary record (all but SHA256) from an object
// written with ObjectMetadata.
func BinaryFromObject(info ObjectInfo) (Binary, error) {
	m := info.Metadata
	get := func(k string) string { return unescapeMeta(m[k]) }
	b := Binary{
		Tenant:          get("tenant"),
		ID:              get("binary-id"),
		ObjectKey:       info.Key,
		ContentType:     get("content-type"),
		SecurityContext: get("security-context"),
		Filename:        get("filename"),
		Owner:           get("owner"),
		Via:             get("via"),
		Language:        get("language"),
		Size:            info.Size,
	}
	if b.ID == "" {
		return b, fmt.Errorf("object %s carries no binary-id", info.Key)
	}
	v, err := strconv.Atoi(get("binary-version"))
	if err != nil || v < 1 {
		return b, fmt.Errorf("object %s: bad binary-version %q", info.Key, get("binary-version"))
	}
	b.Version = v
	if b.LastUpdated, err = time.Parse(time.RFC3339Nano, get("last-updated")); err != nil {
		b.LastUpdated = info.ModTime
	}
	if e := get("expires-at"); e != "" {
		if b.ExpiresAt, err = time.Parse(time.RFC3339Nano, e); err != nil {
			return b, fmt.Errorf("object %s: bad expires-at %q", info.Key, e)
		}
	}
	if c := get("codings"); c != "" {
		var cs struct {
			Tags     []Coding `json:"t"`
			Security []Coding `json:"s"`
		}
		if json.Unmarshal([]byte(c), &cs) == nil {
			b.Tags, b.Security = cs.Tags, cs.Security
		}
	}
	if strings.HasPrefix(info.Key, DeletesPrefix) {
		// A delete marker: the record of a delete, with no content.
		b.ObjectKey, b.Size, b.ContentType = "", 0, ""
		b.Deleted, b.Expunged = true, get("expunged") == "true"
		return b, nil
	}
	if b.ContentType == "" {
		b.ContentType = info.ContentType
	}
	if get("content-encoding") == EncodingGzip || IsGzip(info.ContentEncoding) {
		// Size is then the stored size: reindex decodes to learn the content's.
		b.Encoding, b.StoredSize = EncodingGzip, info.Size
	}
	return b, nil
}

// escapeMeta keeps metadata values printable ASCII (they travel as S3
// headers); anything else is percent-encoded behind a marker.
func escapeMeta(v string) string {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return "pct:" + url.QueryEscape(v)
		}
	}
	if strings.HasPrefix(v, "pct:") {
		return "pct:" + url.QueryEscape(v)
	}
	return v
}

func unescapeMeta(v string) string {
	if rest, ok := strings.CutPrefix(v, "pct:"); ok {
		if u, err := url.QueryUnescape(rest); err == nil {
			return u
		}
	}
	return v
}
