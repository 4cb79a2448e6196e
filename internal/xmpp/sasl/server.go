package sasl

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strings"

	"stoa.im/stoa/internal/xmpp/jid"
)

// Config configures a Server.
type Config struct {
	// Lookup returns the credentials of a user. The username is already
	// prepared with jid.PrepLocal. It returns ErrUnknownUser (possibly
	// wrapped) for users that do not exist; any other error fails the
	// attempt with temporary-auth-failure.
	Lookup func(ctx context.Context, username string) (Credentials, error)
	// Secret keys the fake credentials of unknown users (salt =
	// HMAC(Secret, username)). It must be stable across restarts, or an
	// attacker can tell unknown users by their changing salt. If empty,
	// NewServer uses a random secret.
	Secret []byte
	// Iterations is the iteration count of fake credentials; it should match
	// the count real credentials are created with (default
	// DefaultIterations).
	Iterations int
	// Domain is the host the users belong to. A non-empty authzid is
	// accepted only if it is the user's own bare JID on this domain; if
	// Domain is empty, every non-empty authzid is refused.
	Domain string
	// Expensive, if set, runs PBKDF2 work (PLAIN verification) in the
	// caller's bounded worker pool. It must return only after work has
	// returned, or return an error (ctx.Err() if the pool stayed saturated
	// until ctx ended) without having run work; the attempt then fails with
	// temporary-auth-failure. If nil, the work runs in the calling goroutine.
	Expensive func(ctx context.Context, work func()) error
}

// Server creates SASL conversations. It is safe for concurrent use.
type Server struct {
	cfg    Config
	secret []byte
	domain string
}

// NewServer returns a Server for cfg.
func NewServer(cfg Config) *Server {
	s := &Server{cfg: cfg, secret: cfg.Secret}
	if len(s.secret) == 0 {
		s.secret = make([]byte, 32)
		_, _ = rand.Read(s.secret)
	}
	if s.cfg.Iterations <= 0 {
		s.cfg.Iterations = DefaultIterations
	}
	if cfg.Domain != "" {
		if d, err := jid.New("", cfg.Domain, ""); err == nil {
			s.domain = d.Domain()
		}
	}
	return s
}

// maxInput bounds one client message; real ones are a few hundred bytes.
const maxInput = 8192

type state int

const (
	stateStart     state = iota // nothing received yet
	stateEmptySent              // sent an empty challenge for a missing initial response
	stateFinal                  // SCRAM: sent server-first, waiting for client-final
	stateDone                   // succeeded
	stateFailed                 // failed
)

// Conversation is one authentication exchange. It is not safe for
// concurrent use.
type Conversation struct {
	srv     *Server
	mech    string
	h       func() hash.Hash // nil for PLAIN
	sha1    bool             // SCRAM-SHA-1(-PLUS)
	plus    bool
	tls     TLSInfo
	cbTypes []string // channel bindings available on this connection
	offered []string
	state   state

	username string // prepared
	authzid  string

	// SCRAM state between the two client messages.
	cbType      string
	cbInput     []byte // expected decoded c= value
	clientFirst string // client-first-message-bare
	serverFirst string
	nonce       string
	keys        ScramKeys
	fake        bool
}

// Start begins a conversation with mechanism mech on a connection whose TLS
// state is t. offered is the mechanism list advertised on this stream; a
// mechanism not in it fails with invalid-mechanism, and the list is hashed
// into the SCRAM server-first-message (XEP-0474).
func (s *Server) Start(ctx context.Context, mech string, t TLSInfo, offered []string) (*Conversation, error) {
	_ = ctx
	if !slices.Contains(offered, mech) {
		return nil, failure(InvalidMechanism, "mechanism not offered")
	}
	c := &Conversation{srv: s, mech: mech, tls: t, offered: offered}
	switch mech {
	case SCRAMSHA1, SCRAMSHA1Plus:
		c.h, c.sha1 = sha1.New, true
	case SCRAMSHA256, SCRAMSHA256Plus:
		c.h = sha256.New
	case Plain:
		if t.State == nil {
			return nil, failure(EncryptionRequired, "PLAIN needs TLS")
		}
	default:
		return nil, failure(InvalidMechanism, "unsupported mechanism")
	}
	c.plus = strings.HasSuffix(mech, "-PLUS")
	c.cbTypes = ChannelBindingTypes(t)
	if c.plus && len(c.cbTypes) == 0 {
		return nil, failure(InvalidMechanism, "no channel binding available on this connection")
	}
	return c, nil
}

// Mechanism returns the conversation's mechanism name.
func (c *Conversation) Mechanism() string { return c.mech }

// ChannelBinding returns the channel-binding type in use ("" if none).
func (c *Conversation) ChannelBinding() string { return c.cbType }

