package e2e

import (
	"context"
	"crypto/tls"
	"encoding/xml"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"mellium.im/sasl"
	"mellium.im/xmlstream"
	"mellium.im/xmpp"
	"mellium.im/xmpp/jid"
	"mellium.im/xmpp/stanza"
)

// inStanza is a stanza a Go test client received, decoded loosely.
type inStanza struct {
	XMLName xml.Name
	From    string `xml:"from,attr"`
	To      string `xml:"to,attr"`
	Type    string `xml:"type,attr"`
	ID      string `xml:"id,attr"`
	Body    string `xml:"body"`
	Show    string `xml:"show"`
	Delay   *struct {
		Stamp string `xml:"stamp,attr"`
		From  string `xml:"from,attr"`
	} `xml:"urn:xmpp:delay delay"`
	// Raw is the stanza re-encoded from its tokens (",innerxml" needs a
	// byte decoder, which a Serve handler does not have).
	Raw string `xml:"-"`
}

func (s inStanza) String() string {
	return s.Raw
}

// bareOf returns the bare part of a JID string.
func bareOf(j string) string {
	if i := strings.IndexByte(j, '/'); i >= 0 {
		return j[:i]
	}
	return j
}

// melliumClient is a logged-in mellium.im/xmpp session whose incoming
// stanzas are collected for the test. IQ requests get an empty result.
type melliumClient struct {
	name string
	jid  jid.JID // full JID after bind
	s    *xmpp.Session
	conn net.Conn

	in       chan inStanza
	mu       sync.Mutex
	backlog  []inStanza // received, not yet matched by wait
	overflow bool
	trace    func(inStanza) // with STOA_E2E_TRACE=1: logs every stanza
	served   chan struct{}  // closed when Serve returned
	serveErr error
}

// melliumLogin is what dialMellium needs to know.
type melliumLogin struct {
	addr     string // host:port
	direct   bool   // direct TLS (XEP-0368) instead of STARTTLS
	local    string
	password string
	mech     sasl.Mechanism // zero: SCRAM-SHA-256
}

// dialMellium logs in; the session is closed when the test ends.
func dialMellium(ctx context.Context, t *testing.T, l melliumLogin) (*melliumClient, error) {
	t.Helper()
	if l.mech.Name == "" {
		l.mech = sasl.ScramSha256
	}
	origin, err := jid.Parse(l.local + "@" + domain)
	if err != nil {
		return nil, err
	}
	cfg := tlsConfig()
	var conn net.Conn
	features := []xmpp.StreamFeature{xmpp.SASL("", l.password, l.mech), xmpp.BindResource()}
	if l.direct {
		cfg.NextProtos = []string{"xmpp-client"}
		d := tls.Dialer{Config: cfg}
		conn, err = d.DialContext(ctx, "tcp", l.addr)
	} else {
		var d net.Dialer
		conn, err = d.DialContext(ctx, "tcp", l.addr)
		features = append([]xmpp.StreamFeature{xmpp.StartTLS(cfg)}, features...)
	}
	if err != nil {
		return nil, fmt.Errorf("dialing %s: %w", l.addr, err)
	}
	s, err := xmpp.NewClientSession(ctx, origin, conn, features...)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("mellium login as %s on %s (direct TLS %v, %s): %w", origin, l.addr, l.direct, l.mech.Name, err)
	}
	c := &melliumClient{
		name: l.local, jid: s.LocalAddr(), s: s, conn: conn,
		in: make(chan inStanza, 4096), served: make(chan struct{}),
	}
	if os.Getenv("STOA_E2E_TRACE") == "1" {
		c.trace = func(st inStanza) { t.Logf("%s received %v", c.name, st) }
	}
	go func() {
		defer close(c.served)
		c.serveErr = s.Serve(xmpp.HandlerFunc(c.handle))
	}()
	t.Cleanup(func() { c.close(t) })
	return c, nil
}

