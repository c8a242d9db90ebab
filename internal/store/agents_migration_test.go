package store

import (
	"context"
	"database/sql"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Migration 0107 rebuilds the rooms table (to allow the 'agent' source kind) under foreign
// keys. A practice upgrading already holds rooms, consultations and their transcripts: the
// database here is made with the schema as it was before 0107 (migrations up to 0106 and
// rows written as that version wrote them), then opened by this version. Every room,
// consultation and segment must survive, with its references intact.
func TestMigration0107KeepsRoomsAndConsultations(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scribe.db")
	db, err := sql.Open("sqlite3", "file:"+filepath.ToSlash(path)+"?_journal_mode=WAL&_foreign_keys=on&_busy_timeout=5000&_txlock=immediate")
	if err != nil {
		t.Fatal(err)
	}
	old := &Store{db: db, now: time.Now}
	ms, err := loadMigrations()
	if err != nil {
		t.Fatal(err)
	}
	var upTo []migration
	for _, m := range ms {
		if m.version < 107 {
			upTo = append(upTo, m)
		}
	}
	if len(upTo) == len(ms) {
		t.Fatal("no migration 0107 to test")
	}
	// As an 0106 binary did (store.migrate): each migration in its own transaction.
	if _, err := db.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`); err != nil {
		t.Fatal(err)
	}
	for _, m := range upTo {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(version, name, applied_at) VALUES (?, ?, ?)`, m.version, m.name, old.now().UnixMilli()); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now().UnixMilli()
	for _, q := range []string{
		`INSERT INTO users(id, username, display_name, role, password_hash, created_at) VALUES (1, 'gp', 'Dr GP', 'clinician', 'x', ` + itoa64(now) + `)`,
		`INSERT INTO users(id, username, display_name, role, password_hash, created_at) VALUES (2, 'it', 'IT', 'admin', 'x', ` + itoa64(now) + `)`,
		`INSERT INTO rooms(id, name, source_kind, source_config, clinician_id, created_at) VALUES (7, 'Room 7', 'wav', '{"path":"/x.wav"}', 1, ` + itoa64(now) + `)`,
		`INSERT INTO rooms(id, name, source_kind, clinician_id, created_at) VALUES (9, 'Room 9', 'browser', NULL, ` + itoa64(now) + `)`,
		`INSERT INTO consultations(id, room_id, clinician_id, state, consent_by, consent_at, document_id, started_at, audio_seconds)
			VALUES ('c-approved', 7, 1, 'stopped', 1, ` + itoa64(now) + `, 'doc-1', ` + itoa64(now) + `, 12.5)`,
		`INSERT INTO consultations(id, room_id, clinician_id, state, consent_by, consent_at, document_id, started_at)
			VALUES ('c-paused', 9, 1, 'paused', 1, ` + itoa64(now) + `, 'doc-2', ` + itoa64(now) + `)`,
		`INSERT INTO segments(session_id, id, seq, pos, start_s, end_s, speaker, text, origin) VALUES ('c-approved', 's1', 1, 1, 0, 2, 'clinician', 'How are you today', 'machine')`,
		`INSERT INTO segments(session_id, id, seq, pos, start_s, end_s, speaker, text, origin) VALUES ('c-approved', 's2', 2, 2, 2, 4, 'patient', 'Not too bad', 'machine')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("pre-0107 fixture: %v\n%s", err, q)
		}
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO rooms(name, source_kind, created_at) VALUES ('Agent room', 'agent', 1)`); err == nil {
		t.Fatal("the pre-0107 schema accepted an agent room: the fixture is not the old schema")
	}
	db.Close()

	s, err := Open(ctx, path) // applies 0107 (and encrypts the old plaintext, as for any upgrade)
	if err != nil {
		t.Fatalf("open the pre-0107 database: %v", err)
	}
	defer s.Close()

	rooms, err := s.Rooms(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 2 || rooms[0].ID != 7 || rooms[0].Name != "Room 7" || rooms[0].SourceKind != "wav" || rooms[0].ClinicianID != 1 ||
		string(rooms[0].SourceConfig) != `{"path":"/x.wav"}` || rooms[1].ID != 9 || rooms[1].SourceKind != "browser" || rooms[1].ClinicianID != 0 {
		t.Fatalf("rooms after 0107: %+v", rooms)
	}
	c, err := s.Consultation(ctx, "c-approved")
	if err != nil || c.RoomID != 7 || c.AudioSeconds != 12.5 || c.State != StateStopped {
		t.Fatalf("consultation after 0107: %+v %v", c, err)
	}
	if c, err := s.Consultation(ctx, "c-paused"); err != nil || c.RoomID != 9 || c.State != StatePaused {
		t.Fatalf("consultation after 0107: %+v %v", c, err)
	}
	segs, err := s.Segments(ctx, "c-approved", false)
	if err != nil || len(segs) != 2 || segs[0].Text != "How are you today" || segs[1].Text != "Not too bad" {
		t.Fatalf("segments after 0107: %+v %v", segs, err)
	}

	// The references are whole and still enforced: consultations point at the new rooms
	// table, a consultation of a missing room is refused, a room in use cannot go.
	rows, err := s.db.QueryContext(ctx, `PRAGMA foreign_key_check`)
	if err != nil {
		t.Fatal(err)
	}
	if rows.Next() {
		var table, parent string
		var rowid, fk sql.NullInt64
		rows.Scan(&table, &rowid, &parent, &fk)
		t.Fatalf("foreign key violation after 0107: %s row %v → %s", table, rowid.Int64, parent)
	}
	rows.Close()
	var parent string
	if err := s.db.QueryRowContext(ctx, `SELECT "table" FROM pragma_foreign_key_list('consultations') WHERE "from" = 'room_id'`).Scan(&parent); err != nil || parent != "rooms" {
		t.Fatalf("consultations.room_id references %q (%v), want rooms", parent, err)
	}
	if _, err := s.db.ExecContext(ctx, `INSERT INTO consultations(id, room_id, clinician_id, state, consent_by, consent_at, document_id, started_at)
		VALUES ('orphan', 404, 1, 'stopped', 1, 1, 'doc-orphan', 1)`); err == nil {
		t.Fatal("a consultation of a room that does not exist was accepted after 0107")
	}
	if _, err := s.db.ExecContext(ctx, `DELETE FROM rooms WHERE id = 7`); err == nil {
		t.Fatal("a room with consultations was deleted after 0107")
	}
	var leftovers int
	s.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'rooms_copy'`).Scan(&leftovers)
	if leftovers != 0 {
		t.Fatal("0107 left its rooms_copy table behind")
	}

	// And the new source kind works on the upgraded database.
	r, err := s.CreateRoom(ctx, NewRoom{Name: "Room 3", SourceKind: SourceAgent, ClinicianID: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.CreateAgentCode(ctx, r.ID, 2); err != nil {
		t.Fatal(err)
	}
}

func itoa64(v int64) string { return strconv.FormatInt(v, 10) }
