package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	sxml "stoa.im/stoa/internal/xmpp/xml"
)

// xclient is a minimal XMPP client for the federation tests: it logs in
// to any server (stoa, Prosody, ejabberd) with STARTTLS and SASL PLAIN,
// optionally registering the account first (XEP-0077), and collects the
// stanzas it receives. IQ requests get an empty result.
type xclient struct {
	t    *testing.T
	name string
	jid  string // full JID after bind
	conn net.Conn

	wmu sync.Mutex
	mu  sync.Mutex
	cnd *sync.Cond
	got []*sxml.Element
	end error
}

type xlogin struct {
	addr     string // host:port of the c2s STARTTLS listener
	domain   string
	user     string
	password string
	roots    *x509.CertPool
	register bool // register the account in-band first
}

// dialX logs in; the connection closes when the test ends.
func dialX(t *testing.T, l xlogin) *xclient {
	t.Helper()
	c, err := tryDialX(t, l)
	if err != nil {
		t.Fatalf("logging in as %s@%s at %s: %v", l.user, l.domain, l.addr, err)
	}
	return c
}

func tryDialX(t *testing.T, l xlogin) (*xclient, error) {
	raw, err := net.DialTimeout("tcp", l.addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = raw.SetDeadline(time.Now().Add(60 * time.Second))
	c := &xclient{t: t, name: l.user + "@" + l.domain, conn: raw}
	c.cnd = sync.NewCond(&c.mu)
	header := fmt.Sprintf("<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='%s' version='1.0'>", l.domain)
	open := func() (*sxml.Decoder, *sxml.Element, error) {
		dec := sxml.NewDecoder(c.conn, sxml.Limits{})
		if _, err := c.conn.Write([]byte(header)); err != nil {
			return nil, nil, err
		}
		if _, err := dec.Header(); err != nil {
			return nil, nil, fmt.Errorf("stream header: %w", err)
		}
		f, err := dec.Next()
		if err != nil {
			return nil, nil, fmt.Errorf("stream features: %w", err)
		}
		return dec, f, nil
	}
	dec, _, err := open()
	if err != nil {
		raw.Close()
		return nil, err
	}
	c.conn.Write([]byte("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"))
	if el, err := dec.Next(); err != nil || el.Local != "proceed" {
		raw.Close()
		return nil, fmt.Errorf("starttls: %v %v", el, err)
	}
	tc := tls.Client(raw, &tls.Config{ServerName: l.domain, RootCAs: l.roots, MinVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS: %w", err)
	}
	c.conn = tc
	t.Cleanup(func() { c.close() })
	dec, _, err = open()
	if err != nil {
		return nil, err
	}
	if l.register {
		fmt.Fprintf(c.conn, "<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>%s</username><password>%s</password></query></iq>", l.user, l.password)
		el, err := dec.Next()
		if err != nil {
			return nil, fmt.Errorf("register: %w", err)
		}
		if el.Attr("type") != "result" && !strings.Contains(el.String(), "conflict") {
			return nil, fmt.Errorf("register: %s", el.String())
		}
	}
	auth := base64.StdEncoding.EncodeToString([]byte("\x00" + l.user + "\x00" + l.password))
	fmt.Fprintf(c.conn, "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>%s</auth>", auth)
	if el, err := dec.Next(); err != nil || el.Local != "success" {
		return nil, fmt.Errorf("auth: %v %v", el, err)
	}
	dec, _, err = open()
	if err != nil {
		return nil, err
	}
	c.conn.Write([]byte("<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>test</resource></bind></iq>"))
	for {
		el, err := dec.Next()
		if err != nil {
			return nil, fmt.Errorf("bind: %w", err)
		}
		if el.Local == "iq" && el.Attr("id") == "bind1" {
			b := el.Child("urn:ietf:params:xml:ns:xmpp-bind", "bind")
			if b == nil {
				return nil, fmt.Errorf("bind: %s", el.String())
			}
			c.jid = b.ChildText("urn:ietf:params:xml:ns:xmpp-bind", "jid")
			break
		}
	}
	// Old-style session establishment (ejabberd 23.01 still wants it
	// for some clients; harmless elsewhere), then initial presence.
	// The roster request makes the session an "interested resource"
	// (RFC 6121 §2.1.6): servers push subscription changes only to those.
	c.conn.Write([]byte("<iq type='set' id='sess1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>" +
		"<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq><presence/>"))
	_ = c.conn.SetDeadline(time.Time{})
	go c.read(dec)
	return c, nil
}

func (c *xclient) read(dec *sxml.Decoder) {
	for {
		el, err := dec.Next()
		if err != nil {
			c.mu.Lock()
			c.end = err
			c.cnd.Broadcast()
			c.mu.Unlock()
			return
		}
		if el.Local == "iq" && (el.Attr("type") == "get" || el.Attr("type") == "set") {
			c.send(fmt.Sprintf("<iq type='result' id='%s' to='%s'/>", escape(el.Attr("id")), escape(el.Attr("from"))))
		}
		c.mu.Lock()
		c.got = append(c.got, el)
		c.cnd.Broadcast()
		c.mu.Unlock()
	}
}

func escape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", "'", "&apos;", "\"", "&quot;").Replace(s)
}

func (c *xclient) send(s string) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Logf("%s: write: %v", c.name, err)
	}
}

func (c *xclient) close() {
	c.send("</stream:stream>")
	c.conn.Close()
}

// wait returns the first received element matching match (and removes
// it), or fails the test after a generous guard.
func (c *xclient) wait(what string, match func(*sxml.Element) bool) *sxml.Element {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				c.mu.Lock()
				c.cnd.Broadcast()
				c.mu.Unlock()
			}
		}
	}()
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		for i, el := range c.got {
			if match(el) {
				c.got = append(c.got[:i:i], c.got[i+1:]...)
				return el
			}
		}
		if c.end != nil || time.Now().After(deadline) {
			var have []string
			for _, el := range c.got {
				have = append(have, el.String())
			}
			c.t.Fatalf("%s: %s not received (stream end: %v); have: %s", c.name, what, c.end, strings.Join(have, " | "))
		}
		c.cnd.Wait()
	}
}

// stanzaMatch matches a stanza by name, bare sender, type and body text.
func stanzaMatch(name, fromBare, typ, body string) func(*sxml.Element) bool {
	return func(el *sxml.Element) bool {
		if el.Local != name || bareOf(el.Attr("from")) != fromBare || el.Attr("type") != typ {
			return false
		}
		return body == "" || el.ChildText(sxml.NSClient, "body") == body
	}
}