// mustMellium is dialMellium that fails the test on error.
func mustMellium(ctx context.Context, t *testing.T, l melliumLogin) *melliumClient {
	t.Helper()
	c, err := dialMellium(ctx, t, l)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// handle runs inside Serve for every top-level element.
func (c *melliumClient) handle(t xmlstream.TokenReadEncoder, start *xml.StartElement) error {
	var st inStanza
	// Go 1.26: DecodeElement on the handler's reader loses the element;
	// decode a reader that starts with the start token instead.
	var raw strings.Builder
	tee := &teeTokens{r: xmlstream.MultiReader(xmlstream.Token(*start), t), enc: xml.NewEncoder(&raw)}
	d := xml.NewTokenDecoder(tee)
	if err := d.Decode(&st); err != nil {
		return fmt.Errorf("decoding a stanza: %w", err)
	}
	_ = tee.enc.Flush()
	st.Raw = raw.String()
	if st.XMLName.Local == "iq" && (st.Type == "get" || st.Type == "set") {
		iq := stanza.IQ{ID: st.ID, Type: stanza.ResultIQ}
		if st.From != "" {
			if j, err := jid.Parse(st.From); err == nil {
				iq.To = j
			}
		}
		if _, err := xmlstream.Copy(t, iq.Wrap(nil)); err != nil {
			return err
		}
	}
	if c.trace != nil {
		c.trace(st)
	}
	select {
	case c.in <- st:
	default:
		c.mu.Lock()
		c.overflow = true
		c.mu.Unlock()
	}
	return nil
}

// teeTokens re-encodes the tokens it reads.
type teeTokens struct {
	r   xml.TokenReader
	enc *xml.Encoder
}

func (t *teeTokens) Token() (xml.Token, error) {
	tok, err := t.r.Token()
	if tok != nil {
		_ = t.enc.EncodeToken(xml.CopyToken(tok))
	}
	return tok, err
}

// close ends the stream and waits (bounded) for Serve to return.
func (c *melliumClient) close(t *testing.T) {
	select {
	case <-c.served:
	default:
		_ = c.s.Close()
		select {
		case <-c.served:
		case <-time.After(10 * time.Second):
			t.Errorf("%s: the server did not close the stream within 10 s of ours", c.name)
		}
	}
	c.conn.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.overflow {
		t.Errorf("%s: more than %d stanzas were not read by the test", c.name, cap(c.in))
	}
}

// wait returns the first received stanza (in arrival order, including
// earlier ones nobody matched yet) for which match is true.
func (c *melliumClient) wait(ctx context.Context, what string, match func(inStanza) bool) (inStanza, error) {
	c.mu.Lock()
	for i, st := range c.backlog {
		if match(st) {
			c.backlog = append(c.backlog[:i:i], c.backlog[i+1:]...)
			c.mu.Unlock()
			return st, nil
		}
	}
	c.mu.Unlock()
	for {
		select {
		case st := <-c.in:
			if match(st) {
				return st, nil
			}
			c.mu.Lock()
			c.backlog = append(c.backlog, st)
			c.mu.Unlock()
		case <-c.served:
			// Drain what arrived before the end.
			select {
			case st := <-c.in:
				if match(st) {
					return st, nil
				}
				c.mu.Lock()
				c.backlog = append(c.backlog, st)
				c.mu.Unlock()
				continue
			default:
			}
			return inStanza{}, fmt.Errorf("%s: waiting for %s: the session ended (%v); received meanwhile: %v", c.name, what, c.serveErr, c.seen())
		case <-ctx.Done():
			return inStanza{}, fmt.Errorf("%s: waiting for %s: %w; received meanwhile: %v", c.name, what, errTimeout, c.seen())
		}
	}
}

func (c *melliumClient) mustWait(ctx context.Context, t *testing.T, what string, match func(inStanza) bool) inStanza {
	t.Helper()
	st, err := c.wait(ctx, what, match)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func (c *melliumClient) seen() []inStanza {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]inStanza(nil), c.backlog...)
}

// Matchers.

func isMessage(from, body string) func(inStanza) bool {
	return func(s inStanza) bool {
		return s.XMLName.Local == "message" && bareOf(s.From) == from && s.Body == body
	}
}

func isPresence(from, typ string) func(inStanza) bool {
	return func(s inStanza) bool {
		return s.XMLName.Local == "presence" && bareOf(s.From) == from && s.Type == typ
	}
}

// isRosterPush matches a roster push for contact with the subscription.
func isRosterPush(contact, subscription string) func(inStanza) bool {
	return func(s inStanza) bool {
		if s.XMLName.Local != "iq" || s.Type != "set" {
			return false
		}
		var q struct {
			Items []struct {
				JID          string `xml:"jid,attr"`
				Subscription string `xml:"subscription,attr"`
				Ask          string `xml:"ask,attr"`
			} `xml:"query>item"`
		}
		if err := xml.Unmarshal([]byte(s.Raw), &q); err != nil {
			return false
		}
		for _, it := range q.Items {
			if it.JID == contact && it.Subscription == subscription {
				return true
			}
		}
		return false
	}
}

// Senders.

func (c *melliumClient) sendMessage(ctx context.Context, to, body string) error {
	j, err := jid.Parse(to)
	if err != nil {
		return err
	}
	msg := stanza.Message{To: j, Type: stanza.ChatMessage}
	payload := xmlstream.Wrap(xmlstream.Token(xml.CharData(body)), xml.StartElement{Name: xml.Name{Local: "body"}})
	if err := c.s.Send(ctx, msg.Wrap(payload)); err != nil {
		return fmt.Errorf("%s: sending a message to %s: %w", c.name, to, err)
	}
	return nil
}

func (c *melliumClient) sendPresence(ctx context.Context, to string, typ stanza.PresenceType) error {
	p := stanza.Presence{Type: typ}
	if to != "" {
		j, err := jid.Parse(to)
		if err != nil {
			return err
		}
		p.To = j
	}
	if err := c.s.Send(ctx, p.Wrap(nil)); err != nil {
		return fmt.Errorf("%s: sending presence %q to %q: %w", c.name, typ, to, err)
	}
	return nil
}

func (c *melliumClient) must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
