package sasl

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/xdg-go/scram"
)

// certKind selects the test certificate's key (and so signature) type.
type certKind int

const (
	certP256    certKind = iota // ECDSAWithSHA256
	certP384                    // ECDSAWithSHA384
	certEd25519                 // PureEd25519: no tls-server-end-point
)

func newCert(t testing.TB, kind certKind) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	var key crypto.Signer
	var err error
	switch kind {
	case certP256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case certP384:
		key, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case certEd25519:
		_, key, err = ed25519.GenerateKey(rand.Reader)
	}
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "example.com"},
		DNSNames:              []string{"example.com"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, leaf
}

// tlsConns is a TLS connection over loopback TCP, both ends handshaken.
type tlsConns struct {
	client, server *tls.Conn
	info           TLSInfo // the server's view
}

func (c tlsConns) clientState() *tls.ConnectionState {
	s := c.client.ConnectionState()
	return &s
}

func dialTLS(t testing.TB, version uint16, kind certKind) tlsConns {
	t.Helper()
	cert, leaf := newCert(t, kind)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   *tls.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			ch <- res{nil, err}
			return
		}
		sc := tls.Server(nc, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: version, MaxVersion: version})
		ch <- res{sc, sc.Handshake()}
	}()
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc := tls.Client(nc, &tls.Config{RootCAs: roots, ServerName: "example.com", MinVersion: version, MaxVersion: version})
	if err := cc.Handshake(); err != nil {
		t.Fatalf("client handshake: %v", err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatalf("server handshake: %v", r.err)
	}
	t.Cleanup(func() { cc.Close(); r.c.Close() })
	st := r.c.ConnectionState()
	if st.Version != version {
		t.Fatalf("negotiated TLS %x, want %x", st.Version, version)
	}
	return tlsConns{client: cc, server: r.c, info: TLSInfo{State: &st, Leaf: leaf}}
}

// clientSide is the client end of one mechanism.
type clientSide interface {
	// step returns the next client message; challenge is nil for the
	// initial response.
	step(challenge []byte) ([]byte, error)
	// verify checks the additional data of <success/>.
	verify(data []byte) error
}

type scramClient struct {
	conv       *scram.ClientConversation
	challenges []string
}

func (c *scramClient) step(ch []byte) ([]byte, error) {
	if ch != nil {
		c.challenges = append(c.challenges, string(ch))
	}
	out, err := c.conv.Step(string(ch))
	return []byte(out), err
}

func (c *scramClient) verify(data []byte) error {
	if _, err := c.conv.Step(string(data)); err != nil {
		return err
	}
	if !c.conv.Valid() {
		return errors.New("server signature not valid")
	}
	return nil
}

// plainClient sends one PLAIN message.
type plainClient struct{ msg string }

func (c plainClient) step(ch []byte) ([]byte, error) { return []byte(c.msg), nil }
func (c plainClient) verify(data []byte) error {
	if len(data) != 0 {
		return fmt.Errorf("PLAIN success with data %q", data)
	}
	return nil
}

// outcome is the result of one exchange.
type outcome struct {
	failure   *Failure // the server's failure, if any
	clientErr error    // the client's complaint (bad server signature, ...)
	username  string
	success   bool
}

func (o outcome) String() string {
	switch {
	case o.success:
		return "success as " + o.username
	case o.failure != nil:
		return "failure " + o.failure.Error()
	}
	return fmt.Sprintf("client error %v", o.clientErr)
}

