-- Message archive (XEP-0313).
--
-- Messages live in one table per UTC day, archive_p<N> where N is the
-- number of days since 1970-01-01: the store creates a day's table when
-- it writes the day's first message, and expiry drops whole tables (a
-- DROP TABLE costs about as much as deleting a few thousand rows, however
-- large the table); cut-offs inside a day (admin purges, a host with a
-- shorter retention) delete rows in bounded batches. Each day table is:
--
--   CREATE TABLE archive_pN (
--     id        INTEGER PRIMARY KEY, -- sequence: millisecond << 21 | counter
--     owner     INTEGER NOT NULL,    -- archive_owners.id
--     with_bare TEXT    NOT NULL,    -- the other party, bare
--     with_res  TEXT    NOT NULL,    -- and its resource ('' if none)
--     stanza    BLOB    NOT NULL
--   ) STRICT;
--   CREATE INDEX archive_pN_owner ON archive_pN (owner);            -- + rowid
--   CREATE INDEX archive_pN_with  ON archive_pN (owner, with_bare); -- + rowid
--
-- Archive IDs shown to clients are the ids encrypted under id_key (see
-- store.ArchiveIDCodec).

CREATE TABLE archive_meta (
	key   TEXT NOT NULL PRIMARY KEY,
	value ANY  NOT NULL
) STRICT, WITHOUT ROWID;

-- id_key: the key of archive ids; high_seq: the highest sequence number
-- stored; owner_gen: counts deleted owners, so that a process caching
-- owner ids sees when one went.
INSERT INTO archive_meta (key, value) VALUES ('id_key', randomblob(16)), ('high_seq', 0), ('owner_gen', 0);

-- Small integer ids for archive owners, so day tables do not repeat the
-- JID. AUTOINCREMENT: an id is never reused, so rows of a deleted account
-- can never show up in the archive of a new account with the same JID.
CREATE TABLE archive_owners (
	id     INTEGER PRIMARY KEY AUTOINCREMENT,
	jid    TEXT    NOT NULL UNIQUE REFERENCES accounts (jid) ON DELETE CASCADE,
	domain TEXT    NOT NULL
) STRICT;

CREATE INDEX archive_owners_domain ON archive_owners (domain);

-- Owners whose account was deleted: their rows in the day tables are
-- invisible at once (queries go through archive_owners) and removed in
-- bounded batches by Purge.
CREATE TABLE archive_orphans (
	owner INTEGER NOT NULL PRIMARY KEY
) STRICT;

CREATE TRIGGER archive_owner_deleted AFTER DELETE ON archive_owners BEGIN
	INSERT OR IGNORE INTO archive_orphans (owner) VALUES (old.id);
	UPDATE archive_meta SET value = value + 1 WHERE key = 'owner_gen';
END;

-- The day tables that exist.
CREATE TABLE archive_partitions (
	day INTEGER NOT NULL PRIMARY KEY
) STRICT;

-- Messages per owner and day: which day tables a query visits, counts for
-- RSM and quotas without scanning.
CREATE TABLE archive_counts (
	owner INTEGER NOT NULL REFERENCES archive_owners (id) ON DELETE CASCADE,
	day   INTEGER NOT NULL,
	n     INTEGER NOT NULL,
	PRIMARY KEY (owner, day)
) STRICT, WITHOUT ROWID;

CREATE INDEX archive_counts_day ON archive_counts (day);

-- XEP-0441 preferences.
CREATE TABLE archive_prefs (
	owner  TEXT NOT NULL PRIMARY KEY REFERENCES accounts (jid) ON DELETE CASCADE,
	policy TEXT NOT NULL CHECK (policy IN ('', 'always', 'roster', 'never')),
	always TEXT NOT NULL CHECK (json_valid(always) AND json_type(always) = 'array'),
	never  TEXT NOT NULL CHECK (json_valid(never) AND json_type(never) = 'array')
) STRICT, WITHOUT ROWID;
