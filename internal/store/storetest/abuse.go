package storetest

import (
	"slices"
	"testing"
	"time"

	"stoa.im/stoa/internal/store"
)

// testAbuse checks the abuse-control repositories: account states, block
// lists and the report queue.
func testAbuse(t *testing.T, s store.Store) {
	t.Run("AccountStates", func(t *testing.T) { testAccountStates(t, s) })
	t.Run("Blocklist", func(t *testing.T) { testBlocklist(t, s) })
	t.Run("Reports", func(t *testing.T) { testReports(t, s) })
}

func testAccountStates(t *testing.T, s store.Store) {
	ctx := t.Context()
	as := s.AccountStates()
	mustCreate(t, s, "alice@states.example", "bob@states.example", "carol@states2.example")
	_, err := as.Get(ctx, "alice@states.example")
	wantErr(t, "Get of an active account", err, store.ErrNotFound)

	since := time.Now().UTC().Round(time.Microsecond)
	st := store.AccountState{JID: "alice@states.example", Status: store.StatusSuspended, Reason: "spam", By: "admin@states.example", Since: since}
	if err := as.Put(ctx, st); err != nil {
		t.Fatalf("Put: %v", err)
	}
	got, err := as.Get(ctx, "alice@states.example")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Status != st.Status || got.Reason != st.Reason || got.By != st.By || !sameTime(got.Since, since) || !got.Expires.IsZero() {
		t.Fatalf("Get = %+v, want %+v", got, st)
	}
	// Replace, with an expiry.
	st.Status, st.Expires, st.Reason = store.StatusRestricted, since.Add(time.Hour), "new account"
	if err := as.Put(ctx, st); err != nil {
		t.Fatalf("Put (replace): %v", err)
	}
	if got, _ = as.Get(ctx, "alice@states.example"); got.Status != store.StatusRestricted || !sameTime(got.Expires, st.Expires) || got.Reason != "new account" {
		t.Fatalf("after replace: %+v", got)
	}
	if err := as.Put(ctx, store.AccountState{JID: "carol@states2.example", Status: store.StatusSuspended, Since: since}); err != nil {
		t.Fatalf("Put carol: %v", err)
	}
	wantErr(t, "Put for a missing account", as.Put(ctx, store.AccountState{JID: "nobody@states.example", Status: store.StatusSuspended, Since: since}), store.ErrNotFound)
	if err := as.Put(ctx, store.AccountState{JID: "bob@states.example", Status: store.StatusActive, Since: since}); err == nil {
		t.Error("Put of an active state succeeded; want an error (active is no row)")
	}
	l, err := as.List(ctx, "states.example")
	if err != nil || len(l) != 1 || l[0].JID != "alice@states.example" {
		t.Fatalf("List(states.example) = %v, %v", l, err)
	}
	l, err = as.List(ctx, "")
	if err != nil || len(l) != 2 {
		t.Fatalf("List(all) = %v, %v; want alice and carol", l, err)
	}
	if err := as.Delete(ctx, "alice@states.example"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := as.Delete(ctx, "alice@states.example"); err != nil {
		t.Fatalf("Delete again: %v", err)
	}
	_, err = as.Get(ctx, "alice@states.example")
	wantErr(t, "Get after Delete", err, store.ErrNotFound)
	// The state goes with the account.
	if err := s.Accounts().Delete(ctx, "carol@states2.example"); err != nil {
		t.Fatal(err)
	}
	_, err = as.Get(ctx, "carol@states2.example")
	wantErr(t, "Get after the account was deleted", err, store.ErrNotFound)
}

func testBlocklist(t *testing.T, s store.Store) {
	ctx := t.Context()
	bl := s.Blocklist()
	mustCreate(t, s, "alice@block.example", "bob@block.example")
	list := func(owner string) []string {
		t.Helper()
		l, err := bl.List(ctx, owner)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		return l
	}
	if l := list("alice@block.example"); len(l) != 0 {
		t.Fatalf("new account blocks %v", l)
	}
	if err := bl.Add(ctx, "alice@block.example", []string{"spam.example", "eve@evil.example", "mallory@evil.example/phone"}); err != nil {
		t.Fatalf("Add: %v", err)
	}
	if err := bl.Add(ctx, "alice@block.example", []string{"spam.example"}); err != nil {
		t.Fatalf("Add again: %v", err)
	}
	want := []string{"eve@evil.example", "mallory@evil.example/phone", "spam.example"}
	if l := list("alice@block.example"); !slices.Equal(l, want) {
		t.Fatalf("List = %v, want %v", l, want)
	}
	if l := list("bob@block.example"); len(l) != 0 {
		t.Fatalf("bob's list has alice's items: %v", l)
	}
	wantErr(t, "Add for a missing account", bl.Add(ctx, "nobody@block.example", []string{"x.example"}), store.ErrNotFound)
	if err := bl.Remove(ctx, "alice@block.example", []string{"spam.example", "absent.example"}); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if l := list("alice@block.example"); !slices.Equal(l, want[:2]) {
		t.Fatalf("after Remove: %v", l)
	}
	gone, err := bl.Clear(ctx, "alice@block.example")
	if err != nil || !slices.Equal(gone, want[:2]) {
		t.Fatalf("Clear = %v, %v; want %v", gone, err, want[:2])
	}
	if l := list("alice@block.example"); len(l) != 0 {
		t.Fatalf("after Clear: %v", l)
	}
	if err := bl.Add(ctx, "bob@block.example", []string{"x.example"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Accounts().Delete(ctx, "bob@block.example"); err != nil {
		t.Fatal(err)
	}
	if l := list("bob@block.example"); len(l) != 0 {
		t.Fatalf("block list kept after the account was deleted: %v", l)
	}
}

func testReports(t *testing.T, s store.Store) {
	ctx := t.Context()
	rp := s.Reports()
	base, err := rp.Count(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Round(time.Microsecond)
	r1 := store.Report{Created: now, Reporter: "alice@reports.example", Offender: "spammer@evil.example", Reason: "spam",
		Text: "Buy now", StanzaIDs: []store.StanzaRef{{By: "alice@reports.example", ID: "abc"}}, Evidence: []byte("<message/>"), Source: "xep-0377"}
	id1, err := rp.Add(ctx, r1)
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	id2, err := rp.Add(ctx, store.Report{Created: now.Add(time.Second), Reporter: "reports.example", Offender: "troll@evil.example", Reason: "abuse"})
	if err != nil {
		t.Fatalf("Add: %v", err)
	}
	if id2 <= id1 {
		t.Fatalf("ids %d then %d: want increasing", id1, id2)
	}
	got, err := rp.Get(ctx, id1)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.ID != id1 || got.Reporter != r1.Reporter || got.Offender != r1.Offender || got.Reason != "spam" || got.Text != "Buy now" ||
		!slices.Equal(got.StanzaIDs, r1.StanzaIDs) || string(got.Evidence) != "<message/>" || got.Source != "xep-0377" ||
		got.State != store.ReportOpen || !sameTime(got.Created, now) {
		t.Fatalf("Get = %+v, want %+v", got, r1)
	}
	if g2, _ := rp.Get(ctx, id2); g2.StanzaIDs != nil || g2.Evidence != nil {
		t.Errorf("a report without ids or evidence came back with %v, %q", g2.StanzaIDs, g2.Evidence)
	}
	_, err = rp.Get(ctx, id2+1000)
	wantErr(t, "Get of a missing report", err, store.ErrNotFound)

	if err := rp.Resolve(ctx, id1, "admin@reports.example", "suspended the account", now.Add(time.Minute)); err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	wantErr(t, "Resolve of a missing report", rp.Resolve(ctx, id2+1000, "x", "y", now), store.ErrNotFound)
	if err := rp.SetForwarded(ctx, id1, "abuse@evil.example"); err != nil {
		t.Fatalf("SetForwarded: %v", err)
	}
	got, _ = rp.Get(ctx, id1)
	if got.State != store.ReportResolved || got.ResolvedBy != "admin@reports.example" || got.Resolution != "suspended the account" ||
		!sameTime(got.ResolvedAt, now.Add(time.Minute)) || got.Forwarded != "abuse@evil.example" {
		t.Fatalf("after Resolve: %+v", got)
	}
	open, err := rp.List(ctx, store.ReportFilter{State: store.ReportOpen, Offender: "troll@evil.example"})
	if err != nil || len(open) != 1 || open[0].ID != id2 {
		t.Fatalf("List(open, troll) = %v, %v", open, err)
	}
	all, err := rp.List(ctx, store.ReportFilter{Limit: 2})
	if err != nil || len(all) != 2 || all[0].ID != id2 || all[1].ID != id1 {
		t.Fatalf("List(limit 2) = %v, %v; want newest first", all, err)
	}
	if n, _ := rp.Count(ctx, ""); n != base+2 {
		t.Errorf("Count = %d, want %d", n, base+2)
	}
	// Reports outlive the accounts they name.
	mustCreate(t, s, "alice@reports.example")
	if err := s.Accounts().Delete(ctx, "alice@reports.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := rp.Get(ctx, id1); err != nil {
		t.Fatalf("report gone with the reporter's account: %v", err)
	}
}
