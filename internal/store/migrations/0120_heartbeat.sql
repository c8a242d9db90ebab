-- 0120: a recording session's last sign of life (issue 14). The server writes it every
-- few seconds while the session records; after a crash the session is marked interrupted
-- at this time, not at the restart.
ALTER TABLE consultations ADD COLUMN heartbeat_at INTEGER;
