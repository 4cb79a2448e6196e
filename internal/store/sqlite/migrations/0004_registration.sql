-- Registration: the name index with tombstones, the sign-up log and the
-- registration throttles' state.

-- One row per account name and per deleted account's name (tombstone),
-- keyed by JID, with the name's look-alike key unique per domain: checking
-- a requested name against every account and tombstone is one indexed
-- lookup. No foreign key to accounts: deleting an account turns its row
-- into a tombstone in the same transaction, and the tombstone stays.
CREATE TABLE names (
	jid      TEXT    NOT NULL PRIMARY KEY,
	domain   TEXT    NOT NULL,
	name_key TEXT    NOT NULL,
	state    TEXT    NOT NULL CHECK (state IN ('account', 'tombstone')),
	since    INTEGER NOT NULL,            -- created (account) or deleted (tombstone)
	via      TEXT    NOT NULL DEFAULT '', -- which path deleted it
	UNIQUE (domain, name_key)
) STRICT;

CREATE INDEX names_state ON names (domain, state, since);

-- Every account created by sign-up, kept after the account is deleted
-- for clean-up and audit. AUTOINCREMENT: ids are never reused.
CREATE TABLE registration_log (
	id     INTEGER PRIMARY KEY AUTOINCREMENT,
	jid    TEXT    NOT NULL,
	domain TEXT    NOT NULL,
	at     INTEGER NOT NULL,
	ip     TEXT    NOT NULL DEFAULT '',
	method TEXT    NOT NULL,
	invite TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX registration_log_at ON registration_log (at);
CREATE INDEX registration_log_domain_at ON registration_log (domain, at);
CREATE INDEX registration_log_ip_at ON registration_log (ip, at);

-- Throttle state that must survive restarts: per key, the times of the
-- recent events it counts (JSON array of unix nanoseconds, oldest first).
CREATE TABLE registration_throttle (
	key    TEXT    NOT NULL PRIMARY KEY,
	times  TEXT    NOT NULL CHECK (json_valid(times) AND json_type(times) = 'array'),
	newest INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX registration_throttle_newest ON registration_throttle (newest);
