-- Initial schema. Times are UTC unix nanoseconds (INTEGER). Everything an
-- account owns references accounts(jid) with ON DELETE CASCADE, so deleting
-- the account removes it and nothing can be stored for a missing account.

CREATE TABLE accounts (
	jid             TEXT    NOT NULL PRIMARY KEY,
	domain          TEXT    NOT NULL,
	sha1_salt       BLOB    NOT NULL,
	sha1_iterations INTEGER NOT NULL,
	sha1_stored_key BLOB    NOT NULL,
	sha1_server_key BLOB    NOT NULL,
	sha256_salt       BLOB    NOT NULL,
	sha256_iterations INTEGER NOT NULL,
	sha256_stored_key BLOB    NOT NULL,
	sha256_server_key BLOB    NOT NULL,
	created         INTEGER NOT NULL,
	last_logout     INTEGER,            -- NULL: never
	last_status     TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX accounts_domain ON accounts (domain, jid);

CREATE TABLE roster_items (
	owner        TEXT    NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
	contact      TEXT    NOT NULL,
	name         TEXT    NOT NULL DEFAULT '',
	subscription TEXT    NOT NULL CHECK (subscription IN ('none', 'to', 'from', 'both')),
	ask          INTEGER NOT NULL DEFAULT 0 CHECK (ask IN (0, 1)),
	approved     INTEGER NOT NULL DEFAULT 0 CHECK (approved IN (0, 1)),
	groups       TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(groups) AND json_type(groups) = 'array'),
	PRIMARY KEY (owner, contact)
) STRICT, WITHOUT ROWID;

-- One row per roster that ever changed; version only grows (RFC 6121 §2.6).
CREATE TABLE roster_versions (
	owner   TEXT    NOT NULL PRIMARY KEY REFERENCES accounts (jid) ON DELETE CASCADE,
	version INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Inbound subscription requests not yet answered; id orders them.
CREATE TABLE pending_in (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	owner   TEXT    NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
	contact TEXT    NOT NULL,
	stanza  BLOB    NOT NULL,
	UNIQUE (owner, contact)
) STRICT;

CREATE INDEX pending_in_owner_id ON pending_in (owner, id);

-- AUTOINCREMENT: ids are never reused, so a late Delete of delivered ids can
-- never hit a message stored after them.
CREATE TABLE offline (
	id     INTEGER PRIMARY KEY AUTOINCREMENT,
	owner  TEXT    NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
	stored INTEGER NOT NULL,
	stanza BLOB    NOT NULL
) STRICT;

CREATE INDEX offline_owner_id ON offline (owner, id);

CREATE TABLE kv (
	owner TEXT NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
	key   TEXT NOT NULL,
	value BLOB NOT NULL,
	PRIMARY KEY (owner, key)
) STRICT, WITHOUT ROWID;
