// Package sasl is the server side of the XMPP SASL profile (RFC 6120 §6):
// SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677), their -PLUS variants
// with the tls-exporter (RFC 9266) and tls-server-end-point (RFC 5929)
// channel bindings, and PLAIN (RFC 4616).
//
// The SCRAM server is written here rather than taken from
// github.com/xdg-go/scram because XEP-0474 (SASL SCRAM Downgrade Protection)
// adds an attribute to the server-first-message, which the proofs sign; the
// tests prove interoperability with xdg-go/scram's client.
//
// Unknown users get deterministic fake credentials derived from a server
// secret and follow the same code path as known users, so that an unknown
// user fails exactly like a wrong password (RFC 5802 §9, "user enumeration").
//
// Inputs and outputs of Conversation.Step are raw bytes; the caller does the
// base64 of RFC 6120 §6.4.2 and maps a *Failure to a <failure/> element.
package sasl

import (
	"crypto"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	_ "crypto/sha512" // tls-server-end-point with SHA-384/512 signatures
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/text/secure/precis"
)

// Mechanism names.
const (
	SCRAMSHA256Plus = "SCRAM-SHA-256-PLUS"
	SCRAMSHA1Plus   = "SCRAM-SHA-1-PLUS"
	SCRAMSHA256     = "SCRAM-SHA-256"
	SCRAMSHA1       = "SCRAM-SHA-1"
	Plain           = "PLAIN"
)

// Channel-binding type names (RFC 9266, RFC 5929), as advertised with
// XEP-0440.
const (
	TLSExporter       = "tls-exporter"
	TLSServerEndPoint = "tls-server-end-point"
)

// NSChannelBinding is the namespace of the XEP-0440 stream feature
// <sasl-channel-binding/>.
const NSChannelBinding = "urn:xmpp:sasl-cb:0"

// DefaultIterations is the PBKDF2 iteration count used when none is given; it
// is the minimum RFC 7677 recommends.
const DefaultIterations = 4096

// ErrUnknownUser is returned by Config.Lookup for a user that does not exist.
var ErrUnknownUser = errors.New("sasl: unknown user")

// Failure conditions (RFC 6120 §6.5).
const (
	Aborted              = "aborted"
	AccountDisabled      = "account-disabled"
	CredentialsExpired   = "credentials-expired"
	EncryptionRequired   = "encryption-required"
	IncorrectEncoding    = "incorrect-encoding"
	InvalidAuthzid       = "invalid-authzid"
	InvalidMechanism     = "invalid-mechanism"
	MalformedRequest     = "malformed-request"
	MechanismTooWeak     = "mechanism-too-weak"
	NotAuthorized        = "not-authorized"
	TemporaryAuthFailure = "temporary-auth-failure"
)

// Failure is an authentication failure: the condition and text to send in
// <failure/>. Err, if set, is the internal cause for the log; it is never
// meant for the client.
type Failure struct {
	Condition string
	Text      string
	Err       error
}

func (f *Failure) Error() string {
	s := "sasl: " + f.Condition
	if f.Text != "" {
		s += ": " + f.Text
	}
	if f.Err != nil {
		s += ": " + f.Err.Error()
	}
	return s
}

// Unwrap returns the internal cause.
func (f *Failure) Unwrap() error { return f.Err }

// textAuthFailed is the one text of every credential failure, so a wrong
// password and an unknown user look the same.
const textAuthFailed = "authentication failed"

func failure(cond, text string) *Failure { return &Failure{Condition: cond, Text: text} }

// ScramKeys are the stored SCRAM keys for one hash (RFC 5802 §3). Its
// fields match store.ScramCredentials one for one, so the two convert
// directly; keep them in step.
type ScramKeys struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// Credentials hold the keys for each supported hash. Keys that are missing or
// of the wrong size make that hash's mechanisms fail like a wrong password.
type Credentials struct {
	SHA1, SHA256 ScramKeys
}

// NewCredentials derives the stored keys for password, prepared with the
// PRECIS OpaqueString profile (RFC 8265, the successor of SASLprep), with a
// fresh random 16-byte salt per hash. iterations 0 means DefaultIterations;
// fewer than DefaultIterations is an error.
func NewCredentials(password string, iterations int) (Credentials, error) {
	if iterations == 0 {
		iterations = DefaultIterations
	}
	if iterations < DefaultIterations {
		return Credentials{}, fmt.Errorf("sasl: creating credentials: %d iterations, need at least %d", iterations, DefaultIterations)
	}
	p, err := precis.OpaqueString.String(password)
	if err != nil {
		return Credentials{}, fmt.Errorf("sasl: creating credentials: preparing password: %w", err)
	}
	var c Credentials
	if c.SHA1, err = deriveKeys(sha1.New, p, randomSalt(), iterations); err != nil {
		return Credentials{}, fmt.Errorf("sasl: creating SHA-1 credentials: %w", err)
	}
	if c.SHA256, err = deriveKeys(sha256.New, p, randomSalt(), iterations); err != nil {
		return Credentials{}, fmt.Errorf("sasl: creating SHA-256 credentials: %w", err)
	}
	return c, nil
}

