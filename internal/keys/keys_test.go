package keys

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// noAmbientKeys makes sure keys in the test runner's environment cannot leak in.
func noAmbientKeys(t *testing.T) {
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	t.Setenv(EnvVar, "")
}

func randomKey(t *testing.T) []byte {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		t.Fatal(err)
	}
	return k
}

func newKeyFile(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "data.key")
	if err := GenerateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	return path
}

func load(t *testing.T, path string) *Keyring {
	t.Helper()
	kr, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestRoundTrip(t *testing.T) {
	noAmbientKeys(t)
	kr := load(t, newKeyFile(t))
	aad := []byte("segments.text:42")
	for _, msg := range []string{"", "Patient reports three days of cough.", strings.Repeat("é", 5000)} {
		ct, err := kr.Encrypt([]byte(msg), aad)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(ct, "v1:") || (msg != "" && strings.Contains(ct, msg)) {
			t.Fatalf("ciphertext %q", ct)
		}
		pt, err := kr.Decrypt(ct, aad)
		if err != nil || string(pt) != msg {
			t.Fatalf("decrypt: %q, %v", pt, err)
		}
	}
	a, _ := kr.Encrypt([]byte("same"), aad)
	b, _ := kr.Encrypt([]byte("same"), aad)
	if a == b {
		t.Fatal("two encryptions of one value are identical: nonce reused")
	}
}

func TestWrongAADFails(t *testing.T) {
	noAmbientKeys(t)
	kr := load(t, newKeyFile(t))
	ct, err := kr.Encrypt([]byte("row 1 words"), []byte("segments.text:1"))
	if err != nil {
		t.Fatal(err)
	}
	// Copying row 1's value into row 2, or into another column, must not decrypt.
	for _, aad := range []string{"segments.text:2", "sessions.note:1", ""} {
		if _, err := kr.Decrypt(ct, []byte(aad)); !errors.Is(err, ErrDecrypt) {
			t.Errorf("aad %q: err = %v, want ErrDecrypt", aad, err)
		}
	}
}

func TestTamperedFails(t *testing.T) {
	noAmbientKeys(t)
	kr := load(t, newKeyFile(t))
	aad := []byte("segments.text:7")
	ct, _ := kr.Encrypt([]byte("blood pressure 120 over 80"), aad)
	raw, _ := base64.StdEncoding.DecodeString(ct[3:])
	for _, i := range []int{0, 12, len(raw) - 1} { // nonce, body, tag
		bad := bytes.Clone(raw)
		bad[i] ^= 1
		if _, err := kr.Decrypt("v1:"+base64.StdEncoding.EncodeToString(bad), aad); !errors.Is(err, ErrDecrypt) {
			t.Errorf("flipped byte %d: err = %v", i, err)
		}
	}
	for _, s := range []string{"v1:" + base64.StdEncoding.EncodeToString(raw[:20]), "v1:!!!", "plain text", "vx:abc"} {
		if _, err := kr.Decrypt(s, aad); !errors.Is(err, ErrBadCiphertext) {
			t.Errorf("%q: err = %v, want ErrBadCiphertext", s, err)
		}
	}
	if _, err := kr.Decrypt("v9:"+ct[3:], aad); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("unknown version: err = %v", err)
	}
}

