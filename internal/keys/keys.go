// Package keys loads the data keys that encrypt transcript fields at rest and does the
// field encryption (AES-256-GCM).
//
// Keys come from outside the database, so a copied database file is useless on its own.
// Load tries, in order: a systemd credential ($CREDENTIALS_DIRECTORY/scribe-data-key), the
// SCRIBE_DATA_KEY environment variable, then a key file. All three hold the same format:
// one key per line as "vN:BASE64" (32 bytes, standard base64), versions increasing, the
// newest last; blank lines and lines starting with # are ignored. A lone bare BASE64 line
// is version 1, so SCRIBE_DATA_KEY may simply be `openssl rand -base64 32`.
//
// Ciphertexts are "vN:" + base64(nonce || ciphertext+tag), with a fresh random 96-bit nonce
// per value. Callers pass additional authenticated data naming the row and column (for
// example "segments.text:<id>") so a value copied into another row fails to decrypt.
package keys

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Names of the key sources.
const (
	CredentialName = "scribe-data-key" // file name inside $CREDENTIALS_DIRECTORY
	EnvVar         = "SCRIBE_DATA_KEY"
	KeySize        = 32 // AES-256
)

// Errors callers tell apart with errors.Is.
var (
	ErrNoKey          = errors.New("no data key configured")
	ErrInsecureFile   = errors.New("key file is not private")
	ErrBadKey         = errors.New("malformed data key")
	ErrUnknownVersion = errors.New("ciphertext uses an unknown key version")
	ErrBadCiphertext  = errors.New("ciphertext is malformed")
	// ErrDecrypt covers a wrong key, wrong AAD (value moved to another row) and tampering:
	// GCM cannot tell them apart.
	ErrDecrypt = errors.New("decryption failed: tampered ciphertext, wrong key or wrong row")
)

// Keyring holds every known key version; it encrypts with the newest. It is safe for
// concurrent use and deliberately prints only its versions, never key material.
type Keyring struct {
	source  string
	current int
	aeads   map[int]cipher.AEAD
	lookup  map[int][]byte             // per version: HMAC key for searchable hashes (lookup.go)
	signing map[int]ed25519.PrivateKey // per version: audit checkpoint signing key (sign.go)
}

// New builds a keyring from raw keys by version, for callers and tests that manage keys
// themselves. The highest version becomes current.
func New(keys map[int][]byte) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no keys", ErrBadKey)
	}
	kr := &Keyring{source: "memory", aeads: make(map[int]cipher.AEAD, len(keys)), lookup: make(map[int][]byte, len(keys)),
		signing: make(map[int]ed25519.PrivateKey, len(keys))}
	for v, k := range keys {
		if v < 1 {
			return nil, fmt.Errorf("%w: version %d (versions start at 1)", ErrBadKey, v)
		}
		if len(k) != KeySize {
			return nil, fmt.Errorf("%w: version %d is %d bytes, want %d", ErrBadKey, v, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
		}
		gcm, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
		}
		kr.aeads[v] = gcm
		kr.lookup[v] = deriveLookupKey(k)
		kr.signing[v] = deriveSigningKey(k)
		kr.current = max(kr.current, v)
	}
	return kr, nil
}

// Load finds the data keys: the systemd credential, else SCRIBE_DATA_KEY, else keyFile
// (skipped when empty). The key file must be mode 0600 or stricter and owned by the
// current user. Keys are never read from the database.
func Load(keyFile string) (*Keyring, error) {
	if dir := os.Getenv("CREDENTIALS_DIRECTORY"); dir != "" {
		path := filepath.Join(dir, CredentialName)
		data, err := os.ReadFile(path)
		switch {
		case err == nil:
			return parseSource(data, "systemd credential "+CredentialName)
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("read systemd credential %s: %w", path, err)
		}
	}
	if v := os.Getenv(EnvVar); v != "" {
		return parseSource([]byte(v), "environment variable "+EnvVar)
	}
	if keyFile != "" {
		data, err := readKeyFile(keyFile)
		if err != nil {
			return nil, err
		}
		return parseSource(data, "key file "+keyFile)
	}
	return nil, fmt.Errorf("%w: set the systemd credential %s, the environment variable %s, or a key file (create one with GenerateKeyFile)",
		ErrNoKey, CredentialName, EnvVar)
}

