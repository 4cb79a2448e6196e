package store

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// Message archive (XEP-0313). Each account has one archive of the messages
// it sent and received, ordered by archive ID. An archive ID is opaque and
// unpredictable outside the store (XEP-0313 §4, XEP-0359 §4: it reveals
// neither time nor archive size), but inside it is a 64-bit sequence
// number that grows with time: the millisecond the message was archived in
// the high 42 bits and a counter in the low 21. Backends keep the sequence
// numbers and give out IDs through ArchiveIDCodec, so that queries by time
// are ranges of IDs and time partitions are ranges too.
//
// Times of archived messages have millisecond precision (they are read back
// from the ID), unlike the microseconds of the other repositories.

// ArchiveMessage is one archived message.
type ArchiveMessage struct {
	// ID is the archive UID; it must come from Archive.NewID of the same
	// store, which also fixes the time the message was archived.
	ID    string
	Owner string // the account whose archive holds it (bare JID)
	// With is the other party: the 'to' of an outgoing message, the 'from'
	// of an incoming one (a full or bare JID; the owner's own JID for
	// messages to oneself).
	With   string
	Time   time.Time // when it was archived (set on reads; Append uses the ID's)
	Stanza []byte    // the serialized <message/> in the jabber:client namespace
}

// ArchiveQuery selects messages of one archive (XEP-0313 §4) and a page of
// them (XEP-0059). Every bound is optional; all that are given apply.
type ArchiveQuery struct {
	// With matches the other party: a bare JID matches every resource of
	// it, a full JID only that resource (XEP-0313 §4.1.1).
	With string
	// Start and End bound the time archived, both inclusive (zero: open).
	Start, End time.Time
	// AfterID and BeforeID are exclusive bounds by ID (#extended); IDs
	// lists the only messages wanted. An ID not in the archive is an
	// error matching ErrNotFound.
	AfterID, BeforeID string
	IDs               []string

	// Max is the page size (XEP-0059 <max/>); 0 asks only for Count.
	Max int
	// After pages forward from an ID (<after/>); Before pages backward
	// from an ID (<before>ID</before>); Last asks for the last page
	// (an empty <before/>). An unknown ID matches ErrNotFound.
	After, Before string
	Last          bool
}

// Backward reports whether the query pages from the end.
func (q ArchiveQuery) Backward() bool { return q.Last || q.Before != "" }

// ArchivePage is the answer to a query.
type ArchivePage struct {
	// Messages of the page, oldest first.
	Messages []ArchiveMessage
	// Complete is true when no message of the result set lies beyond the
	// page in the direction of paging (after it, or before it when paging
	// backward).
	Complete bool
	// Count is the number of messages matching the filters (ignoring
	// After, Before and Last); Index is the position of the page's first
	// message among them.
	Count, Index int
}

// Archiving policies (XEP-0441 §2.1.1).
const (
	PolicyAlways = "always"
	PolicyRoster = "roster"
	PolicyNever  = "never"
)

// ArchivePrefs are an account's archiving preferences (XEP-0441). A zero
// value means none were set.
type ArchivePrefs struct {
	// Default is PolicyAlways, PolicyRoster, PolicyNever, or "" for the
	// server's default.
	Default string
	// Always and Never list JIDs (bare or full) whose messages are always
	// or never archived.
	Always, Never []string
}

// ArchivePurge says which messages Purge removes: those archived before
// Before (zero: whatever their age) of one account (Owner), of one domain
// (Domain), or of every account (both empty).
type ArchivePurge struct {
	Before time.Time
	Owner  string
	Domain string
	// Limit bounds the rows one call deletes one by one; a call may also
	// drop one whole time partition, whatever its size, which costs about
	// as much as deleting a few rows.
	Limit int
}

// AppendResult says what Append did.
type AppendResult struct {
	Stored int // messages stored
	// NoAccount counts messages skipped because their owner has no
	// account (it was deleted while they waited to be written).
	NoAccount int
	// Trimmed counts old messages deleted to keep archives within quota.
	Trimmed int
}

