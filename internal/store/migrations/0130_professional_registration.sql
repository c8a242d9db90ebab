-- 0130: professional registration for non-doctor clinicians (issue 15): NMC, GPhC or HCPC
-- with the register number, written as the author identifier on every document.
ALTER TABLE users ADD COLUMN registration_body TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN registration_number TEXT NOT NULL DEFAULT '';
