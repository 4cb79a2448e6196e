package e2e

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
)

// rawStream is a hand-driven XMPP client stream, for hostile input and
// for looking at the server's bytes exactly.
type rawStream struct {
	t    *testing.T
	conn net.Conn // the TLS connection once TLS is up
	rec  *recReader
	dec  *xml.Decoder
	base int // len(rec.buf) when dec was created
}

// recReader is a buffered reader that keeps every byte it hands out. It
// implements io.ByteReader, so xml.Decoder reads exactly what it parses
// (no read-ahead) and its InputOffset indexes buf.
type recReader struct {
	br  *bufio.Reader
	buf []byte
}

func (r *recReader) ReadByte() (byte, error) {
	b, err := r.br.ReadByte()
	if err == nil {
		r.buf = append(r.buf, b)
	}
	return b, err
}

func (r *recReader) Read(p []byte) (int, error) {
	n, err := r.br.Read(p)
	r.buf = append(r.buf, p[:n]...)
	return n, err
}

const streamHeader = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0' xml:lang='en'>`

// dialRaw connects with direct TLS (XEP-0368) or with STARTTLS and
// returns the stream after TLS, before the TLS stream's header. The
// connection closes when the test ends.
func dialRaw(ctx context.Context, t *testing.T, addr string, direct bool) (*rawStream, error) {
	t.Helper()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { conn.Close() })
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	cfg := tlsConfig()
	if direct {
		cfg.NextProtos = []string{"xmpp-client"}
	} else {
		// Plain-text part: header, features, <starttls/>, <proceed/>.
		r := newRaw(t, conn)
		if _, err := r.open(); err != nil {
			return nil, err
		}
		if err := r.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`); err != nil {
			return nil, err
		}
		el, _, err := r.next()
		if err != nil {
			return nil, err
		}
		if el.Name.Local != "proceed" {
			return nil, fmt.Errorf("STARTTLS: got <%s/>, want <proceed/>", el.Name.Local)
		}
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	return newRaw(t, tc), nil
}

func newRaw(t *testing.T, conn net.Conn) *rawStream {
	r := &rawStream{t: t, conn: conn, rec: &recReader{br: bufio.NewReader(conn)}}
	r.reset()
	return r
}

// reset starts a new decoder (after a stream restart).
func (r *rawStream) reset() {
	r.base = len(r.rec.buf)
	r.dec = xml.NewDecoder(r.rec)
	r.dec.Strict = true
}

func (r *rawStream) send(s string) error {
	_, err := io.WriteString(r.conn, s)
	return err
}

// features is the subset of <stream:features/> the tests look at.
type features struct {
	Mechanisms []string `xml:"urn:ietf:params:xml:ns:xmpp-sasl mechanisms>mechanism"`
	StartTLS   *struct {
		Required *struct{} `xml:"required"`
	} `xml:"urn:ietf:params:xml:ns:xmpp-tls starttls"`
	ChannelBindings []struct {
		Type string `xml:"type,attr"`
	} `xml:"urn:xmpp:sasl-cb:0 sasl-channel-binding>channel-binding"`
	Bind *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
}

// open sends a stream header and reads the server's header and features.
func (r *rawStream) open() (features, error) {
	var f features
	r.reset()
	if err := r.send(streamHeader); err != nil {
		return f, err
	}
	if err := r.readHeader(); err != nil {
		return f, err
	}
	el, raw, err := r.next()
	if err != nil {
		return f, err
	}
	if el.Name.Local != "features" {
		return f, fmt.Errorf("got %s, want <stream:features/>", raw)
	}
	return f, xml.Unmarshal(raw, &f)
}

// readHeader reads the server's <stream:stream> start tag.
func (r *rawStream) readHeader() error {
	for {
		tok, err := r.dec.Token()
		if err != nil {
			return fmt.Errorf("reading the stream header: %w", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Space != "http://etherx.jabber.org/streams" || tok.Name.Local != "stream" {
				return fmt.Errorf("got <%s xmlns=%q>, want <stream:stream>", tok.Name.Local, tok.Name.Space)
			}
			return nil
		case xml.ProcInst, xml.CharData:
		default:
			return fmt.Errorf("unexpected %T before the stream header", tok)
		}
	}
}

// errStreamEnd is returned by next when the server closed its stream.
var errStreamEnd = errors.New("the server closed its stream (</stream:stream>)")

// next reads the next top-level element and returns its start tag and
// its exact bytes as the server sent them (namespace declarations of the
// stream header are not included, so unmarshal raw only for elements
// that declare their own namespace or do not need it).
func (r *rawStream) next() (xml.StartElement, []byte, error) {
	for {
		off := r.dec.InputOffset()
		tok, err := r.dec.Token()
		if err != nil {
			return xml.StartElement{}, nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			start := tok.Copy()
			if err := r.dec.Skip(); err != nil {
				return start, nil, err
			}
			end := r.dec.InputOffset()
			return start, append([]byte(nil), r.rec.buf[r.base+int(off):r.base+int(end)]...), nil
		case xml.EndElement:
			return xml.StartElement{}, nil, errStreamEnd
		case xml.CharData:
			if strings.TrimSpace(string(tok)) != "" {
				return xml.StartElement{}, nil, fmt.Errorf("text %q at the stream level", tok)
			}
		}
	}
}

// streamError is the result of reading until the server ends the stream.
type streamError struct {
	Condition string // e.g. "policy-violation"; "" when the stream ended without error
	Text      string
	Raw       string
	Closed    bool  // </stream:stream> followed
	Err       error // how reading ended if not with </stream:stream>
}

// readStreamError reads (and drops) elements until a <stream:error/>, then
// expects the end of the stream.
func (r *rawStream) readStreamError() streamError {
	var se streamError
	for {
		el, raw, err := r.next()
		if errors.Is(err, errStreamEnd) {
			se.Closed = true
			return se
		}
		if err != nil {
			se.Err = err
			return se
		}
		if el.Name.Space == "http://etherx.jabber.org/streams" && el.Name.Local == "error" {
			se.Raw = string(raw)
			var e struct {
				Conds []struct {
					XMLName xml.Name
				} `xml:",any"`
				Text string `xml:"text"`
			}
			// The error declares no namespace of its own for its prefix.
			fixed := strings.Replace(string(raw), "<stream:error", "<stream:error xmlns:stream='http://etherx.jabber.org/streams'", 1)
			if err := xml.Unmarshal([]byte(fixed), &e); err != nil {
				se.Err = fmt.Errorf("parsing %s: %w", raw, err)
				return se
			}
			for _, c := range e.Conds {
				if c.XMLName.Space == "urn:ietf:params:xml:ns:xmpp-streams" && c.XMLName.Local != "text" {
					se.Condition = c.XMLName.Local
				}
			}
			se.Text = e.Text
		}
	}
}

// scramResult is what a raw SCRAM-SHA-256 exchange produced.
type scramResult struct {
	ServerFirst map[string]string // attributes of the server-first-message
	Outcome     string            // "success" or "failure"
	Raw         []byte            // the <success/> or <failure/> element, exactly
}

// scramSHA256 runs a SCRAM-SHA-256 exchange (RFC 5802, RFC 7677) without
// channel binding, by hand, and returns the server's last element.
func (r *rawStream) scramSHA256(user, password string) (scramResult, error) {
	var res scramResult
	nb := make([]byte, 18)
	_, _ = rand.Read(nb)
	nonce := hex.EncodeToString(nb)
	clientFirstBare := "n=" + user + ",r=" + nonce
	if err := r.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>` +
		base64.StdEncoding.EncodeToString([]byte("n,,"+clientFirstBare)) + `</auth>`); err != nil {
		return res, err
	}
	el, raw, err := r.next()
	if err != nil {
		return res, err
	}
	if el.Name.Local != "challenge" {
		res.Outcome, res.Raw = el.Name.Local, raw
		return res, fmt.Errorf("got %s, want a <challenge/>", raw)
	}
	var ch struct {
		Text string `xml:",chardata"`
	}
	if err := xml.Unmarshal(raw, &ch); err != nil {
		return res, err
	}
	sf, err := base64.StdEncoding.DecodeString(ch.Text)
	if err != nil {
		return res, err
	}
	serverFirst := string(sf)
	res.ServerFirst = map[string]string{}
	for _, kv := range strings.Split(serverFirst, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok {
			res.ServerFirst[k] = v
		}
	}
	salt, err := base64.StdEncoding.DecodeString(res.ServerFirst["s"])
	if err != nil {
		return res, fmt.Errorf("salt: %w", err)
	}
	iter, err := strconv.Atoi(res.ServerFirst["i"])
	if err != nil {
		return res, fmt.Errorf("iteration count: %w", err)
	}
	if !strings.HasPrefix(res.ServerFirst["r"], nonce) {
		return res, fmt.Errorf("the server nonce %q does not extend ours", res.ServerFirst["r"])
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iter, sha256.Size)
	if err != nil {
		return res, err
	}
	mac := func(key []byte, s string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(s))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	stored := sha256.Sum256(clientKey)
	withoutProof := "c=biws,r=" + res.ServerFirst["r"]
	authMessage := clientFirstBare + "," + serverFirst + "," + withoutProof
	sig := mac(stored[:], authMessage)
	proof := make([]byte, len(clientKey))
	for i := range clientKey {
		proof[i] = clientKey[i] ^ sig[i]
	}
	final := withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)
	if err := r.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>` + base64.StdEncoding.EncodeToString([]byte(final)) + `</response>`); err != nil {
		return res, err
	}
	el, raw, err = r.next()
	if err != nil {
		return res, err
	}
	res.Outcome, res.Raw = el.Name.Local, raw
	if el.Name.Local == "success" {
		var s struct {
			Text string `xml:",chardata"`
		}
		if err := xml.Unmarshal(raw, &s); err != nil {
			return res, err
		}
		want := "v=" + base64.StdEncoding.EncodeToString(mac(mac(salted, "Server Key"), authMessage))
		if got, _ := base64.StdEncoding.DecodeString(s.Text); string(got) != want {
			return res, fmt.Errorf("server signature %q, want %q", got, want)
		}
	}
	return res, nil
}

// login authenticates with SCRAM-SHA-256 and binds a resource; it
// returns the bound JID.
func (r *rawStream) login(user, password string) (string, error) {
	if _, err := r.open(); err != nil {
		return "", err
	}
	res, err := r.scramSHA256(user, password)
	if err != nil {
		return "", err
	}
	if res.Outcome != "success" {
		return "", fmt.Errorf("login as %s: %s", user, res.Raw)
	}
	f, err := r.open()
	if err != nil {
		return "", err
	}
	if f.Bind == nil {
		return "", errors.New("no bind feature after authentication")
	}
	if err := r.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`); err != nil {
		return "", err
	}
	_, raw, err := r.next()
	if err != nil {
		return "", err
	}
	var iq struct {
		Type string `xml:"type,attr"`
		JID  string `xml:"bind>jid"`
	}
	if err := xml.Unmarshal(raw, &iq); err != nil || iq.Type != "result" || iq.JID == "" {
		return "", fmt.Errorf("bind: got %s (%v)", raw, err)
	}
	return iq.JID, nil
}

// mustRawLogin dials with direct TLS and logs in, failing the test on error.
func mustRawLogin(ctx context.Context, t *testing.T, addr, user, password string) *rawStream {
	t.Helper()
	r, err := dialRaw(ctx, t, addr, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.login(user, password); err != nil {
		t.Fatal(err)
	}
	return r
}