// Archive stores message archives.
type Archive interface {
	// NewID returns a new archive ID for a message archived at t, and
	// the time it stands for (t to the millisecond). IDs increase with
	// every call, also when the clock steps back; the time then is the
	// latest one given out. It does no I/O.
	NewID(t time.Time) (id string, at time.Time)
	// Append stores messages, in one transaction per call. Messages whose
	// owner has no account are skipped and counted. With quota > 0, an
	// archive that then holds more than quota messages loses its oldest
	// ones (XEP-0313 §3.2: oldest first, never holes).
	Append(ctx context.Context, msgs []ArchiveMessage, quota int) (AppendResult, error)
	// Query returns a page of one archive.
	Query(ctx context.Context, owner string, q ArchiveQuery) (ArchivePage, error)
	// Prefs returns an account's preferences (zero when never set).
	Prefs(ctx context.Context, owner string) (ArchivePrefs, error)
	// SetPrefs replaces them; ErrNotFound if the account does not exist.
	// An unknown Default is an error.
	SetPrefs(ctx context.Context, owner string, p ArchivePrefs) error
	// Purge removes a bounded batch of the messages p selects and reports
	// how many it removed and whether more remain.
	Purge(ctx context.Context, p ArchivePurge) (deleted int, more bool, err error)
	// ReapDeleted removes a bounded batch (about limit rows) of the
	// messages of deleted accounts. Accounts.Delete hides an archive at
	// once, in its own transaction; the rows leave the disk through
	// ReapDeleted, which reports whether more remain.
	ReapDeleted(ctx context.Context, limit int) (deleted int, more bool, err error)
	// DeleteOwner removes an account's whole archive in bounded batches
	// (each its own transaction) and returns how many messages it removed.
	DeleteOwner(ctx context.Context, owner string) (int, error)
}

// Layout of archive sequence numbers.
const (
	archiveSeqBits = 21
	archiveSeqMask = 1<<archiveSeqBits - 1
)

// archiveMaxMilli is the first millisecond sequence numbers cannot hold
// (in the year 2109).
const archiveMaxMilli = 1 << (63 - archiveSeqBits)

// ArchiveSeqAt returns the lowest sequence number of millisecond t,
// clamped to the range sequence numbers can hold.
func ArchiveSeqAt(t time.Time) int64 { return ArchiveSeqAtMilli(t.UnixMilli()) }

// ArchiveSeqAtMilli is ArchiveSeqAt for a Unix time in milliseconds.
func ArchiveSeqAtMilli(ms int64) int64 {
	switch {
	case ms < 0:
		return 0
	case ms >= archiveMaxMilli:
		return math.MaxInt64 &^ archiveSeqMask
	}
	return ms << archiveSeqBits
}

// ArchiveSeqTime returns the time a sequence number stands for.
func ArchiveSeqTime(seq int64) time.Time {
	return time.UnixMilli(seq >> archiveSeqBits).UTC()
}

// ArchiveSeqGen hands out increasing sequence numbers.
type ArchiveSeqGen struct {
	mu   sync.Mutex
	last int64
}

// Init makes later numbers greater than last (the highest stored).
func (g *ArchiveSeqGen) Init(last int64) {
	g.mu.Lock()
	g.last = max(g.last, last)
	g.mu.Unlock()
}

// Next returns a number for time t: the first of its millisecond, or one
// more than the last given out if that is greater.
func (g *ArchiveSeqGen) Next(t time.Time) int64 {
	s := ArchiveSeqAt(t)
	g.mu.Lock()
	defer g.mu.Unlock()
	if s <= g.last {
		s = g.last + 1
	}
	g.last = s
	return s
}

// ArchiveIDCodec turns sequence numbers into archive IDs and back. An ID
// is the 16-byte AES encryption, under a key kept in the database, of
// eight zero bytes and the sequence number, in unpadded base64url (22
// characters). Decoding checks the zero bytes, so a made-up ID is
// recognised without a lookup.
type ArchiveIDCodec struct{ block cipher.Block }

// NewArchiveIDCodec returns a codec for a 16-, 24- or 32-byte key.
func NewArchiveIDCodec(key []byte) (*ArchiveIDCodec, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("store: archive id key: %w", err)
	}
	return &ArchiveIDCodec{block: b}, nil
}

// Encode returns the ID of a sequence number.
func (c *ArchiveIDCodec) Encode(seq int64) string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[8:], uint64(seq))
	c.block.Encrypt(b[:], b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// ErrBadArchiveID is returned (wrapped with ErrNotFound semantics by
// callers) for strings that are not archive IDs of this store.
var ErrBadArchiveID = errors.New("store: not an archive id of this server")

// Decode returns the sequence number of an ID.
func (c *ArchiveIDCodec) Decode(id string) (int64, error) {
	if len(id) != 22 {
		return 0, ErrBadArchiveID
	}
	var b [16]byte
	if n, err := base64.RawURLEncoding.Decode(b[:], []byte(id)); err != nil || n != 16 {
		return 0, ErrBadArchiveID
	}
	c.block.Decrypt(b[:], b[:])
	if binary.BigEndian.Uint64(b[:8]) != 0 {
		return 0, ErrBadArchiveID
	}
	seq := int64(binary.BigEndian.Uint64(b[8:]))
	if seq <= 0 {
		return 0, ErrBadArchiveID
	}
	return seq, nil
}
