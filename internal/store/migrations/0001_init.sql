-- 0001: users, login sessions, rooms, consultations, segments, edits, flags.
-- Times are Unix milliseconds (UTC).

CREATE TABLE users (
    id            INTEGER PRIMARY KEY,
    username      TEXT    NOT NULL UNIQUE,
    display_name  TEXT    NOT NULL,
    role          TEXT    NOT NULL CHECK (role IN ('clinician', 'admin', 'cso', 'auditor')),
    password_hash TEXT    NOT NULL,
    gmc_number    TEXT    NOT NULL DEFAULT '',
    sds_user_id   TEXT    NOT NULL DEFAULT '',
    disabled      INTEGER NOT NULL DEFAULT 0,
    created_at    INTEGER NOT NULL
);

-- Only a SHA-256 of the login token is kept, so a copy of the database does not log anyone in.
CREATE TABLE login_sessions (
    token_hash   BLOB    PRIMARY KEY,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX login_sessions_user ON login_sessions(user_id);

CREATE TABLE rooms (
    id            INTEGER PRIMARY KEY,
    name          TEXT    NOT NULL UNIQUE,
    source_kind   TEXT    NOT NULL CHECK (source_kind IN ('wav', 'browser', 'device')),
    source_config TEXT    NOT NULL DEFAULT '{}',
    clinician_id  INTEGER REFERENCES users(id),
    created_at    INTEGER NOT NULL
);

CREATE TABLE consultations (
    id            TEXT    PRIMARY KEY,
    room_id       INTEGER NOT NULL REFERENCES rooms(id),
    clinician_id  INTEGER NOT NULL REFERENCES users(id),
    state         TEXT    NOT NULL CHECK (state IN ('recording', 'paused', 'stopped', 'approved')),
    consent_by    INTEGER NOT NULL REFERENCES users(id),
    consent_at    INTEGER NOT NULL,
    nhs_number    TEXT    NOT NULL DEFAULT '',
    document_id   TEXT    NOT NULL UNIQUE,
    started_at    INTEGER NOT NULL,
    stopped_at    INTEGER,
    approved_at   INTEGER,
    approved_by   INTEGER REFERENCES users(id),
    -- Seconds of audio captured so far: a run after Resume continues the timeline here.
    audio_seconds REAL    NOT NULL DEFAULT 0,
    document_text TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX consultations_room ON consultations(room_id);
CREATE INDEX consultations_clinician ON consultations(clinician_id);

CREATE TABLE segments (
    session_id      TEXT    NOT NULL REFERENCES consultations(id) ON DELETE CASCADE,
    id              TEXT    NOT NULL,
    seq             INTEGER NOT NULL,           -- order of creation within the session
    pos             REAL    NOT NULL,           -- display order; split/add insert between neighbours
    start_s         REAL    NOT NULL,
    end_s           REAL    NOT NULL,
    speaker         TEXT    NOT NULL CHECK (speaker IN ('clinician', 'patient', 'unknown')),
    text            TEXT    NOT NULL,
    flags           TEXT    NOT NULL DEFAULT '[]', -- machine flags, JSON array
    origin          TEXT    NOT NULL CHECK (origin IN ('machine', 'split', 'added')),
    -- What the machine wrote, kept unchanged for safety monitoring (edit rates per flag).
    machine_text    TEXT    NOT NULL DEFAULT '',
    machine_speaker TEXT    NOT NULL DEFAULT '',
    no_speech_prob  REAL    NOT NULL DEFAULT 0,
    avg_logprob     REAL    NOT NULL DEFAULT 0,
    version         INTEGER NOT NULL DEFAULT 1,
    deleted         INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (session_id, id),
    UNIQUE (session_id, seq)
);

CREATE TABLE segment_edits (
    id         INTEGER PRIMARY KEY,
    session_id TEXT    NOT NULL REFERENCES consultations(id) ON DELETE CASCADE,
    segment_id TEXT    NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    at         INTEGER NOT NULL,
    kind       TEXT    NOT NULL,
    before     TEXT    NOT NULL, -- JSON: segment id -> snapshot (null when it did not exist)
    after      TEXT    NOT NULL, -- JSON: segment id -> snapshot
    undone_at  INTEGER,
    undone_by  INTEGER REFERENCES users(id)
);
CREATE INDEX segment_edits_session ON segment_edits(session_id, id);

CREATE TABLE flags (
    id         INTEGER PRIMARY KEY,
    session_id TEXT    NOT NULL REFERENCES consultations(id) ON DELETE CASCADE,
    segment_id TEXT    NOT NULL,
    category   TEXT    NOT NULL CHECK (category IN ('wrong_words', 'wrong_speaker', 'invented_text', 'missing_speech')),
    note       TEXT    NOT NULL DEFAULT '',
    user_id    INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    state      TEXT    NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'triaged', 'mitigated', 'closed'))
);
CREATE INDEX flags_session ON flags(session_id);
