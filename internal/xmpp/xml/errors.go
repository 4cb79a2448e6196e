package xml

import (
	"errors"
	"fmt"
)

// ErrStreamClosed is returned by Decoder.Next once the peer has closed its
// stream with </stream:stream>. It is sticky: later calls return it again.
var ErrStreamClosed = errors.New("xml: stream closed by peer")

// Error is a decoding error. Condition is the RFC 6120 §4.9.3 stream error
// condition the session should send before closing the stream; Text says
// what was wrong in words an operator understands.
type Error struct {
	Condition string
	Text      string
}

func (e *Error) Error() string { return "xml: " + e.Condition + ": " + e.Text }

// Stream error conditions produced by the decoder (RFC 6120 §4.9.3).
const (
	condNotWellFormed       = "not-well-formed"
	condRestrictedXML       = "restricted-xml"
	condBadNamespacePrefix  = "bad-namespace-prefix"
	condInvalidNamespace    = "invalid-namespace"
	condPolicyViolation     = "policy-violation"
	condUnsupportedEncoding = "unsupported-encoding"
	condInvalidXML          = "invalid-xml"
)

func newError(cond, text string) *Error { return &Error{Condition: cond, Text: text} }

func errorf(cond, format string, args ...any) *Error {
	return &Error{Condition: cond, Text: fmt.Sprintf(format, args...)}
}

// quoteSnippet returns s for use in an error text, truncated so that a
// hostile peer cannot make us log megabytes.
func quoteSnippet(s string) string {
	const max = 40
	if len(s) > max {
		s = s[:max] + "..."
	}
	return fmt.Sprintf("%q", s)
}