func TestRotation(t *testing.T) {
	noAmbientKeys(t)
	path := newKeyFile(t)
	kr1 := load(t, path)
	aad := []byte("segments.text:1")
	old, _ := kr1.Encrypt([]byte("before rotation"), aad)

	v, err := Rotate(path)
	if err != nil || v != 2 {
		t.Fatalf("rotate: %d, %v", v, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("rotated file mode %v, %v", fi.Mode(), err)
	}
	kr2 := load(t, path)
	if kr2.Current() != 2 || fmt.Sprint(kr2.Versions()) != "[1 2]" {
		t.Fatalf("after rotation: %v", kr2)
	}
	if pt, err := kr2.Decrypt(old, aad); err != nil || string(pt) != "before rotation" {
		t.Fatalf("old value after rotation: %q, %v", pt, err)
	}
	fresh, _ := kr2.Encrypt([]byte("after rotation"), aad)
	if !strings.HasPrefix(fresh, "v2:") {
		t.Fatalf("new value %q not under v2", fresh)
	}
	if !kr2.NeedsReencrypt(old) || kr2.NeedsReencrypt(fresh) || kr2.NeedsReencrypt("not a ciphertext") {
		t.Fatal("NeedsReencrypt wrong")
	}
	// The old keyring cannot read the new key's values.
	if _, err := kr1.Decrypt(fresh, aad); !errors.Is(err, ErrUnknownVersion) {
		t.Fatalf("old keyring on v2 value: %v", err)
	}
	if v, err := Rotate(path); err != nil || v != 3 {
		t.Fatalf("second rotate: %d, %v", v, err)
	}
	if pt, err := load(t, path).Decrypt(old, aad); err != nil || string(pt) != "before rotation" {
		t.Fatalf("v1 value after two rotations: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".scribe-key-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestKeyFilePermissionsChecked(t *testing.T) {
	noAmbientKeys(t)
	path := newKeyFile(t)
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("generated key file has mode %v", fi.Mode())
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if !errors.Is(err, ErrInsecureFile) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), fmt.Sprintf("%04o", mode)) {
			t.Errorf("mode %04o: err = %v", mode, err)
		}
		if _, err := Rotate(path); !errors.Is(err, ErrInsecureFile) {
			t.Errorf("rotate with mode %04o: err = %v", mode, err)
		}
	}
	os.Chmod(path, 0o400)
	if _, err := Load(path); err != nil {
		t.Errorf("mode 0400 refused: %v", err)
	}
	if err := GenerateKeyFile(path); err == nil {
		t.Error("GenerateKeyFile overwrote an existing key file")
	}
}

func TestKeyFileOwnerChecked(t *testing.T) {
	noAmbientKeys(t)
	if os.Getuid() != 0 {
		t.Skip("needs root to give a private key file to another user")
	}
	path := newKeyFile(t)
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if !errors.Is(err, ErrInsecureFile) || !strings.Contains(err.Error(), "uid 65534") || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v", err)
	}
}

func TestEnvSource(t *testing.T) {
	noAmbientKeys(t)
	key := randomKey(t)
	t.Setenv(EnvVar, base64.StdEncoding.EncodeToString(key))
	kr := load(t, "/nonexistent/key/file") // env wins; the file is never touched
	if kr.Current() != 1 || !strings.Contains(kr.Source(), EnvVar) {
		t.Fatalf("%v", kr)
	}
	direct, _ := New(map[int][]byte{1: key})
	ct, _ := direct.Encrypt([]byte("x"), nil)
	if pt, err := kr.Decrypt(ct, nil); err != nil || string(pt) != "x" {
		t.Fatalf("env key is not the given key: %v", err)
	}
	t.Setenv(EnvVar, base64.StdEncoding.EncodeToString(key[:16]))
	if _, err := Load(""); !errors.Is(err, ErrBadKey) {
		t.Fatalf("short env key: %v", err)
	}
}

func TestCredentialSourceWinsOverEnv(t *testing.T) {
	noAmbientKeys(t)
	dir := t.TempDir()
	k1, k2 := randomKey(t), randomKey(t)
	cred := fmt.Sprintf("v1:%s\nv2:%s\n", base64.StdEncoding.EncodeToString(k1), base64.StdEncoding.EncodeToString(k2))
	if err := os.WriteFile(filepath.Join(dir, CredentialName), []byte(cred), 0o400); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CREDENTIALS_DIRECTORY", dir)
	t.Setenv(EnvVar, base64.StdEncoding.EncodeToString(randomKey(t)))
	kr := load(t, "")
	if kr.Current() != 2 || !strings.Contains(kr.Source(), "systemd credential") {
		t.Fatalf("%v", kr)
	}
	// A credentials directory without our credential falls through to the environment.
	t.Setenv("CREDENTIALS_DIRECTORY", t.TempDir())
	if kr := load(t, ""); !strings.Contains(kr.Source(), EnvVar) {
		t.Fatalf("%v", kr)
	}
}

func TestNoSourceIsClearError(t *testing.T) {
	noAmbientKeys(t)
	_, err := Load("")
	if !errors.Is(err, ErrNoKey) || !strings.Contains(err.Error(), EnvVar) {
		t.Fatalf("err = %v", err)
	}
}

