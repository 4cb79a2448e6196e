package sasl

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"hash"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"stoa.im/stoa/internal/xmpp/jid"
)

// scramFirst handles the client-first-message (RFC 5802 §5.1, §7):
//
//	gs2-header = gs2-cbind-flag "," [ authzid ] ","
//	client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
//
// and returns the server-first-message.
func (c *Conversation) scramFirst(ctx context.Context, in []byte) ([]byte, *Failure) {
	msg := string(in)
	if !validText(msg) {
		return nil, failure(MalformedRequest, "message is not UTF-8 text")
	}
	flag, rest, ok := strings.Cut(msg, ",")
	if !ok {
		return nil, failure(MalformedRequest, "missing GS2 header")
	}
	rawAuthz, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return nil, failure(MalformedRequest, "missing GS2 header")
	}
	gs2 := msg[:len(flag)+len(rawAuthz)+2]

	if rawAuthz != "" {
		v, ok := strings.CutPrefix(rawAuthz, "a=")
		if !ok {
			return nil, failure(MalformedRequest, "bad authzid")
		}
		if c.authzid, ok = decodeSaslname(v); !ok {
			return nil, failure(MalformedRequest, "bad authzid encoding")
		}
	}

	// Channel binding (RFC 5802 §6).
	switch {
	case flag == "n":
		if c.plus {
			return nil, failure(MalformedRequest, "-PLUS mechanism without channel binding")
		}
	case flag == "y":
		if c.plus {
			return nil, failure(MalformedRequest, "-PLUS mechanism without channel binding")
		}
		// The client supports channel binding but thinks we do not: a
		// downgrade if we offered it (RFC 5802 §6).
		if slices.ContainsFunc(c.offered, func(m string) bool { return strings.HasSuffix(m, "-PLUS") }) {
			return nil, failure(NotAuthorized, "channel binding was offered")
		}
	case strings.HasPrefix(flag, "p="):
		if !c.plus {
			return nil, failure(MalformedRequest, "channel binding with a non-PLUS mechanism")
		}
		typ := flag[2:]
		if !slices.Contains(c.cbTypes, typ) {
			return nil, failure(NotAuthorized, "unsupported channel binding type")
		}
		var data []byte
		var err error
		if typ == TLSExporter {
			data, err = exporterBinding(c.tls.State)
		} else {
			data, err = endPointBinding(c.tls.Leaf)
		}
		if err != nil {
			return nil, &Failure{Condition: TemporaryAuthFailure, Text: "channel binding unavailable", Err: err}
		}
		c.cbType = typ
		c.cbInput = append([]byte(gs2), data...)
	default:
		return nil, failure(MalformedRequest, "bad GS2 channel-binding flag")
	}
	if c.cbInput == nil {
		c.cbInput = []byte(gs2)
	}

	fields := strings.Split(bare, ",")
	if strings.HasPrefix(fields[0], "m=") {
		return nil, failure(MalformedRequest, "mandatory extensions are not supported")
	}
	if len(fields) < 2 {
		return nil, failure(MalformedRequest, "missing username or nonce")
	}
	rawUser, ok := strings.CutPrefix(fields[0], "n=")
	if !ok {
		return nil, failure(MalformedRequest, "missing username")
	}
	user, ok := decodeSaslname(rawUser)
	if !ok || user == "" {
		return nil, failure(MalformedRequest, "bad username encoding")
	}
	cnonce, ok := strings.CutPrefix(fields[1], "r=")
	if !ok || !validNonce(cnonce) {
		return nil, failure(MalformedRequest, "bad nonce")
	}
	if !validExtensions(fields[2:]) {
		return nil, failure(MalformedRequest, "bad extension")
	}
	if c.username, ok = prepUser(user); !ok {
		return nil, failure(NotAuthorized, textAuthFailed)
	}

	creds, known, f := c.lookup(ctx)
	if f != nil {
		return nil, f
	}
	keys, fake := c.keysFor(creds, known, c.sha1)
	c.keys, c.fake = keys, fake
	c.clientFirst = bare
	c.nonce = cnonce + rand.Text()
	c.serverFirst = "r=" + c.nonce +
		",s=" + base64.StdEncoding.EncodeToString(keys.Salt) +
		",i=" + strconv.Itoa(keys.Iterations) +
		",h=" + SSDPHash(c.h, c.offered, c.cbTypes)
	return []byte(c.serverFirst), nil
}

