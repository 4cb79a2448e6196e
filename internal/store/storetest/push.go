package storetest

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"stoa.im/stoa/internal/store"
)

// testPush checks the push registrations repository (XEP-0357).
func testPush(t *testing.T, s store.Store) {
	ctx := t.Context()
	p := s.Push()
	mustCreate(t, s, "alice@push.example", "bob@push.example")
	now := time.Now().Round(0)
	reg := func(service, node string, opts []byte) store.PushRegistration {
		return store.PushRegistration{Service: service, Node: node, Options: opts, Created: now}
	}
	list := func(owner string) []store.PushRegistration {
		t.Helper()
		l, err := p.List(ctx, owner)
		if err != nil {
			t.Fatalf("List(%s): %v", owner, err)
		}
		return l
	}
	keys := func(l []store.PushRegistration) []string {
		var out []string
		for _, r := range l {
			out = append(out, r.Service+"#"+r.Node)
		}
		return out
	}

	if l := list("alice@push.example"); len(l) != 0 {
		t.Fatalf("new account has registrations: %v", l)
	}
	wantErr(t, "Put for a missing account", p.Put(ctx, "nobody@push.example", reg("app.example", "n", nil), 0), store.ErrNotFound)

	opts := []byte("<x xmlns='jabber:x:data' type='submit'/>")
	for _, r := range []store.PushRegistration{
		reg("app.example", "n1", opts),
		reg("app.example", "n2", nil),
		reg("other.example", "n1", nil),
	} {
		if err := p.Put(ctx, "alice@push.example", r, 0); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	l := list("alice@push.example")
	if got, want := keys(l), []string{"app.example#n1", "app.example#n2", "other.example#n1"}; !slices.Equal(got, want) {
		t.Fatalf("List = %v, want %v (oldest first)", got, want)
	}
	if !bytes.Equal(l[0].Options, opts) || l[1].Options != nil {
		t.Errorf("Options = %q, %q; want %q, nil", l[0].Options, l[1].Options, opts)
	}
	if !sameTime(l[0].Created, now) {
		t.Errorf("Created = %v, want %v", l[0].Created, now)
	}

	// Errors are recorded, and a Put again resets them and makes it newest.
	if err := p.SetErrors(ctx, "alice@push.example", "app.example", "n1", 3); err != nil {
		t.Fatal(err)
	}
	if err := p.SetErrors(ctx, "alice@push.example", "absent.example", "x", 1); err != nil {
		t.Errorf("SetErrors on a missing registration: %v", err)
	}
	if l := list("alice@push.example"); l[0].Errors != 3 || l[1].Errors != 0 {
		t.Errorf("Errors = %d, %d; want 3, 0", l[0].Errors, l[1].Errors)
	}
	if err := p.Put(ctx, "alice@push.example", reg("app.example", "n1", nil), 0); err != nil {
		t.Fatal(err)
	}
	l = list("alice@push.example")
	if got, want := keys(l), []string{"app.example#n2", "other.example#n1", "app.example#n1"}; !slices.Equal(got, want) {
		t.Errorf("after replacing: List = %v, want %v", got, want)
	}
	if l[2].Errors != 0 || l[2].Options != nil {
		t.Errorf("replaced registration kept errors %d / options %q", l[2].Errors, l[2].Options)
	}

	// The cap keeps the newest.
	if err := p.Put(ctx, "alice@push.example", reg("cap.example", "c", nil), 2); err != nil {
		t.Fatal(err)
	}
	if got, want := keys(list("alice@push.example")), []string{"app.example#n1", "cap.example#c"}; !slices.Equal(got, want) {
		t.Errorf("after a capped Put: List = %v, want %v", got, want)
	}

	// Remove one node, or a whole service; other owners are untouched.
	for _, r := range []store.PushRegistration{reg("app.example", "n2", nil), reg("app.example", "n3", nil)} {
		if err := p.Put(ctx, "alice@push.example", r, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Put(ctx, "bob@push.example", reg("app.example", "n1", nil), 0); err != nil {
		t.Fatal(err)
	}
	if n, err := p.Remove(ctx, "alice@push.example", "app.example", "n2"); err != nil || n != 1 {
		t.Errorf("Remove one node = %d, %v; want 1", n, err)
	}
	if n, err := p.Remove(ctx, "alice@push.example", "app.example", ""); err != nil || n != 2 {
		t.Errorf("Remove a service = %d, %v; want 2", n, err)
	}
	if n, err := p.Remove(ctx, "alice@push.example", "app.example", ""); err != nil || n != 0 {
		t.Errorf("Remove again = %d, %v; want 0", n, err)
	}
	if got, want := keys(list("alice@push.example")), []string{"cap.example#c"}; !slices.Equal(got, want) {
		t.Errorf("after Remove: List = %v, want %v", got, want)
	}
	if got := keys(list("bob@push.example")); len(got) != 1 {
		t.Errorf("bob's registrations = %v, want one", got)
	}

	owners := func() ([]string, error) {
		// Only this test's domain: stores may share a database.
		all, err := p.Owners(ctx)
		var out []string
		for _, o := range all {
			if strings.HasSuffix(o, "@push.example") {
				out = append(out, o)
			}
		}
		return out, err
	}
	if o, err := owners(); err != nil || !slices.Equal(o, []string{"alice@push.example", "bob@push.example"}) {
		t.Errorf("Owners = %v, %v", o, err)
	}

	// Deleting the account deletes its registrations.
	if err := s.Accounts().Delete(ctx, "bob@push.example"); err != nil {
		t.Fatal(err)
	}
	if l := list("bob@push.example"); len(l) != 0 {
		t.Errorf("registrations survived the account: %v", l)
	}
	if o, err := owners(); err != nil || !slices.Equal(o, []string{"alice@push.example"}) {
		t.Errorf("Owners after deleting bob = %v, %v", o, err)
	}
}
