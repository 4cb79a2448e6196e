package adminsock

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"stoa.im/stoa/internal/xmpp/jid"
)

// fakeAccounts records calls; it serves "example.org" and "example.net".
type fakeAccounts struct {
	mu    sync.Mutex
	users map[string]string // bare JID -> password
	vias  []string
}

func newFake() *fakeAccounts { return &fakeAccounts{users: map[string]string{}} }

func (f *fakeAccounts) Hosts() []string { return []string{"example.net", "example.org"} }

func (f *fakeAccounts) AccountJID(s string) (jid.JID, error) {
	j, err := jid.Parse(s)
	if err != nil || j.Local() == "" || j.Resource() != "" {
		return jid.JID{}, fmt.Errorf("%q is not an account address", s)
	}
	if !slices.Contains(f.Hosts(), j.Domain()) {
		return jid.JID{}, fmt.Errorf("%s is not a domain served here", j.Domain())
	}
	return j, nil
}

func (f *fakeAccounts) CreateUser(_ context.Context, j jid.JID, pw, via string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vias = append(f.vias, via)
	if _, ok := f.users[j.String()]; ok {
		return errors.New("the account already exists")
	}
	f.users[j.String()] = pw
	return nil
}

func (f *fakeAccounts) SetPassword(_ context.Context, j jid.JID, pw, via string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vias = append(f.vias, via)
	if _, ok := f.users[j.String()]; !ok {
		return errors.New("no such account")
	}
	f.users[j.String()] = pw
	return nil
}

func (f *fakeAccounts) DeleteUser(_ context.Context, j jid.JID, via string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.vias = append(f.vias, via)
	if _, ok := f.users[j.String()]; !ok {
		return errors.New("no such account")
	}
	delete(f.users, j.String())
	return nil
}

func (f *fakeAccounts) Users(_ context.Context, domain string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for u := range f.users {
		if strings.HasSuffix(u, "@"+domain) {
			out = append(out, u)
		}
	}
	slices.Sort(out)
	return out, nil
}

// serve starts a socket server on a fake in a temporary directory.
func serve(t *testing.T) (string, *fakeAccounts) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stoa.sock")
	s, err := Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	acc := newFake()
	s.Serve(context.Background(), acc)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return path, acc
}

func TestCommands(t *testing.T) {
	t.Parallel()
	path, acc := serve(t)
	ctx := context.Background()
	steps := []struct {
		name    string
		req     Request
		ok      bool
		message string   // substring of Message (ok) or Error (not ok)
		users   []string // for user.list
	}{
		{"add", Request{Cmd: "user.add", Args: map[string]string{"jid": "alice@example.org", "password": "pw1"}}, true, "created alice@example.org", nil},
		{"add again", Request{Cmd: "user.add", Args: map[string]string{"jid": "alice@example.org", "password": "pw1"}}, false, "already exists", nil},
		{"add other domain", Request{Cmd: "user.add", Args: map[string]string{"jid": "bob@example.net", "password": "pw2"}}, true, "created bob@example.net", nil},
		{"add foreign domain", Request{Cmd: "user.add", Args: map[string]string{"jid": "eve@elsewhere.test", "password": "x"}}, false, "not a domain served here", nil},
		{"add without password", Request{Cmd: "user.add", Args: map[string]string{"jid": "carol@example.org"}}, false, `missing argument "password"`, nil},
		{"unknown argument", Request{Cmd: "user.del", Args: map[string]string{"jid": "alice@example.org", "force": "yes"}}, false, `unknown argument "force"`, nil},
		{"passwd", Request{Cmd: "user.passwd", Args: map[string]string{"jid": "alice@example.org", "password": "pw3"}}, true, "changed the password", nil},
		{"passwd missing", Request{Cmd: "user.passwd", Args: map[string]string{"jid": "nobody@example.org", "password": "pw3"}}, false, "no such account", nil},
		{"list all", Request{Cmd: "user.list"}, true, "2 accounts", []string{"bob@example.net", "alice@example.org"}},
		{"list one domain", Request{Cmd: "user.list", Args: map[string]string{"domain": "example.org"}}, true, "1 account", []string{"alice@example.org"}},
		{"list bad domain", Request{Cmd: "user.list", Args: map[string]string{"domain": "a@b"}}, false, "not a domain", nil},
		{"del", Request{Cmd: "user.del", Args: map[string]string{"jid": "alice@example.org"}}, true, "deleted alice@example.org", nil},
		{"del again", Request{Cmd: "user.del", Args: map[string]string{"jid": "alice@example.org"}}, false, "no such account", nil},
		{"unknown command", Request{Cmd: "user.rename"}, false, `unknown command "user.rename"`, nil},
	}
	for _, st := range steps {
		resp, err := Call(ctx, path, st.req)
		if err != nil {
			t.Fatalf("%s: Call: %v", st.name, err)
		}
		if resp.OK != st.ok {
			t.Fatalf("%s: OK = %v, want %v (%+v)", st.name, resp.OK, st.ok, resp)
		}
		got := resp.Message
		if !st.ok {
			got = resp.Error
		}
		if !strings.Contains(got, st.message) {
			t.Errorf("%s: got %q, want it to contain %q", st.name, got, st.message)
		}
		if st.users != nil && !slices.Equal(resp.Users, st.users) {
			t.Errorf("%s: users = %v, want %v", st.name, resp.Users, st.users)
		}
	}
	if pw := acc.users["bob@example.net"]; pw != "pw2" {
		t.Errorf("bob's password = %q, want pw2", pw)
	}
	for _, v := range acc.vias {
		if v != Via {
			t.Errorf("via = %q, want %q", v, Via)
		}
	}
}

