// Package stanza holds XMPP stanza-level and stream-level error types
// (RFC 6120 §4.9 and §8.3) and small helpers for building replies.
package stanza

import (
	"fmt"

	"stoa.im/stoa/internal/xmpp/xml"
)

// Namespaces used by errors.
const (
	NSStanzas = "urn:ietf:params:xml:ns:xmpp-stanzas"
	NSStreams = "urn:ietf:params:xml:ns:xmpp-streams"
)

// ErrorType is the type attribute of a stanza <error/> (RFC 6120 §8.3.2).
type ErrorType string

// Error types.
const (
	Auth     ErrorType = "auth"
	Cancel   ErrorType = "cancel"
	Continue ErrorType = "continue"
	Modify   ErrorType = "modify"
	Wait     ErrorType = "wait"
)

// Condition is a defined stanza error condition (RFC 6120 §8.3.3).
type Condition string

// Stanza error conditions.
const (
	BadRequest            Condition = "bad-request"
	Conflict              Condition = "conflict"
	FeatureNotImplemented Condition = "feature-not-implemented"
	Forbidden             Condition = "forbidden"
	Gone                  Condition = "gone"
	InternalServerError   Condition = "internal-server-error"
	ItemNotFound          Condition = "item-not-found"
	JIDMalformed          Condition = "jid-malformed"
	NotAcceptable         Condition = "not-acceptable"
	NotAllowed            Condition = "not-allowed"
	NotAuthorized         Condition = "not-authorized"
	PolicyViolation       Condition = "policy-violation"
	RecipientUnavailable  Condition = "recipient-unavailable"
	Redirect              Condition = "redirect"
	RegistrationRequired  Condition = "registration-required"
	RemoteServerNotFound  Condition = "remote-server-not-found"
	RemoteServerTimeout   Condition = "remote-server-timeout"
	ResourceConstraint    Condition = "resource-constraint"
	ServiceUnavailable    Condition = "service-unavailable"
	SubscriptionRequired  Condition = "subscription-required"
	UndefinedCondition    Condition = "undefined-condition"
	UnexpectedRequest     Condition = "unexpected-request"
)

// DefaultType returns the error type RFC 6120 §8.3.3 recommends for c.
func (c Condition) DefaultType() ErrorType {
	switch c {
	case BadRequest, JIDMalformed, NotAcceptable, PolicyViolation, Redirect, Gone:
		return Modify
	case Forbidden, NotAuthorized, RegistrationRequired, SubscriptionRequired:
		return Auth
	case RecipientUnavailable, RemoteServerTimeout, ResourceConstraint, UnexpectedRequest:
		return Wait
	default:
		return Cancel
	}
}

// Error is a stanza error. Text is shown to people: say what was refused
// and why, in words a user can act on.
type Error struct {
	Type      ErrorType
	Condition Condition
	Text      string
	// App is an optional application-specific condition element.
	App *xml.Element
	// By is the optional 'by' attribute (the entity that produced the error).
	By string
}

// NewError returns an error with the condition's default type.
func NewError(c Condition, text string) *Error {
	return &Error{Type: c.DefaultType(), Condition: c, Text: text}
}

// Errorf is NewError with a formatted text.
func Errorf(c Condition, format string, args ...any) *Error {
	return NewError(c, fmt.Sprintf(format, args...))
}

func (e *Error) Error() string {
	if e.Text != "" {
		return string(e.Condition) + ": " + e.Text
	}
	return string(e.Condition)
}

// Element renders the <error/> child.
func (e *Error) Element(ns string) *xml.Element {
	typ := e.Type
	if typ == "" {
		typ = e.Condition.DefaultType()
	}
	el := &xml.Element{Space: ns, Local: "error"}
	el.SetAttr("type", string(typ))
	if e.By != "" {
		el.SetAttr("by", e.By)
	}
	el.Append(xml.New(NSStanzas, string(e.Condition)))
	if e.Text != "" {
		t := &xml.Element{Space: NSStanzas, Local: "text", Text: e.Text}
		t.SetAttrNS(xml.NSXML, "lang", "en")
		el.Append(t)
	}
	if e.App != nil {
		el.Append(e.App)
	}
	return el
}