// exchange runs a conversation over the TLS connection: the client writes
// base64 lines, the server answers "c <b64>" (challenge), "s <b64>"
// (success) or "f <condition>\t<text>".
func exchange(t testing.TB, conns tlsConns, srv *Server, mech string, offered []string, cl clientSide) (res outcome) {
	t.Helper()
	ctx := context.Background()
	conv, err := srv.Start(ctx, mech, conns.info, offered)
	if err != nil {
		var f *Failure
		if !errors.As(err, &f) {
			t.Fatalf("Start error %v is not a *Failure", err)
		}
		return outcome{failure: f}
	}
	var wg sync.WaitGroup
	var sres outcome
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := bufio.NewReader(conns.server)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			in, err := base64.StdEncoding.DecodeString(strings.TrimSpace(line))
			if err != nil {
				fmt.Fprintf(conns.server, "f %s\t%s\n", IncorrectEncoding, "")
				return
			}
			out, done, err := conv.Step(ctx, in)
			if err != nil {
				f, ok := err.(*Failure)
				if !ok {
					f = &Failure{Condition: "NOT A FAILURE", Text: err.Error()}
				}
				sres.failure = f
				fmt.Fprintf(conns.server, "f %s\t%s\n", f.Condition, f.Text)
				return
			}
			kind := "c"
			if done {
				kind = "s"
				sres.success = true
				sres.username = conv.Username()
			}
			fmt.Fprintf(conns.server, "%s %s\n", kind, base64.StdEncoding.EncodeToString(out))
			if done {
				return
			}
		}
	}()
	defer func() {
		conns.client.Close()
		wg.Wait()
		res.failure, res.username = sres.failure, sres.username
		res.success = res.success && sres.success
	}()
	r := bufio.NewReader(conns.client)
	var challenge []byte
	for {
		msg, err := cl.step(challenge)
		if err != nil {
			res.clientErr = err
			return res
		}
		fmt.Fprintf(conns.client, "%s\n", base64.StdEncoding.EncodeToString(msg))
		line, err := r.ReadString('\n')
		if err != nil {
			res.clientErr = err
			return res
		}
		kind, data, _ := strings.Cut(strings.TrimSuffix(line, "\n"), " ")
		switch kind {
		case "f":
			return res
		case "s":
			b, _ := base64.StdEncoding.DecodeString(data)
			if err := cl.verify(b); err != nil {
				res.clientErr = err
				return res
			}
			res.success = true
			return res
		case "c":
			challenge, _ = base64.StdEncoding.DecodeString(data)
			if challenge == nil {
				challenge = []byte{}
			}
		}
	}
}

// testUsers is a Lookup over a fixed set of users that records the
// usernames it was asked for.
type testUsers struct {
	mu    sync.Mutex
	users map[string]Credentials
	asked []string
	err   error
}

func (u *testUsers) lookup(ctx context.Context, name string) (Credentials, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.asked = append(u.asked, name)
	if u.err != nil {
		return Credentials{}, u.err
	}
	c, ok := u.users[name]
	if !ok {
		return Credentials{}, fmt.Errorf("test lookup of %q: %w", name, ErrUnknownUser)
	}
	return c, nil
}

func (u *testUsers) lastAsked() string {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.asked) == 0 {
		return ""
	}
	return u.asked[len(u.asked)-1]
}

// pencil holds credentials for the RFC examples' password, computed once.
var pencil = sync.OnceValue(func() Credentials {
	c, err := NewCredentials("pencil", 4096)
	if err != nil {
		panic(err)
	}
	return c
})

func newTestServer(t testing.TB, mod func(*Config)) (*Server, *testUsers) {
	t.Helper()
	users := &testUsers{users: map[string]Credentials{"juliet": pencil(), "jul,i=et": pencil()}}
	cfg := Config{
		Lookup: users.lookup,
		Secret: []byte("test secret"),
		Domain: "example.com",
	}
	if mod != nil {
		mod(&cfg)
	}
	return NewServer(cfg), users
}

func newSCRAMClient(t testing.TB, mech, user, pass, authzid string, cb scram.ChannelBinding, advertise bool) *scramClient {
	t.Helper()
	h := scram.SHA256
	if strings.HasPrefix(mech, "SCRAM-SHA-1") {
		h = scram.SHA1
	}
	c, err := h.NewClient(user, pass, authzid)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case cb.IsSupported():
		return &scramClient{conv: c.NewConversationWithChannelBinding(cb)}
	case advertise:
		return &scramClient{conv: c.NewConversationAdvertisingChannelBinding()}
	}
	return &scramClient{conv: c.NewConversation()}
}

// binding returns the client's channel binding of type typ.
func binding(t testing.TB, conns tlsConns, typ string) scram.ChannelBinding {
	t.Helper()
	var cb scram.ChannelBinding
	var err error
	switch typ {
	case TLSExporter:
		cb, err = scram.NewTLSExporterBinding(conns.clientState())
	case TLSServerEndPoint:
		cb, err = scram.NewTLSServerEndpointBinding(conns.clientState())
	case "":
		return cb
	default:
		t.Fatalf("unknown binding %q", typ)
	}
	if err != nil {
		t.Fatal(err)
	}
	return cb
}
