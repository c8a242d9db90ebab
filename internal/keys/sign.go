package keys

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"fmt"
	"strconv"
	"strings"
)

// Audit checkpoints (internal/audit) are signed with an Ed25519 key derived from the data
// key, one per key version, so the practice has no further secret to keep: whoever holds
// the data key can sign, and whoever has the public key (printed by `scribe audit verify`)
// can check a checkpoint without holding any secret. Someone who can rewrite the
// database but not read the data key cannot make a checkpoint for a rewritten chain.

// signLabel separates the derived signing key from every other use of the data key.
const signLabel = "scribe audit-checkpoint signing key v1"

func deriveSigningKey(dataKey []byte) ed25519.PrivateKey {
	m := hmac.New(sha256.New, dataKey)
	m.Write([]byte(signLabel))
	return ed25519.NewKeyFromSeed(m.Sum(nil))
}

// SignCheckpoint signs msg with the current version's signing key and returns the key's
// id ("v1") with the signature.
func (k *Keyring) SignCheckpoint(msg []byte) (string, []byte, error) {
	priv := k.signing[k.current]
	if priv == nil {
		return "", nil, fmt.Errorf("%w: empty keyring", ErrNoKey)
	}
	return "v" + strconv.Itoa(k.current), ed25519.Sign(priv, msg), nil
}

// VerifyCheckpoint checks a signature made by SignCheckpoint with key id keyID.
func (k *Keyring) VerifyCheckpoint(keyID string, msg, sig []byte) bool {
	pub, ok := k.CheckpointPublicKey(keyID)
	return ok && ed25519.Verify(pub, msg, sig)
}

// CheckpointPublicKey is the public half of key id keyID's signing key.
func (k *Keyring) CheckpointPublicKey(keyID string) (ed25519.PublicKey, bool) {
	v, err := strconv.Atoi(strings.TrimPrefix(keyID, "v"))
	if err != nil || !strings.HasPrefix(keyID, "v") {
		return nil, false
	}
	priv := k.signing[v]
	if priv == nil {
		return nil, false
	}
	return priv.Public().(ed25519.PublicKey), true
}