func parseSource(data []byte, source string) (*Keyring, error) {
	keys, err := parseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	kr, err := New(keys)
	clear(data)
	for _, k := range keys {
		clear(k)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	kr.source = source
	return kr, nil
}

// parseKeys reads the "vN:BASE64" format. Error messages give line numbers, never content.
func parseKeys(data []byte) (map[int][]byte, error) {
	keys := map[int][]byte{}
	last, bare := 0, false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if bare {
			return nil, fmt.Errorf("%w: line %d: a key without a vN: prefix must be the only key", ErrBadKey, n)
		}
		ver, b64 := 1, line
		if vs, rest, ok := strings.Cut(line, ":"); ok { // base64 never contains ':'
			v, err := strconv.Atoi(strings.TrimPrefix(vs, "v"))
			if err != nil || v < 1 || !strings.HasPrefix(vs, "v") {
				return nil, fmt.Errorf("%w: line %d: bad version (want v1, v2, ...)", ErrBadKey, n)
			}
			ver, b64 = v, rest
		} else if last != 0 {
			return nil, fmt.Errorf("%w: line %d: missing vN: prefix (only a lone key may omit it)", ErrBadKey, n)
		} else {
			bare = true
		}
		if ver <= last {
			return nil, fmt.Errorf("%w: line %d: version %d after version %d (list versions oldest first, each once)", ErrBadKey, n, ver, last)
		}
		key, err := base64.StdEncoding.DecodeString(b64)
		if err != nil || len(key) != KeySize {
			return nil, fmt.Errorf("%w: line %d (v%d): want base64 of %d bytes", ErrBadKey, n, ver, KeySize)
		}
		keys[ver], last = key, ver
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no keys found", ErrBadKey)
	}
	return keys, nil
}

// readKeyFile reads a key file after checking it is private to the current user.
func readKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrInsecureFile, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; it must be 0600 or stricter (chmod 600 %s)", ErrInsecureFile, path, perm, path)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Getuid() {
		return nil, fmt.Errorf("%w: %s is owned by uid %d, not the current user (uid %d)", ErrInsecureFile, path, st.Uid, os.Getuid())
	}
	data := make([]byte, 0, fi.Size())
	buf := bytes.NewBuffer(data)
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, fmt.Errorf("read key file %s: %w", path, err)
	}
	return buf.Bytes(), nil
}

// GenerateKeyFile creates a new key file at path, mode 0600, holding a random v1 key.
// It refuses to overwrite an existing file: that would lose the key to existing data.
func GenerateKeyFile(path string) error {
	line, err := newKeyLine(1)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	if _, err := f.WriteString(line); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	return f.Close()
}

// Rotate appends a new random key to the key file and returns its version. The file is
// replaced atomically (write a 0600 temporary file, fsync, rename), so a crash leaves
// either the old or the new file, never a torn one. Re-encrypting stored values is the
// store's job (see NeedsReencrypt); old versions stay in the file until nothing uses them.
func Rotate(path string) (int, error) {
	data, err := readKeyFile(path)
	if err != nil {
		return 0, err
	}
	defer clear(data)
	keys, err := parseKeys(data)
	if err != nil {
		return 0, fmt.Errorf("key file %s: %w", path, err)
	}
	newest := 0
	lines := make([]string, 0, len(keys)+1)
	versions := make([]int, 0, len(keys))
	for v := range keys {
		versions = append(versions, v)
	}
	slices.Sort(versions)
	for _, v := range versions {
		lines = append(lines, fmt.Sprintf("v%d:%s\n", v, base64.StdEncoding.EncodeToString(keys[v])))
		clear(keys[v])
		newest = v
	}
	line, err := newKeyLine(newest + 1)
	if err != nil {
		return 0, err
	}
	lines = append(lines, line)
	if err := writeAtomic(path, []byte(strings.Join(lines, ""))); err != nil {
		return 0, err
	}
	return newest + 1, nil
}

