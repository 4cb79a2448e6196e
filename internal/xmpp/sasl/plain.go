package sasl

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"fmt"
	"strings"

	"golang.org/x/text/secure/precis"
)

// plain handles the PLAIN message (RFC 4616): authzid NUL authcid NUL passwd.
// The password is checked by deriving the SCRAM StoredKey from it (PBKDF2,
// through Config.Expensive) and comparing it with the stored one: SHA-256
// keys if the account has them, else SHA-1.
func (c *Conversation) plain(ctx context.Context, in []byte) ([]byte, bool, *Failure) {
	msg := string(in)
	if strings.Count(msg, "\x00") != 2 {
		return nil, false, failure(MalformedRequest, "PLAIN needs authzid, authcid and password")
	}
	authzid, rest, _ := strings.Cut(msg, "\x00")
	authcid, password, _ := strings.Cut(rest, "\x00")
	if !validText(authzid) || !validText(authcid) || !validText(password) || authcid == "" || password == "" {
		return nil, false, failure(MalformedRequest, "bad PLAIN message")
	}
	c.authzid = authzid
	var ok bool
	if c.username, ok = prepUser(authcid); !ok {
		return nil, false, failure(NotAuthorized, textAuthFailed)
	}
	password, err := precis.OpaqueString.String(password)
	if err != nil {
		return nil, false, failure(NotAuthorized, textAuthFailed)
	}

	creds, known, f := c.lookup(ctx)
	if f != nil {
		return nil, false, f
	}
	useSHA1 := known && !usable(creds.SHA256, sha256.Size) && usable(creds.SHA1, sha1.Size)
	keys, fake := c.keysFor(creds, known, useSHA1)
	h := sha256.New
	if useSHA1 {
		h = sha1.New
	}
	var match bool
	var werr error
	work := func() {
		var k ScramKeys
		k, werr = deriveKeys(h, password, keys.Salt, keys.Iterations)
		match = werr == nil && constantTimeOK(k.StoredKey, keys.StoredKey, fake)
	}
	if e := c.srv.cfg.Expensive; e != nil {
		if err := e(ctx, work); err != nil {
			return nil, false, &Failure{Condition: TemporaryAuthFailure, Text: "server busy, try again later",
				Err: fmt.Errorf("sasl: verifying PLAIN password: %w", err)}
		}
	} else {
		work()
	}
	if werr != nil {
		return nil, false, &Failure{Condition: TemporaryAuthFailure, Text: "try again later",
			Err: fmt.Errorf("sasl: verifying PLAIN password: %w", werr)}
	}
	if !match {
		return nil, false, failure(NotAuthorized, textAuthFailed)
	}
	if f := c.checkAuthzid(); f != nil {
		return nil, false, f
	}
	return nil, true, nil
}
