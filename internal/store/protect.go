package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"scribe/internal/audit"
	"scribe/internal/keys"
)

// Data protection: field encryption, the audit trail and who did what.
//
// Transcript text (segments.text, segments.machine_text), the edit history
// (segment_edits.before/after), flag notes, the approved document and NHS numbers are
// stored as keys.Keyring ciphertexts ("vN:BASE64", AES-256-GCM) whose additional data
// names the table, column and row ("segments.text:<session>/<segment>"), so a value
// copied into another row does not decrypt. The empty string is stored as itself.
// The keys never come from the database (see keys.Load).

// Options configure OpenWith.
type Options struct {
	// Keyring encrypts fields. Nil: keys.Load(KeyFile), and when no key exists anywhere
	// and the database holds nothing encrypted yet, a new key file is generated there
	// (Store.KeyFileCreated names it).
	Keyring *keys.Keyring
	// KeyFile is the data key file; "" means DefaultKeyFile(database path).
	KeyFile string
}

// DefaultKeyFile is where the data key lives unless configured: data.key beside the
// database, mode 0600.
func DefaultKeyFile(dbPath string) string {
	return filepath.Join(filepath.Dir(dbPath), "data.key")
}

// ErrKeyMismatch means the data key given is not the one the database was encrypted with.
var ErrKeyMismatch = errors.New("the data key does not match this database")

const (
	keyCheckPlain = "scribe data key check"
	keyCheckAAD   = "protection_meta.key_check"
)

// protect sets up the audit trail and the keyring after the migrations ran.
func (s *Store) protect(ctx context.Context, path string, opts Options) error {
	if err := audit.EnsureSchema(ctx, s.db); err != nil {
		return err
	}
	s.audit = audit.New(s.db)
	var check string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM protection_meta WHERE name = 'key_check'`).Scan(&check)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("read key check: %w", err)
	}
	kr := opts.Keyring
	if kr == nil {
		keyFile := opts.KeyFile
		if keyFile == "" {
			keyFile = DefaultKeyFile(path)
		}
		kr, err = keys.Load(keyFile)
		if err != nil && errors.Is(err, os.ErrNotExist) && check == "" {
			// A new database and no key anywhere: make one. An existing encrypted database
			// never gets a new key silently; its data would be lost.
			if gerr := keys.GenerateKeyFile(keyFile); gerr != nil {
				return fmt.Errorf("data key: %w", gerr)
			}
			s.KeyFileCreated = keyFile
			kr, err = keys.Load(keyFile)
		}
		if err != nil {
			return fmt.Errorf("data key: %w", err)
		}
	}
	s.keys = kr
	if check != "" {
		if _, err := kr.Decrypt(check, []byte(keyCheckAAD)); err != nil {
			return fmt.Errorf("%w (%s): %w", ErrKeyMismatch, kr.Source(), err)
		}
		return s.sealLateColumns(ctx)
	}
	// First open with encryption: encrypt whatever an older version left in plaintext,
	// and record the key check, in one transaction.
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("encrypt existing data: %w", err)
	}
	defer tx.Rollback()
	if _, err := s.recryptTx(ctx, tx, true); err != nil {
		return err
	}
	if err := s.writeKeyCheck(ctx, tx); err != nil {
		return err
	}
	if err := markSealed(ctx, tx, lateSealed...); err != nil {
		return err
	}
	return tx.Commit()
}

// lateSealed are columns encrypted only from a later version on: a database already
// encrypted has them in plaintext until sealLateColumns has run once (marked in
// protection_meta as "sealed:table.column").
var lateSealed = []sealedColumn{
	{"flag_events", "note", "CAST(id AS TEXT)", "rowid = ?"}, // CSO triage notes (issue 14)
}

func markSealed(ctx context.Context, tx *sql.Tx, cols ...sealedColumn) error {
	for _, col := range cols {
		if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO protection_meta(name, value) VALUES (?, 'yes')`, "sealed:"+col.table+"."+col.column); err != nil {
			return fmt.Errorf("encrypt %s.%s: %w", col.table, col.column, err)
		}
	}
	return nil
}