// Username returns the prepared localpart the client asked to authenticate
// as, once its message has been parsed ("" before, or if the name was not
// valid). It is authenticated only after Step returned done = true; after a
// failure it is the attempted name, for logs and per-account throttling.
func (c *Conversation) Username() string { return c.username }

// Step processes one client message (decoded from base64; the first call
// gets the initial response of <auth/>, possibly empty). It returns the data
// to send: a <challenge/> if done is false, the additional data of
// <success/> if done is true (empty for PLAIN). An empty challenge (out empty,
// done false) asks the client for its initial response. Errors are *Failure;
// after one, or after success, the conversation is over.
func (c *Conversation) Step(ctx context.Context, in []byte) (out []byte, done bool, err error) {
	if c.state == stateDone || c.state == stateFailed {
		return nil, false, failure(MalformedRequest, "authentication exchange is over")
	}
	out, done, f := c.step(ctx, in)
	if f != nil {
		c.state = stateFailed
		c.clearSecrets()
		return nil, false, f
	}
	if done {
		c.state = stateDone
		c.clearSecrets()
	}
	return out, done, nil
}

func (c *Conversation) step(ctx context.Context, in []byte) ([]byte, bool, *Failure) {
	if len(in) > maxInput {
		return nil, false, failure(MalformedRequest, "message too long")
	}
	switch c.state {
	case stateStart, stateEmptySent:
		if len(in) == 0 {
			if c.state == stateEmptySent {
				return nil, false, failure(MalformedRequest, "empty response")
			}
			c.state = stateEmptySent
			return nil, false, nil
		}
		if c.h == nil {
			return c.plain(ctx, in)
		}
		out, f := c.scramFirst(ctx, in)
		if f != nil {
			return nil, false, f
		}
		c.state = stateFinal
		return out, false, nil
	case stateFinal:
		out, f := c.scramFinal(in)
		if f != nil {
			return nil, false, f
		}
		return out, true, nil
	}
	return nil, false, failure(MalformedRequest, "unexpected message")
}

func (c *Conversation) clearSecrets() {
	c.keys = ScramKeys{}
	c.cbInput = nil
}

// lookup fetches the user's credentials; known is false for an unknown
// user.
func (c *Conversation) lookup(ctx context.Context) (creds Credentials, known bool, f *Failure) {
	creds, err := c.srv.cfg.Lookup(ctx, c.username)
	if errors.Is(err, ErrUnknownUser) {
		return Credentials{}, false, nil
	}
	if err != nil {
		return Credentials{}, false, &Failure{Condition: TemporaryAuthFailure, Text: "try again later",
			Err: fmt.Errorf("sasl: looking up %q: %w", c.username, err)}
	}
	return creds, true, nil
}

// keys returns the SHA-1 or SHA-256 keys of creds, or fake keys (fake true)
// if the user is unknown or has no usable keys for that hash.
func (c *Conversation) keysFor(creds Credentials, known, useSHA1 bool) (k ScramKeys, fake bool) {
	hashName, size, k := "SHA-256", sha256.Size, creds.SHA256
	if useSHA1 {
		hashName, size, k = "SHA-1", sha1.Size, creds.SHA1
	}
	if !known || !usable(k, size) {
		return c.srv.fakeKeys(hashName, size, c.username), true
	}
	return k, false
}

func usable(k ScramKeys, size int) bool {
	return len(k.Salt) > 0 && k.Iterations > 0 && len(k.StoredKey) == size && len(k.ServerKey) == size
}

// fakeKeys returns deterministic credentials for a user that does not
// exist: the same user always gets the same salt, and the keys match no
// password.
func (s *Server) fakeKeys(hashName string, size int, username string) ScramKeys {
	derive := func(label string) []byte {
		m := hmac.New(sha256.New, s.secret)
		m.Write([]byte("stoa sasl fake " + label + "\x00" + hashName + "\x00" + username))
		return m.Sum(nil)
	}
	return ScramKeys{
		Salt:       derive("salt")[:16],
		Iterations: s.cfg.Iterations,
		StoredKey:  derive("stored")[:size],
		ServerKey:  derive("server")[:size],
	}
}

// checkAuthzid reports whether authzid may be used by the authenticated
// user: empty, or the user's own bare JID.
func (c *Conversation) checkAuthzid() *Failure {
	if c.authzid == "" {
		return nil
	}
	j, err := jid.Parse(c.authzid)
	if err == nil && c.srv.domain != "" && j.IsBare() && j.Local() == c.username && j.Domain() == c.srv.domain {
		return nil
	}
	return failure(InvalidAuthzid, "authzid must be empty or your own bare JID")
}

// constantTimeOK combines a key comparison with the fake flag.
func constantTimeOK(a, b []byte, fake bool) bool {
	eq := subtle.ConstantTimeCompare(a, b)
	notFake := 1
	if fake {
		notFake = 0
	}
	return eq&notFake == 1
}