// scramFinal handles the client-final-message (RFC 5802 §7):
//
//	client-final-message = channel-binding "," nonce ["," extensions] "," proof
//
// and returns the server-final-message.
func (c *Conversation) scramFinal(in []byte) ([]byte, *Failure) {
	msg := string(in)
	if !validText(msg) {
		return nil, failure(MalformedRequest, "message is not UTF-8 text")
	}
	fields := strings.Split(msg, ",")
	if len(fields) < 3 {
		return nil, failure(MalformedRequest, "missing fields")
	}
	rawCB, ok := strings.CutPrefix(fields[0], "c=")
	if !ok {
		return nil, failure(MalformedRequest, "missing channel binding")
	}
	cb, err := base64.StdEncoding.Strict().DecodeString(rawCB)
	if err != nil {
		return nil, failure(MalformedRequest, "channel binding is not base64")
	}
	nonce, ok := strings.CutPrefix(fields[1], "r=")
	if !ok {
		return nil, failure(MalformedRequest, "missing nonce")
	}
	rawProof, ok := strings.CutPrefix(fields[len(fields)-1], "p=")
	if !ok {
		return nil, failure(MalformedRequest, "missing proof")
	}
	proof, err := base64.StdEncoding.Strict().DecodeString(rawProof)
	if err != nil {
		return nil, failure(MalformedRequest, "proof is not base64")
	}
	if !validExtensions(fields[2 : len(fields)-1]) {
		return nil, failure(MalformedRequest, "bad extension")
	}
	if subtle.ConstantTimeCompare(cb, c.cbInput) != 1 {
		return nil, failure(NotAuthorized, "channel binding mismatch")
	}
	if nonce != c.nonce {
		return nil, failure(NotAuthorized, "nonce mismatch")
	}

	withoutProof := msg[:strings.LastIndexByte(msg, ',')]
	authMessage := []byte(c.clientFirst + "," + c.serverFirst + "," + withoutProof)
	clientSig := hmacSum(c.h, c.keys.StoredKey, authMessage)
	if len(proof) != len(clientSig) {
		return nil, failure(NotAuthorized, textAuthFailed)
	}
	clientKey := make([]byte, len(proof))
	subtle.XORBytes(clientKey, proof, clientSig)
	if !constantTimeOK(hashSum(c.h, clientKey), c.keys.StoredKey, c.fake) {
		return nil, failure(NotAuthorized, textAuthFailed)
	}
	if f := c.checkAuthzid(); f != nil {
		return nil, f
	}
	serverSig := hmacSum(c.h, c.keys.ServerKey, authMessage)
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSig)), nil
}

// SSDPHash computes the XEP-0474 (v0.5.0) downgrade-protection value for
// the "h" attribute of the server-first-message: the sorted mechanisms
// joined by 0x1E, then, if channel-binding types were advertised with
// XEP-0440, 0x1F and the sorted types joined by 0x1E; hashed with the SCRAM
// hash and base64 encoded.
func SSDPHash(h func() hash.Hash, mechanisms, cbTypes []string) string {
	m := slices.Sorted(slices.Values(mechanisms))
	s := strings.Join(m, "\x1e")
	if len(cbTypes) > 0 {
		t := slices.Sorted(slices.Values(cbTypes))
		s += "\x1f" + strings.Join(t, "\x1e")
	}
	return base64.StdEncoding.EncodeToString(hashSum(h, []byte(s)))
}

// prepUser prepares a SASL username as a JID localpart.
func prepUser(s string) (string, bool) {
	p, err := jid.PrepLocal(s)
	return p, err == nil
}

// validText reports whether s is UTF-8 without NUL (RFC 5802 §7 "value").
func validText(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// decodeSaslname decodes =2C and =3D (RFC 5802 §5.1); any other '=' is an
// error, as is an empty name.
func decodeSaslname(s string) (string, bool) {
	if s == "" {
		return "", false
	}
	if strings.IndexByte(s, '=') < 0 {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", false
		}
		i += 2
	}
	return b.String(), true
}

// validNonce reports whether s is a non-empty nonce of printable ASCII
// except ',' (RFC 5802 §7).
func validNonce(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == ',' {
			return false
		}
	}
	return true
}

// validExtensions reports whether every field is attr-val: ALPHA "=" value.
func validExtensions(fields []string) bool {
	for _, f := range fields {
		if len(f) < 3 || f[1] != '=' || !isAlpha(f[0]) {
			return false
		}
	}
	return true
}

func isAlpha(c byte) bool { return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') }