// sealLateColumns encrypts, once, the plaintext an older version left in a lateSealed
// column. A value that already decrypts for its row is left alone.
func (s *Store) sealLateColumns(ctx context.Context) error {
	for _, col := range lateSealed {
		var done int
		if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM protection_meta WHERE name = ?`, "sealed:"+col.table+"."+col.column).Scan(&done); err != nil {
			return fmt.Errorf("encrypt %s.%s: %w", col.table, col.column, err)
		}
		if done > 0 {
			continue
		}
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("encrypt %s.%s: %w", col.table, col.column, err)
		}
		defer tx.Rollback()
		rows, err := tx.QueryContext(ctx, `SELECT rowid, `+col.idExpr+`, "`+col.column+`" FROM `+col.table+` WHERE "`+col.column+`" <> ''`)
		if err != nil {
			return fmt.Errorf("encrypt %s.%s: %w", col.table, col.column, err)
		}
		type plain struct {
			rowid int64
			id    string
			value string
		}
		var todo []plain
		for rows.Next() {
			var p plain
			if err := rows.Scan(&p.rowid, &p.id, &p.value); err != nil {
				rows.Close()
				return fmt.Errorf("encrypt %s.%s: %w", col.table, col.column, err)
			}
			if _, err := s.unseal(col.table, col.column, p.id, p.value); err != nil {
				todo = append(todo, p)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("encrypt %s.%s: %w", col.table, col.column, err)
		}
		for _, p := range todo {
			ct, err := s.seal(col.table, col.column, p.id, p.value)
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, `UPDATE `+col.table+` SET "`+col.column+`" = ? WHERE `+col.key, ct, p.rowid); err != nil {
				return fmt.Errorf("encrypt %s.%s: %w", col.table, col.column, err)
			}
		}
		if err := markSealed(ctx, tx, col); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("encrypt %s.%s: %w", col.table, col.column, err)
		}
	}
	return nil
}

func (s *Store) writeKeyCheck(ctx context.Context, tx *sql.Tx) error {
	ct, err := s.keys.Encrypt([]byte(keyCheckPlain), []byte(keyCheckAAD))
	if err != nil {
		return fmt.Errorf("key check: %w", err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO protection_meta(name, value) VALUES ('key_check', ?)
		ON CONFLICT(name) DO UPDATE SET value = excluded.value`, ct)
	if err != nil {
		return fmt.Errorf("key check: %w", err)
	}
	return nil
}

func aad(table, column, id string) []byte { return []byte(table + "." + column + ":" + id) }

// seal encrypts a field value for table.column of row id.
func (s *Store) seal(table, column, id, plain string) (string, error) {
	if plain == "" {
		return "", nil
	}
	ct, err := s.keys.Encrypt([]byte(plain), aad(table, column, id))
	if err != nil {
		return "", fmt.Errorf("encrypt %s.%s: %w", table, column, err)
	}
	return ct, nil
}

// unseal decrypts a field value sealed for table.column of row id.
func (s *Store) unseal(table, column, id, ct string) (string, error) {
	if ct == "" {
		return "", nil
	}
	b, err := s.keys.Decrypt(ct, aad(table, column, id))
	if err != nil {
		return "", fmt.Errorf("decrypt %s.%s of %s: %w", table, column, id, err)
	}
	return string(b), nil
}

const nhsHashLabel = "nhs_number"

func (s *Store) nhsHash(nhs string) string {
	if nhs == "" {
		return ""
	}
	return s.keys.LookupHash(nhsHashLabel, []byte(nhs))
}

// sealedColumn is one encrypted column and how its rows are named in the AAD.
type sealedColumn struct {
	table, column string
	idExpr        string // SQL expression giving the AAD row id
	key           string // SQL WHERE clause picking the row by the selected rowid
}

var sealedColumns = []sealedColumn{
	{"segments", "text", "session_id || '/' || id", "rowid = ?"},
	{"segments", "machine_text", "session_id || '/' || id", "rowid = ?"},
	{"segment_edits", "before", "CAST(id AS TEXT)", "rowid = ?"},
	{"segment_edits", "after", "CAST(id AS TEXT)", "rowid = ?"},
	{"flags", "note", "CAST(id AS TEXT)", "rowid = ?"},
	{"consultations", "nhs_number", "id", "rowid = ?"},
	{"consultations", "document_text", "id", "rowid = ?"},
	lateSealed[0],
}