func newKeyLine(version int) (string, error) {
	key := make([]byte, KeySize)
	defer clear(key)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	return fmt.Sprintf("v%d:%s\n", version, base64.StdEncoding.EncodeToString(key)), nil
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, ".scribe-key-*")
	if err != nil {
		return fmt.Errorf("rotate key file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("rotate key file %s: %w", path, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("rotate key file %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("rotate key file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("rotate key file %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("rotate key file %s: %w", path, err)
	}
	// Make the rename itself durable.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// Current is the version new values are encrypted with.
func (k *Keyring) Current() int { return k.current }

// Versions lists the known key versions, oldest first.
func (k *Keyring) Versions() []int {
	vs := make([]int, 0, len(k.aeads))
	for v := range k.aeads {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}

// Source says where the keys came from, e.g. "environment variable SCRIBE_DATA_KEY".
func (k *Keyring) Source() string { return k.source }

// Encrypt seals plaintext with the current key, bound to aad.
func (k *Keyring) Encrypt(plaintext, aad []byte) (string, error) {
	gcm := k.aeads[k.current]
	if gcm == nil {
		return "", fmt.Errorf("%w: empty keyring (use Load or New)", ErrNoKey)
	}
	nonce := make([]byte, gcm.NonceSize(), gcm.NonceSize()+len(plaintext)+gcm.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("encrypt: nonce: %w", err)
	}
	sealed := gcm.Seal(nonce, nonce, plaintext, aad)
	return "v" + strconv.Itoa(k.current) + ":" + base64.StdEncoding.EncodeToString(sealed), nil
}

// Decrypt opens a value made by Encrypt with any known key version; aad must be the same.
func (k *Keyring) Decrypt(s string, aad []byte) ([]byte, error) {
	ver, b64, err := splitVersion(s)
	if err != nil {
		return nil, err
	}
	gcm, ok := k.aeads[ver]
	if !ok {
		return nil, fmt.Errorf("%w: v%d (keyring has %v)", ErrUnknownVersion, ver, k.Versions())
	}
	sealed, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadCiphertext, err)
	}
	if len(sealed) < gcm.NonceSize()+gcm.Overhead() {
		return nil, fmt.Errorf("%w: %d bytes is too short", ErrBadCiphertext, len(sealed))
	}
	plain, err := gcm.Open(nil, sealed[:gcm.NonceSize()], sealed[gcm.NonceSize():], aad)
	if err != nil {
		return nil, fmt.Errorf("%w (key v%d)", ErrDecrypt, ver)
	}
	return plain, nil
}

// NeedsReencrypt reports whether s is a ciphertext under a version other than the current
// one. Values that are not ciphertexts at all report false; Decrypt explains those.
func (k *Keyring) NeedsReencrypt(s string) bool {
	ver, _, err := splitVersion(s)
	return err == nil && ver != k.current
}

func splitVersion(s string) (int, string, error) {
	vs, rest, ok := strings.Cut(s, ":")
	if !ok || !strings.HasPrefix(vs, "v") {
		return 0, "", fmt.Errorf("%w: no vN: version prefix", ErrBadCiphertext)
	}
	ver, err := strconv.Atoi(vs[1:])
	if err != nil || ver < 1 {
		return 0, "", fmt.Errorf("%w: bad version prefix", ErrBadCiphertext)
	}
	return ver, rest, nil
}

// String shows the versions and source only.
func (k *Keyring) String() string {
	return fmt.Sprintf("keys.Keyring{current: v%d, versions: %v, source: %s}", k.current, k.Versions(), k.source)
}

// GoString keeps %#v from printing the cipher state.
func (k *Keyring) GoString() string { return k.String() }

// LogValue makes slog print the versions and source only.
func (k *Keyring) LogValue() slog.Value {
	return slog.GroupValue(slog.Int("current", k.current), slog.Any("versions", k.Versions()), slog.String("source", k.source))
}
