-- 0107: room agents (issue 8). A room may take its audio from an enrolled agent box.

-- SQLite cannot change a CHECK constraint in place, so rooms is rebuilt to allow the
-- 'agent' source kind. Migrations run inside a transaction with foreign keys on, where
-- they cannot be switched off: the rows are copied aside, the table dropped (the
-- consultations that point at it become deferred violations) and recreated under the
-- same name, and copying the rows back resolves every violation before the commit.
PRAGMA defer_foreign_keys = ON;
CREATE TABLE rooms_copy AS SELECT * FROM rooms;
DROP TABLE rooms;
CREATE TABLE rooms (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    source_kind   TEXT    NOT NULL CHECK (source_kind IN ('wav', 'browser', 'device', 'agent')),
    source_config TEXT    NOT NULL DEFAULT '{}',
    clinician_id  INTEGER REFERENCES users(id),
    created_at    INTEGER NOT NULL
);
INSERT INTO rooms(id, name, source_kind, source_config, clinician_id, created_at)
    SELECT id, name, source_kind, source_config, clinician_id, created_at FROM rooms_copy;
DROP TABLE rooms_copy;

-- One-time enrolment codes: only a hash is kept; a code works once, for 15 minutes.
CREATE TABLE agent_codes (
    id         INTEGER PRIMARY KEY,
    room_id    INTEGER NOT NULL REFERENCES rooms(id),
    code_hash  TEXT    NOT NULL UNIQUE,
    created_by INTEGER REFERENCES users(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);

-- Enrolled agents: the bearer token is stored as its SHA-256 only.
CREATE TABLE agents (
    id           INTEGER PRIMARY KEY,
    room_id      INTEGER NOT NULL REFERENCES rooms(id),
    name         TEXT    NOT NULL DEFAULT '',
    token_hash   TEXT    NOT NULL UNIQUE,
    enrolled_at  INTEGER NOT NULL,
    last_seen_at INTEGER,
    revoked_at   INTEGER,
    revoked_by   INTEGER REFERENCES users(id)
);
CREATE INDEX agents_room ON agents(room_id);
