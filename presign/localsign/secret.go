package localsign

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// minSecret is the shortest secret LoadOrCreateSecret accepts from a file.
const minSecret = 32

// LoadOrCreateSecret returns the secret kept in path, creating it the first
// time: 32 random bytes written as 64 hex characters, mode 0600. The file's
// text (trimmed) is the secret, so an operator can copy it into
// GATEWAY_PRESIGN_SECRET to give several gateways the same one.
func LoadOrCreateSecret(path string) ([]byte, error) {
	if b, err := read(path); !errors.Is(err, fs.ErrNotExist) {
		return b, err
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("presign secret: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("presign secret: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".presign-key-*")
	if err != nil {
		return nil, fmt.Errorf("presign secret: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(hex.EncodeToString(raw) + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("presign secret: %w", err)
	}
	// A link, unlike a rename, fails if the file exists: when two processes
	// start at once, both end up with the one that got there first.
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("presign secret: %w", err)
	}
	return read(path)
}

func read(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("presign secret: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < minSecret {
		return nil, fmt.Errorf("presign secret %s: holds %d characters; want at least %d (delete it to have a new one made)", path, len(s), minSecret)
	}
	return []byte(s), nil
}
