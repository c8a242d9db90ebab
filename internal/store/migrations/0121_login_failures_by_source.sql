-- 0121: login lockout per source and username (issue 14). Locking a username everywhere
-- let anyone lock any clinician out by failing on purpose; a lockout now holds only for
-- the source (client address) the failures came from. Rows from before keep source ''.
CREATE TABLE login_failures_new (
    username     TEXT    NOT NULL,
    source       TEXT    NOT NULL DEFAULT '',
    failures     INTEGER NOT NULL,
    last_at      INTEGER NOT NULL,
    locked_until INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (username, source)
);
INSERT INTO login_failures_new(username, source, failures, last_at, locked_until)
    SELECT username, '', failures, last_at, locked_until FROM login_failures;
DROP TABLE login_failures;
ALTER TABLE login_failures_new RENAME TO login_failures;
