-- Invitations (XEP-0401, XEP-0379, XEP-0445), password-reset tokens, and
-- single-use values (proof-of-work solutions) remembered until they expire.

-- creator is NULL for invites an operator created on the command line;
-- deleting the creating account deletes its invites. jid is the reserved
-- address of an account invite ('' when the invitee chooses) or the account
-- of a reset token. Expired and used-up rows stay until purged: quotas
-- count them.
CREATE TABLE invites (
	token          TEXT    NOT NULL PRIMARY KEY,
	kind           TEXT    NOT NULL CHECK (kind IN ('account', 'contact', 'reset')),
	host           TEXT    NOT NULL,
	creator        TEXT    REFERENCES accounts (jid) ON DELETE CASCADE,
	jid            TEXT    NOT NULL DEFAULT '',
	allow_register INTEGER NOT NULL DEFAULT 0 CHECK (allow_register IN (0, 1)),
	subscribe      INTEGER NOT NULL DEFAULT 0 CHECK (subscribe IN (0, 1)),
	note           TEXT    NOT NULL DEFAULT '',
	created        INTEGER NOT NULL,
	expires        INTEGER NOT NULL,
	max_uses       INTEGER NOT NULL CHECK (max_uses >= 1),
	uses           INTEGER NOT NULL DEFAULT 0 CHECK (uses >= 0)
) STRICT;

CREATE INDEX invites_host_created ON invites (host, created);
CREATE INDEX invites_creator_created ON invites (creator, created);
CREATE INDEX invites_expires ON invites (expires);
CREATE INDEX invites_jid ON invites (jid) WHERE jid != '';

CREATE TABLE nonces (
	key     TEXT    NOT NULL PRIMARY KEY,
	expires INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX nonces_expires ON nonces (expires);
