-- Push notification registrations (XEP-0357): one row per account, push
-- service and node. id orders them (oldest first) for the per-account cap.

CREATE TABLE push_registrations (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	owner   TEXT    NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
	service TEXT    NOT NULL,
	node    TEXT    NOT NULL,
	options BLOB,               -- NULL: no publish options
	created INTEGER NOT NULL,
	errors  INTEGER NOT NULL DEFAULT 0,
	UNIQUE (owner, service, node)
) STRICT;

CREATE INDEX push_registrations_owner_id ON push_registrations (owner, id);