func TestParseKeysRejectsBadFiles(t *testing.T) {
	k := base64.StdEncoding.EncodeToString(make([]byte, KeySize))
	for _, text := range []string{
		"",
		"# only a comment\n",
		"v2:" + k + "\nv1:" + k,   // out of order
		"v1:" + k + "\nv1:" + k,   // duplicate
		k + "\n" + k,              // two bare keys
		"v1:" + k + "\n" + k,      // bare after versioned
		"v0:" + k,                 // versions start at 1
		"x1:" + k,                 // bad prefix
		"v1:" + k[:20],            // short
		"v1:" + k + "\nv2:%%%%\n", // not base64
	} {
		if _, err := parseKeys([]byte(text)); !errors.Is(err, ErrBadKey) {
			t.Errorf("%q: err = %v", text, err)
		} else if strings.Contains(err.Error(), k[:8]) {
			t.Errorf("error quotes key material: %v", err)
		}
	}
	keys, err := parseKeys([]byte("# scribe data keys\n\nv1:" + k + "\nv3:" + k + "\n"))
	if err != nil || len(keys) != 2 || keys[3] == nil {
		t.Fatalf("valid file: %v %v", keys, err)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	noAmbientKeys(t)
	key := randomKey(t)
	t.Setenv(EnvVar, base64.StdEncoding.EncodeToString(key))
	kr := load(t, "")
	var logged bytes.Buffer
	slog.New(slog.NewTextHandler(&logged, nil)).Info("keys loaded", "keyring", kr)
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("keys loaded", "keyring", kr)
	out := logged.String() + fmt.Sprintf("%v %+v %#v %s", kr, kr, kr, kr)
	if !strings.Contains(out, "current=1") || !strings.Contains(out, `"current":1`) {
		t.Fatalf("log lacks versions: %s", out)
	}
	b64 := base64.StdEncoding.EncodeToString(key)
	for _, secret := range []string{b64[:12], fmt.Sprintf("%x", key[:6]), fmt.Sprint(key[:4])[1:12], string(key[:6])} {
		if strings.Contains(out, secret) {
			t.Fatalf("key material printed: %s", out)
		}
	}
}

func BenchmarkEncryptDecrypt(b *testing.B) {
	kr, _ := New(map[int][]byte{1: make([]byte, KeySize)})
	msg := []byte(strings.Repeat("Patient describes a dry cough. ", 8)) // ~250 bytes, a typical segment
	aad := []byte("segments.text:123")
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		ct, _ := kr.Encrypt(msg, aad)
		if _, err := kr.Decrypt(ct, aad); err != nil {
			b.Fatal(err)
		}
	}
}

func TestLookupHashIsKeyedStableAndVersioned(t *testing.T) {
	k1 := make([]byte, KeySize)
	k2 := make([]byte, KeySize)
	k2[0] = 1
	a, err := New(map[int][]byte{1: k1})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(map[int][]byte{1: k2})
	if err != nil {
		t.Fatal(err)
	}
	h := a.LookupHash("nhs_number", []byte("9434765919"))
	if h != a.LookupHash("nhs_number", []byte("9434765919")) {
		t.Fatal("lookup hash is not stable")
	}
	if h == b.LookupHash("nhs_number", []byte("9434765919")) {
		t.Fatal("lookup hash does not depend on the key")
	}
	if h == a.LookupHash("other", []byte("9434765919")) {
		t.Fatal("lookup hash does not depend on the label")
	}
	if strings.Contains(h, "9434765919") {
		t.Fatal("hash shows the value")
	}
	both, err := New(map[int][]byte{1: k1, 2: k2})
	if err != nil {
		t.Fatal(err)
	}
	hs := both.LookupHashes("nhs_number", []byte("9434765919"))
	if len(hs) != 2 || hs[1] != h || !strings.HasPrefix(hs[0], "v2:") {
		t.Fatalf("LookupHashes = %v, want v2 first then %s", hs, h)
	}
}

func TestCheckpointSigningKeysFollowTheDataKey(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, KeySize), bytes.Repeat([]byte{2}, KeySize)
	kr, err := New(map[int][]byte{1: k1, 2: k2})
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("checkpoint")
	id, sig, err := kr.SignCheckpoint(msg)
	if err != nil || id != "v2" {
		t.Fatalf("sign: %q %v", id, err)
	}
	if !kr.VerifyCheckpoint("v2", msg, sig) || kr.VerifyCheckpoint("v1", msg, sig) || kr.VerifyCheckpoint("v2", []byte("other"), sig) {
		t.Error("a signature verifies against the wrong key or message, or not at all")
	}
	only1, _ := New(map[int][]byte{1: k1})
	if only1.VerifyCheckpoint("v2", msg, sig) {
		t.Error("a keyring without v2 verified a v2 signature")
	}
	again, _ := New(map[int][]byte{2: k2})
	if !again.VerifyCheckpoint("v2", msg, sig) {
		t.Error("the same data key does not give the same signing key")
	}
	if pub, ok := kr.CheckpointPublicKey("v2"); !ok || len(pub) != 32 {
		t.Errorf("public key %x %v", pub, ok)
	}
}