// recryptTx rewrites every encrypted field under the current key: with legacy set it
// treats every stored value as plaintext (the one-time upgrade of an old database),
// otherwise it re-encrypts ciphertexts made with older key versions. NHS lookup hashes
// are recomputed under the current key. It returns how many values it rewrote.
func (s *Store) recryptTx(ctx context.Context, tx *sql.Tx, legacy bool) (int, error) {
	n := 0
	for _, col := range sealedColumns {
		rows, err := tx.QueryContext(ctx, `SELECT rowid, `+col.idExpr+`, "`+col.column+`" FROM `+col.table+` WHERE "`+col.column+`" <> ''`)
		if err != nil {
			return n, fmt.Errorf("re-encrypt %s.%s: %w", col.table, col.column, err)
		}
		type change struct {
			rowid     int64
			id, value string
		}
		var todo []change
		for rows.Next() {
			var c change
			if err := rows.Scan(&c.rowid, &c.id, &c.value); err != nil {
				rows.Close()
				return n, fmt.Errorf("re-encrypt %s.%s: %w", col.table, col.column, err)
			}
			if legacy || s.keys.NeedsReencrypt(c.value) {
				todo = append(todo, c)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return n, fmt.Errorf("re-encrypt %s.%s: %w", col.table, col.column, err)
		}
		for _, c := range todo {
			plain := c.value
			if !legacy {
				if plain, err = s.unseal(col.table, col.column, c.id, c.value); err != nil {
					return n, err
				}
			}
			ct, err := s.seal(col.table, col.column, c.id, plain)
			if err != nil {
				return n, err
			}
			q := `UPDATE ` + col.table + ` SET "` + col.column + `" = ?`
			args := []any{ct}
			if col.table == "consultations" && col.column == "nhs_number" {
				q += `, nhs_hash = ?`
				args = append(args, s.nhsHash(plain))
			}
			if _, err := tx.ExecContext(ctx, q+` WHERE `+col.key, append(args, c.rowid)...); err != nil {
				return n, fmt.Errorf("re-encrypt %s.%s: %w", col.table, col.column, err)
			}
			n++
		}
	}
	return n, nil
}

// RotateKeys re-encrypts every field under kr's current key (after keys.Rotate added a
// version to the key file) and records a key_rotated audit event. The store must have
// been opened with a keyring that has the old versions too; kr replaces it.
func (s *Store) RotateKeys(ctx context.Context, kr *keys.Keyring) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("key rotation: %w", err)
	}
	defer tx.Rollback()
	old := s.keys
	s.keys = kr
	n, err := s.recryptTx(ctx, tx, false)
	if err == nil {
		err = s.writeKeyCheck(ctx, tx)
	}
	if err == nil {
		err = s.auditTx(ctx, tx, audit.Event{Action: audit.ActionKeyRotated, Details: map[string]any{"version": kr.Current(), "values": n}})
	}
	if err == nil {
		err = tx.Commit()
	}
	if err != nil {
		s.keys = old
		return 0, fmt.Errorf("key rotation: %w", err)
	}
	return n, nil
}

// Keyring is the store's data keyring (for callers that verify or rotate keys).
func (s *Store) Keyring() *keys.Keyring { return s.keys }

type actorKey struct{}

// WithActor names who is acting in ctx (a username, or "system"), for the audit trail
// of changes whose store method has no user argument (pause, resume, stop).
func WithActor(ctx context.Context, username string) context.Context {
	return context.WithValue(ctx, actorKey{}, username)
}

func actorFrom(ctx context.Context) string {
	if a, _ := ctx.Value(actorKey{}).(string); a != "" {
		return a
	}
	return "system"
}

// auditTx appends ev inside tx; an empty actor is taken from ctx.
func (s *Store) auditTx(ctx context.Context, tx *sql.Tx, ev audit.Event) error {
	if ev.Actor == "" {
		ev.Actor = actorFrom(ctx)
	}
	if ev.At.IsZero() {
		ev.At = s.now()
	}
	return s.audit.AppendTx(ctx, tx, ev)
}

// usernameTx names a user for the audit trail.
func usernameTx(ctx context.Context, tx *sql.Tx, userID int64) string {
	var name string
	if err := tx.QueryRowContext(ctx, `SELECT username FROM users WHERE id = ?`, userID).Scan(&name); err != nil {
		return fmt.Sprintf("user:%d", userID)
	}
	return name
}

// Audit appends an event in its own transaction (for events with no data change: a
// logout everywhere, a viewed flagged segment). An empty actor is taken from ctx.
func (s *Store) Audit(ctx context.Context, ev audit.Event) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer tx.Rollback()
	if err := s.auditTx(ctx, tx, ev); err != nil {
		return err
	}
	return tx.Commit()
}

// VerifyAudit checks the audit chain.
func (s *Store) VerifyAudit(ctx context.Context) (audit.Report, error) {
	return audit.Verify(ctx, s.db)
}

func (s *Store) sealEdit(ctx context.Context, tx *sql.Tx, editID int64, before, after string) error {
	id := fmt.Sprint(editID)
	b, err := s.seal("segment_edits", "before", id, before)
	if err != nil {
		return err
	}
	a, err := s.seal("segment_edits", "after", id, after)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `UPDATE segment_edits SET before = ?, after = ? WHERE id = ?`, b, a, editID)
	return err
}

type execer interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

// sealFlagNote stores a flag's note encrypted (the row must exist: its id is in the AAD).
func (s *Store) sealFlagNote(ctx context.Context, db execer, flagID int64, note string) error {
	return s.sealNote(ctx, db, "flags", flagID, note)
}

// sealNote stores the note column of row id of table (flags, flag_events) encrypted.
func (s *Store) sealNote(ctx context.Context, db execer, table string, id int64, note string) error {
	sealed, err := s.seal(table, "note", fmt.Sprint(id), note)
	if err != nil {
		return err
	}
	_, err = db.ExecContext(ctx, `UPDATE `+table+` SET note = ? WHERE id = ?`, sealed, id)
	return err
}