// ParseError reads an <error/> child of a stanza, or returns nil.
func ParseError(st *xml.Element) *Error {
	el := st.Child("", "error")
	if el == nil {
		return nil
	}
	e := &Error{Type: ErrorType(el.Attr("type")), By: el.Attr("by")}
	for _, c := range el.Elements() {
		switch {
		case c.Space == NSStanzas && c.Local == "text":
			e.Text = c.Text
		case c.Space == NSStanzas:
			e.Condition = Condition(c.Local)
		default:
			e.App = c
		}
	}
	return e
}

// ErrorReply builds the error response to st (RFC 6120 §8.3.1): from and to
// swapped, type="error", the original children kept (except for IQ results,
// where the original payload is kept too, which RFC 6120 allows).
func ErrorReply(st *xml.Element, e *Error) *xml.Element {
	r := &xml.Element{Space: st.Space, Local: st.Local}
	if id := st.Attr("id"); id != "" {
		r.SetAttr("id", id)
	}
	if from := st.Attr("from"); from != "" {
		r.SetAttr("to", from)
	}
	if to := st.Attr("to"); to != "" {
		r.SetAttr("from", to)
	}
	r.SetAttr("type", "error")
	for _, c := range st.Children {
		if c.Local == "error" && !c.IsText() {
			continue
		}
		r.Children = append(r.Children, c)
	}
	r.Append(e.Element(st.Space))
	return r
}

// Result builds an IQ result for iq (from/to swapped), with optional payload.
func Result(iq *xml.Element, payload ...*xml.Element) *xml.Element {
	r := &xml.Element{Space: iq.Space, Local: "iq"}
	r.SetAttr("id", iq.Attr("id"))
	if from := iq.Attr("from"); from != "" {
		r.SetAttr("to", from)
	}
	if to := iq.Attr("to"); to != "" {
		r.SetAttr("from", to)
	}
	r.SetAttr("type", "result")
	r.Children = payload
	return r
}

// IsError reports whether st has type="error".
func IsError(st *xml.Element) bool { return st.Attr("type") == "error" }

// StreamCondition is a stream error condition (RFC 6120 §4.9.3).
type StreamCondition string

// Stream error conditions.
const (
	BadFormat              StreamCondition = "bad-format"
	BadNamespacePrefix     StreamCondition = "bad-namespace-prefix"
	StreamConflict         StreamCondition = "conflict"
	ConnectionTimeout      StreamCondition = "connection-timeout"
	HostGone               StreamCondition = "host-gone"
	HostUnknown            StreamCondition = "host-unknown"
	ImproperAddressing     StreamCondition = "improper-addressing"
	StreamInternalError    StreamCondition = "internal-server-error"
	InvalidFrom            StreamCondition = "invalid-from"
	InvalidNamespace       StreamCondition = "invalid-namespace"
	InvalidXML             StreamCondition = "invalid-xml"
	StreamNotAuthorized    StreamCondition = "not-authorized"
	NotWellFormed          StreamCondition = "not-well-formed"
	StreamPolicyViolation  StreamCondition = "policy-violation"
	RemoteConnectionFailed StreamCondition = "remote-connection-failed"
	Reset                  StreamCondition = "reset"
	StreamResourceLimit    StreamCondition = "resource-constraint"
	RestrictedXML          StreamCondition = "restricted-xml"
	SeeOtherHost           StreamCondition = "see-other-host"
	SystemShutdown         StreamCondition = "system-shutdown"
	StreamUndefined        StreamCondition = "undefined-condition"
	UnsupportedEncoding    StreamCondition = "unsupported-encoding"
	UnsupportedFeature     StreamCondition = "unsupported-feature"
	UnsupportedStanzaType  StreamCondition = "unsupported-stanza-type"
	UnsupportedVersion     StreamCondition = "unsupported-version"
)

// StreamError is a stream-level error; sending it closes the stream.
type StreamError struct {
	Condition StreamCondition
	Text      string
}

// NewStreamError returns a stream error.
func NewStreamError(c StreamCondition, text string) *StreamError {
	return &StreamError{Condition: c, Text: text}
}

func (e *StreamError) Error() string {
	if e.Text != "" {
		return "stream error: " + string(e.Condition) + ": " + e.Text
	}
	return "stream error: " + string(e.Condition)
}

// Element renders <stream:error/>.
func (e *StreamError) Element() *xml.Element {
	el := xml.New(xml.NSStream, "error")
	el.Append(xml.New(NSStreams, string(e.Condition)))
	if e.Text != "" {
		t := &xml.Element{Space: NSStreams, Local: "text", Text: e.Text}
		t.SetAttrNS(xml.NSXML, "lang", "en")
		el.Append(t)
	}
	return el
}
