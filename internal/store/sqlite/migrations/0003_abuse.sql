-- Abuse control: account states (restricted, suspended), block lists
-- (XEP-0191) and the queue of abuse reports (XEP-0377, firewall, admins).

-- One row per account that is not active; no row means active.
CREATE TABLE account_states (
	jid     TEXT    NOT NULL PRIMARY KEY REFERENCES accounts (jid) ON DELETE CASCADE,
	domain  TEXT    NOT NULL,
	state   TEXT    NOT NULL CHECK (state IN ('restricted', 'suspended')),
	reason  TEXT    NOT NULL DEFAULT '',
	set_by  TEXT    NOT NULL DEFAULT '',
	since   INTEGER NOT NULL,
	expires INTEGER            -- NULL: until changed
) STRICT, WITHOUT ROWID;

CREATE INDEX account_states_domain ON account_states (domain, jid);

CREATE TABLE blocklist (
	owner TEXT    NOT NULL REFERENCES accounts (jid) ON DELETE CASCADE,
	jid   TEXT    NOT NULL,
	added INTEGER NOT NULL,
	PRIMARY KEY (owner, jid)
) STRICT, WITHOUT ROWID;

-- Reports outlive the accounts involved (no foreign keys): they are the
-- record of what was reported and what the admins did about it.
CREATE TABLE reports (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	created     INTEGER NOT NULL,
	reporter    TEXT    NOT NULL,
	offender    TEXT    NOT NULL,
	reason      TEXT    NOT NULL,
	text        TEXT    NOT NULL DEFAULT '',
	stanza_ids  TEXT    NOT NULL DEFAULT '[]' CHECK (json_valid(stanza_ids) AND json_type(stanza_ids) = 'array'),
	evidence    BLOB,                -- the reported stanza, serialized; NULL when none
	source      TEXT    NOT NULL DEFAULT '',
	state       TEXT    NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'resolved')),
	resolved_at INTEGER,
	resolved_by TEXT    NOT NULL DEFAULT '',
	resolution  TEXT    NOT NULL DEFAULT '',
	forwarded   TEXT    NOT NULL DEFAULT ''
) STRICT;

CREATE INDEX reports_state_id ON reports (state, id);
CREATE INDEX reports_offender_id ON reports (offender, id);
