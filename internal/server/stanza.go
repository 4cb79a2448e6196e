package server

import (
	"stoa.im/stoa/internal/xmpp/jid"
	"stoa.im/stoa/internal/xmpp/xml"
)

// Kind is the kind of a stanza.
type Kind uint8

// Stanza kinds.
const (
	KindMessage Kind = iota + 1
	KindPresence
	KindIQ
)

func (k Kind) String() string {
	switch k {
	case KindMessage:
		return "message"
	case KindPresence:
		return "presence"
	case KindIQ:
		return "iq"
	}
	return "unknown"
}

// KindOf returns the kind of el, or 0 if el is not a stanza.
func KindOf(el *xml.Element) Kind {
	if el.Space != xml.NSClient && el.Space != xml.NSServer {
		return 0
	}
	switch el.Local {
	case "message":
		return KindMessage
	case "presence":
		return KindPresence
	case "iq":
		return KindIQ
	}
	return 0
}

// Stanza is a stanza on its way through the pipeline. El always carries
// from and to attributes matching From and To (To is zero only for a
// client's presence broadcast, which has no 'to'). El is in the
// jabber:client namespace whatever its origin.
type Stanza struct {
	El   *xml.Element
	Kind Kind
	From jid.JID
	To   jid.JID
	Type string
	ID   string
	// Origin is the local session that sent the stanza, nil when it came
	// from the server itself or from federation.
	Origin *Session
	// Target is the local session the stanza is being written to, set by
	// Session.Deliver for the Outbound hooks (per-session filters such as
	// CSI need to know whose stream it is); nil at the other stages.
	Target *Session
}

// NewStanza wraps el, reading kind, type, id, from and to. It returns an
// error if from or to is not a valid JID.
func NewStanza(el *xml.Element) (*Stanza, error) {
	st := &Stanza{El: el, Kind: KindOf(el), Type: el.Attr("type"), ID: el.Attr("id")}
	var err error
	if f := el.Attr("from"); f != "" {
		if st.From, err = jid.Parse(f); err != nil {
			return nil, err
		}
	}
	if t := el.Attr("to"); t != "" {
		if st.To, err = jid.Parse(t); err != nil {
			return nil, err
		}
	}
	return st, nil
}

// IsError reports whether the stanza has type="error".
func (st *Stanza) IsError() bool { return st.Type == "error" }

// IsRequest reports whether the stanza is an IQ get or set.
func (st *Stanza) IsRequest() bool {
	return st.Kind == KindIQ && (st.Type == "get" || st.Type == "set")
}

// Payload returns the first child element (the IQ payload), or nil.
func (st *Stanza) Payload() *xml.Element {
	for _, c := range st.El.Children {
		if !c.IsText() && c.Local != "error" {
			return c
		}
	}
	for _, c := range st.El.Children {
		if !c.IsText() {
			return c
		}
	}
	return nil
}

// SetFrom sets From and the from attribute.
func (st *Stanza) SetFrom(j jid.JID) {
	st.From = j
	st.El.SetAttr("from", j.String())
}

// SetTo sets To and the to attribute.
func (st *Stanza) SetTo(j jid.JID) {
	st.To = j
	st.El.SetAttr("to", j.String())
}
