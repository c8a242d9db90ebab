package keys

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
)

// Encrypted fields cannot be searched: AES-GCM with random nonces gives a different
// ciphertext every time. For the few values that must be found again (an NHS number for a
// subject access request) the store keeps a keyed hash beside the ciphertext. The hash
// key is derived from the data key, so the hash is useless without it (ten-digit NHS
// numbers are far too few to hide behind a plain SHA-256).

// lookupLabel separates the derived key from any other use of the data key.
const lookupLabel = "scribe lookup-hash key v1"

func deriveLookupKey(dataKey []byte) []byte {
	m := hmac.New(sha256.New, dataKey)
	m.Write([]byte(lookupLabel))
	return m.Sum(nil)
}

// LookupHash is a keyed hash of value under the current key version, for equality search:
// "vN:" + hex HMAC-SHA256(label || 0x00 || value). label names what is hashed (e.g.
// "nhs_number") so equal values of different kinds do not match.
func (k *Keyring) LookupHash(label string, value []byte) string {
	return k.lookupHash(k.current, label, value)
}

// LookupHashes is LookupHash under every known version, newest first, so rows not yet
// rewritten after a key rotation are still found.
func (k *Keyring) LookupHashes(label string, value []byte) []string {
	vs := k.Versions()
	out := make([]string, 0, len(vs))
	for i := len(vs) - 1; i >= 0; i-- {
		out = append(out, k.lookupHash(vs[i], label, value))
	}
	return out
}

func (k *Keyring) lookupHash(version int, label string, value []byte) string {
	m := hmac.New(sha256.New, k.lookup[version])
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write(value)
	return "v" + strconv.Itoa(version) + ":" + hex.EncodeToString(m.Sum(nil))
}
