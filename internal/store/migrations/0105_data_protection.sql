-- 0105: data protection (issue 5).
-- Transcript text, edits, flag notes, the approved document and NHS numbers are stored
-- encrypted from now on (the store does it: SQL only ever sees "vN:BASE64" ciphertexts).
-- An NHS number is found again through a keyed hash (HMAC with a key derived from the
-- data key), never by comparing plaintext.
ALTER TABLE consultations ADD COLUMN nhs_hash TEXT NOT NULL DEFAULT '';
CREATE INDEX consultations_nhs_hash ON consultations(nhs_hash) WHERE nhs_hash <> '';

-- Set when a recording was cut off by a crash (the server found it still "recording" at
-- start). The session is then paused; the mark stays so the review shows the gap.
ALTER TABLE consultations ADD COLUMN interrupted_at INTEGER;

-- Login throttling per username: after MaxLoginFailures in a row the account is locked
-- for LockoutPeriod. Only usernames of existing accounts are kept (a mistyped password
-- in the username box must not end up stored).
CREATE TABLE login_failures (
    username     TEXT    PRIMARY KEY,
    failures     INTEGER NOT NULL,
    last_at      INTEGER NOT NULL,
    locked_until INTEGER NOT NULL DEFAULT 0
);

-- Facts about the encrypted database: a key check value (so a wrong key is refused at
-- open instead of corrupting data) and whether legacy plaintext has been encrypted.
CREATE TABLE protection_meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
