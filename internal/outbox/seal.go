package outbox

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"

	"scribe/internal/fhir"
)

// Sealer encrypts stored notes: an outbox entry holds the approved text and the NHS
// number, so at rest it is encrypted like the rest of the transcript data
// (*keys.Keyring satisfies this).
type Sealer interface {
	Encrypt(plaintext, aad []byte) (string, error)
	Decrypt(s string, aad []byte) ([]byte, error)
}

// sealer is set once at start-up by UseSealer, before any entry is written; the outbox
// functions are package-level (they run inside callers' transactions), hence the
// package-level setting.
var sealer atomic.Pointer[Sealer]

// UseSealer makes the outbox encrypt the notes it stores from now on. Entries written
// before it (plain JSON) are still read.
func UseSealer(s Sealer) { sealer.Store(&s) }

func noteAAD(documentID string) []byte { return []byte("fhir_outbox.note_json:" + documentID) }

func encodeNote(n fhir.Note) (string, error) {
	b, err := json.Marshal(n)
	if err != nil {
		return "", err
	}
	if s := sealer.Load(); s != nil {
		return (*s).Encrypt(b, noteAAD(n.DocumentID))
	}
	return string(b), nil
}

func decodeNote(stored, documentID string, n *fhir.Note) error {
	b := []byte(stored)
	if !strings.HasPrefix(stored, "{") {
		s := sealer.Load()
		if s == nil {
			return fmt.Errorf("the note is encrypted and no data key is loaded")
		}
		var err error
		if b, err = (*s).Decrypt(stored, noteAAD(documentID)); err != nil {
			return err
		}
	}
	return json.Unmarshal(b, n)
}
