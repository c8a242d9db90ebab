-- 0110: a stopped consultation whose note is empty can be discarded (issue 13): nothing is
-- filed and it leaves the clinician's worklist. A row here marks it; the consultation
-- itself keeps its state, times and audit trail.
CREATE TABLE session_discards (
    session_id TEXT    PRIMARY KEY REFERENCES consultations(id) ON DELETE CASCADE,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    at         INTEGER NOT NULL
);