func TestManyRequestsOnOneConnection(t *testing.T) {
	t.Parallel()
	path, _ := serve(t)
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	in := `{"cmd":"user.add","args":{"jid":"a@example.org","password":"p"}}` + "\n" +
		`not json` + "\n" +
		`{"cmd":"user.list"}` + "\n"
	if _, err := c.Write([]byte(in)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 1024)
	for strings.Count(string(buf), "\n") < 3 {
		tmp := make([]byte, 512)
		n, err := c.Read(tmp)
		if err != nil {
			t.Fatalf("read: %v (got %q)", err, buf)
		}
		buf = append(buf, tmp[:n]...)
	}
	lines := strings.Split(strings.TrimSpace(string(buf)), "\n")
	want := []string{`"ok":true`, `"error":"bad request`, `"users":["a@example.org"]`}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("response %d = %s, want it to contain %s", i, lines[i], w)
		}
	}
}

func TestNotRunning(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// No socket file at all.
	_, err := Call(context.Background(), filepath.Join(dir, "none.sock"), Request{Cmd: "user.list"})
	if !errors.Is(err, ErrNotRunning) {
		t.Errorf("missing socket: err = %v, want ErrNotRunning", err)
	}
	// A stale socket file: a listener closed without removing it.
	stale := filepath.Join(dir, "stale.sock")
	makeStale(t, stale)
	_, err = Call(context.Background(), stale, Request{Cmd: "user.list"})
	if !errors.Is(err, ErrNotRunning) {
		t.Errorf("stale socket: err = %v, want ErrNotRunning", err)
	}
	if Listening(stale) {
		t.Error("Listening(stale) = true")
	}
}

func makeStale(t *testing.T, path string) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket file: %v", err)
	}
}

func TestListen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "stoa.sock")

	makeStale(t, path)
	s, err := Listen(path, nil)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	s.Serve(context.Background(), newFake())
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("socket mode = %o, want 600", perm)
	}
	if !Listening(path) {
		t.Error("Listening = false while serving")
	}
	if _, err := Listen(path, nil); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second Listen: err = %v, want 'already running'", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("socket file after Close: %v, want it removed", err)
	}

	regular := filepath.Join(dir, "file")
	if err := os.WriteFile(regular, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(regular, nil); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Listen on a regular file: err = %v, want 'not a socket'", err)
	}
}

// TestCloseWithIdleClient checks that Close does not wait for a client
// that keeps its connection open without sending anything.
func TestCloseWithIdleClient(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "stoa.sock")
	s, err := Listen(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	s.Serve(context.Background(), newFake())
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// One round trip, so the server has accepted the connection.
	if _, err := c.Write([]byte(`{"cmd":"user.list"}` + "\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 512)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}
