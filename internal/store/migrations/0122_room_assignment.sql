-- 0122: moving a room to another clinician is a request until that clinician accepts it
-- or a second admin approves it (issue 14).
ALTER TABLE rooms ADD COLUMN pending_clinician_id INTEGER REFERENCES users(id);
ALTER TABLE rooms ADD COLUMN pending_by INTEGER REFERENCES users(id);
ALTER TABLE rooms ADD COLUMN pending_at INTEGER;