func randomSalt() []byte {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand since Go 1.24)
	return b
}

// deriveKeys computes StoredKey and ServerKey from a prepared password.
func deriveKeys(h func() hash.Hash, password string, salt []byte, iterations int) (ScramKeys, error) {
	salted, err := pbkdf2.Key(h, password, salt, iterations, h().Size())
	if err != nil {
		return ScramKeys{}, err
	}
	clientKey := hmacSum(h, salted, []byte("Client Key"))
	return ScramKeys{
		Salt:       salt,
		Iterations: iterations,
		StoredKey:  hashSum(h, clientKey),
		ServerKey:  hmacSum(h, salted, []byte("Server Key")),
	}, nil
}

func hmacSum(h func() hash.Hash, key, data []byte) []byte {
	m := hmac.New(h, key)
	m.Write(data)
	return m.Sum(nil)
}

func hashSum(h func() hash.Hash, data []byte) []byte {
	d := h()
	d.Write(data)
	return d.Sum(nil)
}

// TLSInfo describes the connection's TLS state. The zero value means no TLS.
type TLSInfo struct {
	State *tls.ConnectionState
	// Leaf is the server's own certificate on this connection, needed for
	// tls-server-end-point.
	Leaf *x509.Certificate
}

// Mechanisms returns the mechanisms to advertise on a connection, strongest
// first: the -PLUS variants only when a channel binding is available, and
// PLAIN only when allowPlain is set and the connection uses TLS.
func Mechanisms(t TLSInfo, allowPlain bool) []string {
	var m []string
	if len(ChannelBindingTypes(t)) > 0 {
		m = append(m, SCRAMSHA256Plus, SCRAMSHA1Plus)
	}
	m = append(m, SCRAMSHA256, SCRAMSHA1)
	if allowPlain && t.State != nil {
		m = append(m, Plain)
	}
	return m
}

// ChannelBindingTypes returns the channel-binding types available on the
// connection, for the XEP-0440 <sasl-channel-binding/> feature:
// tls-exporter when keying material can be exported (TLS 1.3, or TLS 1.2
// with Extended Master Secret), and tls-server-end-point when the server's
// leaf certificate is known and its signature algorithm defines the hash
// (RFC 5929 §4.1; not for Ed25519).
//
// The SCRAM conversation assumes that the caller advertises exactly this list
// with XEP-0440 whenever it is non-empty (it is part of the XEP-0474 hash).
func ChannelBindingTypes(t TLSInfo) []string {
	if t.State == nil || !t.State.HandshakeComplete {
		return nil
	}
	var types []string
	if _, err := exporterBinding(t.State); err == nil {
		types = append(types, TLSExporter)
	}
	if t.Leaf != nil {
		if _, ok := endPointHash(t.Leaf); ok {
			types = append(types, TLSServerEndPoint)
		}
	}
	return types
}

// exporterBinding returns the tls-exporter channel binding (RFC 9266 §2).
// crypto/tls refuses the export on TLS 1.2 without Extended Master Secret
// (unless GODEBUG=tlsunsafeekm=1, which must not be set).
func exporterBinding(s *tls.ConnectionState) ([]byte, error) {
	return s.ExportKeyingMaterial("EXPORTER-Channel-Binding", nil, 32)
}

// endPointHash picks the tls-server-end-point hash (RFC 5929 §4.1): SHA-256
// if the certificate's signature uses MD5 or SHA-1, else the signature's own
// hash. Algorithms without a single hash have no binding.
func endPointHash(c *x509.Certificate) (crypto.Hash, bool) {
	switch c.SignatureAlgorithm {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.DSAWithSHA1, x509.ECDSAWithSHA1,
		x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.ECDSAWithSHA256, x509.DSAWithSHA256:
		return crypto.SHA256, true
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		return crypto.SHA384, true
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		return crypto.SHA512, true
	}
	return 0, false
}

// endPointBinding returns the tls-server-end-point channel binding of the
// server's own certificate.
func endPointBinding(c *x509.Certificate) ([]byte, error) {
	if c == nil {
		return nil, errors.New("no server certificate")
	}
	h, ok := endPointHash(c)
	if !ok || !h.Available() {
		return nil, fmt.Errorf("no tls-server-end-point hash for signature algorithm %v", c.SignatureAlgorithm)
	}
	d := h.New()
	d.Write(c.Raw)
	return d.Sum(nil), nil
}
