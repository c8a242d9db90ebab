-- 0106: clinical safety and monitoring (issue 6).

-- Flags may now concern a whole note (segment_id = '') as well as one segment, with two
-- note-level categories, and record who last moved them through triage. SQLite cannot
-- change a CHECK constraint in place, so the table is rebuilt with its rows.
CREATE TABLE flags_new (
    id         INTEGER PRIMARY KEY,
    session_id TEXT    NOT NULL REFERENCES consultations(id) ON DELETE CASCADE,
    segment_id TEXT    NOT NULL, -- '' when the flag is about the whole note
    category   TEXT    NOT NULL CHECK (category IN ('wrong_words', 'wrong_speaker', 'invented_text', 'missing_speech', 'wrong_patient', 'other')),
    note       TEXT    NOT NULL DEFAULT '',
    user_id    INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    state      TEXT    NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'triaged', 'mitigated', 'closed')),
    updated_at INTEGER,
    updated_by INTEGER REFERENCES users(id)
);
INSERT INTO flags_new(id, session_id, segment_id, category, note, user_id, created_at, state)
    SELECT id, session_id, segment_id, category, note, user_id, created_at, state FROM flags;
DROP TABLE flags;
ALTER TABLE flags_new RENAME TO flags;
CREATE INDEX flags_session ON flags(session_id);
CREATE INDEX flags_state ON flags(state, id);

-- Every triage step of a flag: who moved it, when, from which state to which, and why.
CREATE TABLE flag_events (
    id         INTEGER PRIMARY KEY,
    flag_id    INTEGER NOT NULL REFERENCES flags(id) ON DELETE CASCADE,
    from_state TEXT    NOT NULL,
    to_state   TEXT    NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    at         INTEGER NOT NULL,
    note       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX flag_events_flag ON flag_events(flag_id, id);

-- Optional, consented, coarse patient language/accent group (bias monitoring); '' = not recorded.
ALTER TABLE consultations ADD COLUMN language_group TEXT NOT NULL DEFAULT '';

-- Monitoring figures of an approved session, computed at approval from the machine draft
-- and the approved segments. The alignment is kept as word-index operations only: the
-- words themselves stay in the segments table and are not copied here.
CREATE TABLE session_metrics (
    session_id          TEXT    PRIMARY KEY REFERENCES consultations(id) ON DELETE CASCADE,
    clinician_id        INTEGER NOT NULL REFERENCES users(id),
    approved_at         INTEGER NOT NULL,
    iso_week            TEXT    NOT NULL, -- e.g. 2025-W07, of approved_at in UTC
    language_group      TEXT    NOT NULL DEFAULT '',
    draft_words         INTEGER NOT NULL,
    edits               INTEGER NOT NULL,
    word_edit_rate      REAL    NOT NULL,
    segments_total      INTEGER NOT NULL,
    segments_edited     INTEGER NOT NULL,
    speaker_corrections INTEGER NOT NULL,
    review_flags        INTEGER NOT NULL,
    machine_flags       INTEGER NOT NULL,
    stop_to_approval_s  REAL    NOT NULL,
    detail              TEXT    NOT NULL DEFAULT '{}' -- per-segment results with alignment ops, JSON
);
CREATE INDEX session_metrics_week ON session_metrics(iso_week);
CREATE INDEX session_metrics_clinician ON session_metrics(clinician_id);

-- The admin-managed vocabulary hint list, every version kept; the newest is in use.
CREATE TABLE vocabulary_versions (
    version    INTEGER PRIMARY KEY,
    terms      TEXT    NOT NULL, -- one term per line, validated by transcribe.ParseVocabulary
    term_count INTEGER NOT NULL,
    created_by INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    reason     TEXT    NOT NULL DEFAULT ''
);
