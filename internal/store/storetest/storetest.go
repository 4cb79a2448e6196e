// Package storetest is the conformance suite every store backend must pass.
//
// A backend's test calls Run with a function that opens a new, empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store {
//			s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "stoa.db"))
//			if err != nil {
//				t.Fatal(err)
//			}
//			return s
//		})
//	}
//
// Run calls open once per subtest (subtests run in parallel) and closes each
// store when its subtest ends, checking Close's error. Each subtest also uses
// its own domains, so stores may share one database underneath.
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"stoa.im/stoa/internal/store"
)

// Run runs the whole suite against the stores returned by open.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Accounts/CreateGet", testAccountCreateGet},
		{"Accounts/Duplicate", testAccountDuplicate},
		{"Accounts/NotFound", testAccountNotFound},
		{"Accounts/Credentials", testAccountCredentials},
		{"Accounts/LastLogout", testAccountLastLogout},
		{"Accounts/ListCount", testAccountListCount},
		{"Accounts/DeleteCascades", testAccountDeleteCascades},
		{"Accounts/OwnerMustExist", testOwnerMustExist},
		{"Roster/PutGet", testRosterPutGet},
		{"Roster/Versions", testRosterVersions},
		{"Roster/DeleteAbsent", testRosterDeleteAbsent},
		{"Roster/InvalidSubscription", testRosterInvalidSubscription},
		{"Roster/PendingIn", testRosterPendingIn},
		{"Offline/PushList", testOfflinePushList},
		{"Offline/Delete", testOfflineDelete},
		{"Offline/Quota", testOfflineQuota},
		{"Offline/QuotaConcurrent", testOfflineQuotaConcurrent},
		{"KV", testKV},
		{"Push", testPush},
		{"Abuse", testAbuse},
		{"Registration", testRegistration},
		{"Invites", testInvites},
		{"Isolation", testIsolation},
		{"Concurrency", testConcurrency},
		{"Canceled", testCanceled},
	}
	tests = append(tests, archiveTests()...)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := open(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// creds returns distinct, recognisable credentials for seed.
func creds(seed string) store.Credentials {
	return store.Credentials{
		SHA1: store.ScramCredentials{
			Salt: []byte("salt1-" + seed), Iterations: 4096,
			StoredKey: []byte("stored1-" + seed + "\x00\xff"), ServerKey: []byte("server1-" + seed),
		},
		SHA256: store.ScramCredentials{
			Salt: []byte("salt256-" + seed), Iterations: 10000,
			StoredKey: []byte("stored256-" + seed), ServerKey: []byte("server256-\x00" + seed),
		},
	}
}

func credsEqual(a, b store.Credentials) bool {
	eq := func(x, y store.ScramCredentials) bool {
		return bytes.Equal(x.Salt, y.Salt) && x.Iterations == y.Iterations &&
			bytes.Equal(x.StoredKey, y.StoredKey) && bytes.Equal(x.ServerKey, y.ServerKey)
	}
	return eq(a.SHA1, b.SHA1) && eq(a.SHA256, b.SHA256)
}

func mustCreate(t *testing.T, s store.Store, jids ...string) {
	t.Helper()
	for _, j := range jids {
		if err := s.Accounts().Create(t.Context(), j, creds(j)); err != nil {
			t.Fatalf("Create(%q): %v", j, err)
		}
	}
}

// sameTime reports whether got is want to within the microsecond that
// backends are allowed to round to, and in UTC.
func sameTime(got, want time.Time) bool {
	d := got.Sub(want)
	return got.Location() == time.UTC && d > -time.Microsecond && d < time.Microsecond
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

func testAccountCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	before := time.Now().Round(0)
	mustCreate(t, s, "alice@cg.example")
	after := time.Now().Round(0)
	a, err := s.Accounts().Get(ctx, "alice@cg.example")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if a.JID != "alice@cg.example" {
		t.Errorf("JID = %q", a.JID)
	}
	if !credsEqual(a.Credentials, creds("alice@cg.example")) {
		t.Errorf("Credentials = %+v, want %+v", a.Credentials, creds("alice@cg.example"))
	}
	if a.Created.Before(before.Add(-time.Microsecond)) || a.Created.After(after.Add(time.Microsecond)) || a.Created.Location() != time.UTC {
		t.Errorf("Created = %v, want a UTC time between %v and %v", a.Created, before, after)
	}
	if !a.LastLogout.IsZero() || a.LastStatus != "" {
		t.Errorf("LastLogout, LastStatus = %v, %q; want zero", a.LastLogout, a.LastStatus)
	}
	// A domain JID can be an account too (components, admin accounts).
	mustCreate(t, s, "cg.example")
	if _, err := s.Accounts().Get(ctx, "cg.example"); err != nil {
		t.Errorf("Get(domain JID): %v", err)
	}
}

func testAccountDuplicate(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreate(t, s, "alice@dup.example")
	err := s.Accounts().Create(ctx, "alice@dup.example", creds("other"))
	wantErr(t, "second Create", err, store.ErrExists)
	a, err := s.Accounts().Get(ctx, "alice@dup.example")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !credsEqual(a.Credentials, creds("alice@dup.example")) {
		t.Errorf("a failed Create changed the credentials: %+v", a.Credentials)
	}
	if n, err := s.Accounts().Count(ctx, "dup.example"); err != nil || n != 1 {
		t.Errorf("Count = %d, %v; want 1", n, err)
	}
}

func testAccountNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreate(t, s, "alice@nf.example")
	const j = "nobody@nf.example"
	_, err := s.Accounts().Get(ctx, j)
	wantErr(t, "Get", err, store.ErrNotFound)
	wantErr(t, "SetCredentials", s.Accounts().SetCredentials(ctx, j, creds(j)), store.ErrNotFound)
	wantErr(t, "SetLastLogout", s.Accounts().SetLastLogout(ctx, j, time.Now(), "bye"), store.ErrNotFound)
	wantErr(t, "Delete", s.Accounts().Delete(ctx, j), store.ErrNotFound)
	// Case and domain matter: keys are exact strings.
	_, err = s.Accounts().Get(ctx, "Alice@nf.example")
	wantErr(t, "Get(other case)", err, store.ErrNotFound)
	_, err = s.Accounts().Get(ctx, "alice@nf.example.org")
	wantErr(t, "Get(other domain)", err, store.ErrNotFound)
}

func testAccountCredentials(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreate(t, s, "alice@cred.example", "bob@cred.example")
	tests := []struct {
		name  string
		creds store.Credentials
	}{
		{"new keys", creds("new")},
		{"binary", store.Credentials{
			SHA1:   store.ScramCredentials{Salt: []byte{0, 1, 2, 255}, Iterations: 1, StoredKey: bytes.Repeat([]byte{0}, 20), ServerKey: bytes.Repeat([]byte{0xff}, 20)},
			SHA256: store.ScramCredentials{Salt: bytes.Repeat([]byte{7}, 64), Iterations: 1 << 20, StoredKey: bytes.Repeat([]byte{1}, 32), ServerKey: bytes.Repeat([]byte{2}, 32)},
		}},
		{"sha256 only", store.Credentials{SHA256: creds("only").SHA256}},
	}
	for _, tc := range tests {
		if err := s.Accounts().SetCredentials(ctx, "alice@cred.example", tc.creds); err != nil {
			t.Fatalf("%s: SetCredentials: %v", tc.name, err)
		}
		a, err := s.Accounts().Get(ctx, "alice@cred.example")
		if err != nil {
			t.Fatalf("%s: Get: %v", tc.name, err)
		}
		if !credsEqual(a.Credentials, tc.creds) {
			t.Errorf("%s: Credentials = %+v, want %+v", tc.name, a.Credentials, tc.creds)
		}
	}
	b, err := s.Accounts().Get(ctx, "bob@cred.example")
	if err != nil || !credsEqual(b.Credentials, creds("bob@cred.example")) {
		t.Errorf("another account's credentials changed: %+v, %v", b.Credentials, err)
	}
}

func testAccountLastLogout(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreate(t, s, "alice@ll.example", "bob@ll.example")
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	tests := []struct {
		name   string
		t      time.Time
		status string
	}{
		{"nanoseconds", time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC), "gone fishing"},
		{"other zone", time.Date(2030, 12, 31, 23, 59, 59, 999999000, zone), "über ☃ \x00 <b>&amp;</b>"},
		{"old", time.Date(1970, 1, 1, 0, 0, 0, 1000, time.UTC), ""},
		{"never", time.Time{}, "cleared"},
	}
	for _, tc := range tests {
		if err := s.Accounts().SetLastLogout(ctx, "alice@ll.example", tc.t, tc.status); err != nil {
			t.Fatalf("%s: SetLastLogout: %v", tc.name, err)
		}
		a, err := s.Accounts().Get(ctx, "alice@ll.example")
		if err != nil {
			t.Fatalf("%s: Get: %v", tc.name, err)
		}
		if tc.t.IsZero() {
			if !a.LastLogout.IsZero() {
				t.Errorf("%s: LastLogout = %v, want zero", tc.name, a.LastLogout)
			}
		} else if !sameTime(a.LastLogout, tc.t) {
			t.Errorf("%s: LastLogout = %v, want %v in UTC", tc.name, a.LastLogout, tc.t)
		}
		if a.LastStatus != tc.status {
			t.Errorf("%s: LastStatus = %q, want %q", tc.name, a.LastStatus, tc.status)
		}
		if !credsEqual(a.Credentials, creds("alice@ll.example")) {
			t.Errorf("%s: SetLastLogout changed the credentials", tc.name)
		}
	}
	b, err := s.Accounts().Get(ctx, "bob@ll.example")
	if err != nil || !b.LastLogout.IsZero() || b.LastStatus != "" {
		t.Errorf("another account changed: %+v, %v", b, err)
	}
}

func testAccountListCount(t *testing.T, s store.Store) {
	ctx := t.Context()
	// Created out of order, with a sub-domain and a look-alike domain that
	// must not be counted.
	mustCreate(t, s, "zoe@lc.example", "alice@lc.example", "bob@sub.lc.example", "carol@lc.example.net",
		"lc.example", "mallory@lc.example", "0@lc.example", "bob@lc.example")
	got, err := s.Accounts().List(ctx, "lc.example")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	want := []string{"0@lc.example", "alice@lc.example", "bob@lc.example", "lc.example", "mallory@lc.example", "zoe@lc.example"}
	if !slices.Equal(got, want) {
		t.Errorf("List = %q, want %q", got, want)
	}
	tests := []struct {
		domain string
		want   []string
	}{
		{"lc.example", want},
		{"sub.lc.example", []string{"bob@sub.lc.example"}},
		{"lc.example.net", []string{"carol@lc.example.net"}},
		{"none.example", nil},
	}
	for _, tc := range tests {
		got, err := s.Accounts().List(ctx, tc.domain)
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("List(%q) = %q, %v; want %q", tc.domain, got, err, tc.want)
		}
		n, err := s.Accounts().Count(ctx, tc.domain)
		if err != nil || n != len(tc.want) {
			t.Errorf("Count(%q) = %d, %v; want %d", tc.domain, n, err, len(tc.want))
		}
	}
	if err := s.Accounts().Delete(ctx, "mallory@lc.example"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if n, err := s.Accounts().Count(ctx, "lc.example"); err != nil || n != 5 {
		t.Errorf("Count after Delete = %d, %v; want 5", n, err)
	}
}

func testAccountDeleteCascades(t *testing.T, s store.Store) {
	ctx := t.Context()
	const alice, bob = "alice@del.example", "bob@del.example"
	mustCreate(t, s, alice, bob)
	fill := func(owner, contact string) {
		t.Helper()
		if _, err := s.Roster().Put(ctx, owner, store.RosterItem{JID: contact, Subscription: store.SubBoth, Groups: []string{"g"}}); err != nil {
			t.Fatalf("Roster.Put: %v", err)
		}
		if err := s.Roster().AddPendingIn(ctx, owner, store.PendingIn{JID: "x@remote.example", Stanza: []byte("<presence/>")}); err != nil {
			t.Fatalf("AddPendingIn: %v", err)
		}
		if err := s.Offline().Push(ctx, owner, []byte("<message/>"), time.Now(), 0); err != nil {
			t.Fatalf("Offline.Push: %v", err)
		}
		if err := s.KV().Put(ctx, owner, "k", []byte("v")); err != nil {
			t.Fatalf("KV.Put: %v", err)
		}
	}
	fill(alice, bob)
	fill(bob, alice)
	if err := s.Accounts().Delete(ctx, alice); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := s.Accounts().Get(ctx, alice)
	wantErr(t, "Get after Delete", err, store.ErrNotFound)
	wantErr(t, "second Delete", s.Accounts().Delete(ctx, alice), store.ErrNotFound)

	// Nothing of alice's is left, even for a new account of the same name.
	checkEmpty := func(when string) {
		t.Helper()
		items, ver, err := s.Roster().Items(ctx, alice)
		if err != nil || len(items) != 0 || ver != 0 {
			t.Errorf("%s: Roster.Items = %v, %d, %v; want empty, 0", when, items, ver, err)
		}
		_, err = s.Roster().Get(ctx, alice, bob)
		wantErr(t, when+": Roster.Get", err, store.ErrNotFound)
		if p, err := s.Roster().PendingIn(ctx, alice); err != nil || len(p) != 0 {
			t.Errorf("%s: PendingIn = %v, %v; want none", when, p, err)
		}
		if m, err := s.Offline().List(ctx, alice); err != nil || len(m) != 0 {
			t.Errorf("%s: Offline.List = %v, %v; want none", when, m, err)
		}
		if n, err := s.Offline().Count(ctx, alice); err != nil || n != 0 {
			t.Errorf("%s: Offline.Count = %d, %v; want 0", when, n, err)
		}
		_, err = s.KV().Get(ctx, alice, "k")
		wantErr(t, when+": KV.Get", err, store.ErrNotFound)
	}
	checkEmpty("after Delete")
	mustCreate(t, s, alice)
	checkEmpty("after re-Create")

	// Bob keeps everything, including alice in his roster.
	items, ver, err := s.Roster().Items(ctx, bob)
	if err != nil || len(items) != 1 || items[0].JID != alice || ver == 0 {
		t.Errorf("bob's Roster.Items = %v, %d, %v; want alice", items, ver, err)
	}
	if p, err := s.Roster().PendingIn(ctx, bob); err != nil || len(p) != 1 {
		t.Errorf("bob's PendingIn = %v, %v; want 1", p, err)
	}
	if n, err := s.Offline().Count(ctx, bob); err != nil || n != 1 {
		t.Errorf("bob's Offline.Count = %d, %v; want 1", n, err)
	}
	if v, err := s.KV().Get(ctx, bob, "k"); err != nil || string(v) != "v" {
		t.Errorf("bob's KV.Get = %q, %v; want v", v, err)
	}
}

func testOwnerMustExist(t *testing.T, s store.Store) {
	ctx := t.Context()
	const ghost = "ghost@own.example"
	mustCreate(t, s, "alice@own.example")
	_, err := s.Roster().Put(ctx, ghost, store.RosterItem{JID: "alice@own.example", Subscription: store.SubNone})
	wantErr(t, "Roster.Put", err, store.ErrNotFound)
	wantErr(t, "AddPendingIn", s.Roster().AddPendingIn(ctx, ghost, store.PendingIn{JID: "alice@own.example", Stanza: []byte("<presence/>")}), store.ErrNotFound)
	wantErr(t, "Offline.Push", s.Offline().Push(ctx, ghost, []byte("<message/>"), time.Now(), 0), store.ErrNotFound)
	wantErr(t, "Offline.Push with quota", s.Offline().Push(ctx, ghost, []byte("<message/>"), time.Now(), 10), store.ErrNotFound)
	wantErr(t, "KV.Put", s.KV().Put(ctx, ghost, "k", []byte("v")), store.ErrNotFound)
	// Reads and removals of an unknown owner find nothing, without error.
	items, ver, err := s.Roster().Items(ctx, ghost)
	if err != nil || len(items) != 0 || ver != 0 {
		t.Errorf("Roster.Items = %v, %d, %v", items, ver, err)
	}
	if err := s.Roster().RemovePendingIn(ctx, ghost, "alice@own.example"); err != nil {
		t.Errorf("RemovePendingIn: %v", err)
	}
	if err := s.Offline().Delete(ctx, ghost, []int64{1, 2}); err != nil {
		t.Errorf("Offline.Delete: %v", err)
	}
	if err := s.KV().Delete(ctx, ghost, "k"); err != nil {
		t.Errorf("KV.Delete: %v", err)
	}
}

// normItem makes nil and empty groups compare equal.
func normItem(it store.RosterItem) store.RosterItem {
	if len(it.Groups) == 0 {
		it.Groups = nil
	}
	return it
}

func testRosterPutGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	const owner = "alice@rpg.example"
	mustCreate(t, s, owner)
	items := []store.RosterItem{
		{JID: "bob@rpg.example", Name: "Bob", Subscription: store.SubBoth, Groups: []string{"Friends", "Work"}},
		{JID: "carol@remote.example", Subscription: store.SubTo, Ask: true},
		{JID: "dave@remote.example", Name: "Dävé ☃ <&>\"'", Subscription: store.SubFrom, Approved: true,
			Groups: []string{"Ünïcode", "with,comma", "[\"json\"]", ""}},
		{JID: "erin@remote.example", Subscription: store.SubNone, Ask: true, Approved: true, Groups: []string{}},
		{JID: "remote.example", Subscription: store.SubFrom},
	}
	for _, it := range items {
		if _, err := s.Roster().Put(ctx, owner, it); err != nil {
			t.Fatalf("Put(%q): %v", it.JID, err)
		}
	}
	for _, it := range items {
		got, err := s.Roster().Get(ctx, owner, it.JID)
		if err != nil {
			t.Fatalf("Get(%q): %v", it.JID, err)
		}
		if !reflect.DeepEqual(normItem(got), normItem(it)) {
			t.Errorf("Get(%q) = %+v, want %+v", it.JID, got, it)
		}
	}
	all, _, err := s.Roster().Items(ctx, owner)
	if err != nil {
		t.Fatalf("Items: %v", err)
	}
	if len(all) != len(items) {
		t.Fatalf("Items returned %d items, want %d", len(all), len(items))
	}
	byJID := map[string]store.RosterItem{}
	for _, it := range all {
		byJID[it.JID] = it
	}
	for _, it := range items {
		if !reflect.DeepEqual(normItem(byJID[it.JID]), normItem(it)) {
			t.Errorf("Items: %q = %+v, want %+v", it.JID, byJID[it.JID], it)
		}
	}

	// Put replaces every field.
	repl := store.RosterItem{JID: "bob@rpg.example", Name: "", Subscription: store.SubNone, Ask: true, Groups: []string{"Other"}}
	if _, err := s.Roster().Put(ctx, owner, repl); err != nil {
		t.Fatalf("Put(replace): %v", err)
	}
	got, err := s.Roster().Get(ctx, owner, "bob@rpg.example")
	if err != nil || !reflect.DeepEqual(normItem(got), repl) {
		t.Errorf("Get after replace = %+v, %v; want %+v", got, err, repl)
	}
	if all, _, _ := s.Roster().Items(ctx, owner); len(all) != len(items) {
		t.Errorf("replace changed the number of items to %d", len(all))
	}

	_, err = s.Roster().Get(ctx, owner, "nobody@rpg.example")
	wantErr(t, "Get(absent)", err, store.ErrNotFound)
	_, err = s.Roster().Get(ctx, "bob@rpg.example", owner)
	wantErr(t, "Get(reversed)", err, store.ErrNotFound)
}

func testRosterVersions(t *testing.T, s store.Store) {
	ctx := t.Context()
	const owner = "alice@ver.example"
	mustCreate(t, s, owner)
	items, ver, err := s.Roster().Items(ctx, owner)
	if err != nil || len(items) != 0 || ver != 0 {
		t.Fatalf("empty roster: Items = %v, %d, %v; want none, 0", items, ver, err)
	}
	last := int64(0)
	step := func(what string, v int64, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if v <= last {
			t.Errorf("%s: version %d, want more than %d", what, v, last)
		}
		last = v
		if _, cur, err := s.Roster().Items(ctx, owner); err != nil || cur != v {
			t.Errorf("%s: Items version = %d, %v; want %d", what, cur, err, v)
		}
	}
	bob := store.RosterItem{JID: "bob@ver.example", Subscription: store.SubNone}
	v, err := s.Roster().Put(ctx, owner, bob)
	step("Put bob", v, err)
	v, err = s.Roster().Put(ctx, owner, bob) // unchanged item: still a change
	step("Put bob again", v, err)
	bob.Subscription = store.SubTo
	v, err = s.Roster().Put(ctx, owner, bob)
	step("Put bob to", v, err)
	v, err = s.Roster().Put(ctx, owner, store.RosterItem{JID: "carol@ver.example", Subscription: store.SubFrom})
	step("Put carol", v, err)
	v, err = s.Roster().Delete(ctx, owner, "bob@ver.example")
	step("Delete bob", v, err)
	v, err = s.Roster().Delete(ctx, owner, "carol@ver.example")
	step("Delete carol", v, err)
	// Empty again, but the version does not go back.
	items, cur, err := s.Roster().Items(ctx, owner)
	if err != nil || len(items) != 0 || cur != last {
		t.Errorf("emptied roster: Items = %v, %d, %v; want none, %d", items, cur, err, last)
	}
	v, err = s.Roster().Put(ctx, owner, bob)
	step("Put bob after emptying", v, err)
}

func testRosterDeleteAbsent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const owner = "alice@rda.example"
	mustCreate(t, s, owner)
	_, err := s.Roster().Delete(ctx, owner, "nobody@rda.example")
	wantErr(t, "Delete(absent) on a new roster", err, store.ErrNotFound)
	v, err := s.Roster().Put(ctx, owner, store.RosterItem{JID: "bob@rda.example", Subscription: store.SubBoth})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	_, err = s.Roster().Delete(ctx, owner, "nobody@rda.example")
	wantErr(t, "Delete(absent)", err, store.ErrNotFound)
	items, cur, err := s.Roster().Items(ctx, owner)
	if err != nil || len(items) != 1 || cur != v {
		t.Errorf("failed Delete changed the roster: %v, %d, %v; want 1 item, version %d", items, cur, err, v)
	}
	if _, err := s.Roster().Delete(ctx, owner, "bob@rda.example"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err = s.Roster().Delete(ctx, owner, "bob@rda.example")
	wantErr(t, "second Delete", err, store.ErrNotFound)
}

func testRosterInvalidSubscription(t *testing.T, s store.Store) {
	ctx := t.Context()
	const owner = "alice@ris.example"
	mustCreate(t, s, owner)
	for _, sub := range []store.Subscription{"", "None", "pending", "both "} {
		if _, err := s.Roster().Put(ctx, owner, store.RosterItem{JID: "bob@ris.example", Subscription: sub}); err == nil {
			t.Errorf("Put with subscription %q: no error", sub)
		}
	}
	if items, ver, err := s.Roster().Items(ctx, owner); err != nil || len(items) != 0 || ver != 0 {
		t.Errorf("rejected Puts changed the roster: %v, %d, %v", items, ver, err)
	}
}

func testRosterPendingIn(t *testing.T, s store.Store) {
	ctx := t.Context()
	const owner = "alice@pend.example"
	mustCreate(t, s, owner)
	check := func(what string, want ...store.PendingIn) {
		t.Helper()
		got, err := s.Roster().PendingIn(ctx, owner)
		if err != nil {
			t.Fatalf("%s: PendingIn: %v", what, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: PendingIn = %q, want %q", what, got, want)
		}
		for i := range want {
			if got[i].JID != want[i].JID || !bytes.Equal(got[i].Stanza, want[i].Stanza) {
				t.Errorf("%s: PendingIn[%d] = %q, want %q", what, i, got[i], want[i])
			}
		}
	}
	p := func(jid, stanza string) store.PendingIn { return store.PendingIn{JID: jid, Stanza: []byte(stanza)} }
	check("empty")
	// Added in an order that differs from the JIDs' sort order.
	a := p("zed@remote.example", "<presence type='subscribe'/>")
	b := p("bob@remote.example", "<presence type='subscribe'><status>hi \x00 ☃</status></presence>")
	c := p("mia@remote.example", "<presence type='subscribe'/>")
	for _, x := range []store.PendingIn{a, b, c} {
		if err := s.Roster().AddPendingIn(ctx, owner, x); err != nil {
			t.Fatalf("AddPendingIn(%q): %v", x.JID, err)
		}
	}
	check("added", a, b, c)
	a2 := p(a.JID, "<presence type='subscribe'><status>again</status></presence>")
	if err := s.Roster().AddPendingIn(ctx, owner, a2); err != nil {
		t.Fatalf("AddPendingIn(replace): %v", err)
	}
	check("replaced", b, c, a2)
	if err := s.Roster().RemovePendingIn(ctx, owner, c.JID); err != nil {
		t.Fatalf("RemovePendingIn: %v", err)
	}
	check("removed", b, a2)
	if err := s.Roster().RemovePendingIn(ctx, owner, c.JID); err != nil {
		t.Errorf("RemovePendingIn(absent): %v", err)
	}
	if err := s.Roster().RemovePendingIn(ctx, owner, "never@remote.example"); err != nil {
		t.Errorf("RemovePendingIn(never added): %v", err)
	}
	check("removed absent", b, a2)
	if _, ver, err := s.Roster().Items(ctx, owner); err != nil || ver != 0 {
		t.Errorf("pending requests changed the roster version to %d, %v", ver, err)
	}
}

func testOfflinePushList(t *testing.T, s store.Store) {
	ctx := t.Context()
	const owner = "alice@opl.example"
	mustCreate(t, s, owner)
	if ms, err := s.Offline().List(ctx, owner); err != nil || len(ms) != 0 {
		t.Fatalf("List on empty = %v, %v", ms, err)
	}
	base := time.Date(2026, 5, 6, 7, 8, 9, 987654321, time.FixedZone("x", -7*3600))
	big := bytes.Repeat([]byte("<body>0123456789</body>"), 20000)
	want := []store.OfflineMessage{
		{Stored: base, Stanza: []byte("<message><body>1</body></message>")},
		// Stored times are kept as given, not used for order.
		{Stored: base.Add(-time.Hour), Stanza: []byte("<message><body>2 \x00 ☃</body></message>")},
		{Stored: base.Add(time.Nanosecond), Stanza: big},
		{Stored: base, Stanza: []byte("<message><body>1</body></message>")}, // duplicates are kept
	}
	for i, m := range want {
		if err := s.Offline().Push(ctx, owner, m.Stanza, m.Stored, 0); err != nil {
			t.Fatalf("Push %d: %v", i, err)
		}
	}
	got, err := s.Offline().List(ctx, owner)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(got) != len(want) {
		t.Fatalf("List returned %d messages, want %d", len(got), len(want))
	}
	for i := range want {
		if i > 0 && got[i].ID <= got[i-1].ID {
			t.Errorf("List[%d].ID = %d, not above %d", i, got[i].ID, got[i-1].ID)
		}
		if !bytes.Equal(got[i].Stanza, want[i].Stanza) {
			t.Errorf("List[%d].Stanza differs (len %d, want %d)", i, len(got[i].Stanza), len(want[i].Stanza))
		}
		if !sameTime(got[i].Stored, want[i].Stored) {
			t.Errorf("List[%d].Stored = %v, want %v in UTC", i, got[i].Stored, want[i].Stored)
		}
	}
	if n, err := s.Offline().Count(ctx, owner); err != nil || n != len(want) {
		t.Errorf("Count = %d, %v; want %d", n, err, len(want))
	}
	// List does not consume.
	if again, err := s.Offline().List(ctx, owner); err != nil || len(again) != len(want) {
		t.Errorf("second List = %d messages, %v", len(again), err)
	}
}

func ids(ms []store.OfflineMessage) []int64 {
	out := make([]int64, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func testOfflineDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	const alice, bob = "alice@odel.example", "bob@odel.example"
	mustCreate(t, s, alice, bob)
	push := func(owner string, n int) {
		t.Helper()
		for i := range n {
			if err := s.Offline().Push(ctx, owner, fmt.Appendf(nil, "<message id='%s-%d'/>", owner, i), time.Now(), 0); err != nil {
				t.Fatalf("Push: %v", err)
			}
		}
	}
	push(alice, 6)
	push(bob, 2)
	all, err := s.Offline().List(ctx, alice)
	if err != nil || len(all) != 6 {
		t.Fatalf("List = %d, %v", len(all), err)
	}
	bobs, err := s.Offline().List(ctx, bob)
	if err != nil || len(bobs) != 2 {
		t.Fatalf("List(bob) = %d, %v", len(bobs), err)
	}
	if err := s.Offline().Delete(ctx, alice, nil); err != nil {
		t.Errorf("Delete(nil): %v", err)
	}
	// Delete 1st, 3rd and 6th, an unknown id, a repeated id and bob's ids.
	del := []int64{all[5].ID, all[0].ID, all[2].ID, all[5].ID, all[5].ID + 1000000}
	del = append(del, ids(bobs)...)
	if err := s.Offline().Delete(ctx, alice, del); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	got, err := s.Offline().List(ctx, alice)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if want := []int64{all[1].ID, all[3].ID, all[4].ID}; !slices.Equal(ids(got), want) {
		t.Errorf("ids after Delete = %v, want %v", ids(got), want)
	}
	if n, err := s.Offline().Count(ctx, alice); err != nil || n != 3 {
		t.Errorf("Count = %d, %v; want 3", n, err)
	}
	if n, err := s.Offline().Count(ctx, bob); err != nil || n != 2 {
		t.Errorf("bob's messages were deleted through alice: Count = %d, %v", n, err)
	}
	// New messages get new ids, never a deleted one.
	push(alice, 1)
	got, _ = s.Offline().List(ctx, alice)
	if last := got[len(got)-1].ID; slices.Contains(del, last) || last <= all[5].ID {
		t.Errorf("new message got id %d, reusing or below deleted ids %v", last, del)
	}
	// A large batch.
	push(alice, 700)
	got, _ = s.Offline().List(ctx, alice)
	if err := s.Offline().Delete(ctx, alice, ids(got)); err != nil {
		t.Fatalf("Delete(%d ids): %v", len(got), err)
	}
	if n, err := s.Offline().Count(ctx, alice); err != nil || n != 0 {
		t.Errorf("Count after deleting all = %d, %v; want 0", n, err)
	}
}

func testOfflineQuota(t *testing.T, s store.Store) {
	ctx := t.Context()
	const owner, other = "alice@quota.example", "bob@quota.example"
	mustCreate(t, s, owner, other)
	const quota = 3
	for i := range quota {
		if err := s.Offline().Push(ctx, owner, []byte("<message/>"), time.Now(), quota); err != nil {
			t.Fatalf("Push %d of %d: %v", i+1, quota, err)
		}
	}
	err := s.Offline().Push(ctx, owner, []byte("<message>over</message>"), time.Now(), quota)
	wantErr(t, "Push at quota", err, store.ErrQuotaExceeded)
	wantErr(t, "Push over a smaller quota", s.Offline().Push(ctx, owner, []byte("<message/>"), time.Now(), 1), store.ErrQuotaExceeded)
	if n, err := s.Offline().Count(ctx, owner); err != nil || n != quota {
		t.Errorf("Count = %d, %v; want %d", n, err, quota)
	}
	// The quota is per owner.
	if err := s.Offline().Push(ctx, other, []byte("<message/>"), time.Now(), quota); err != nil {
		t.Errorf("other owner's Push: %v", err)
	}
	// A larger quota, or none, lets more in.
	if err := s.Offline().Push(ctx, owner, []byte("<message/>"), time.Now(), quota+1); err != nil {
		t.Errorf("Push with a larger quota: %v", err)
	}
	if err := s.Offline().Push(ctx, owner, []byte("<message/>"), time.Now(), 0); err != nil {
		t.Errorf("Push without quota: %v", err)
	}
	// Deleting makes room again.
	ms, err := s.Offline().List(ctx, owner)
	if err != nil || len(ms) != quota+2 {
		t.Fatalf("List = %d, %v; want %d", len(ms), err, quota+2)
	}
	if err := s.Offline().Delete(ctx, owner, ids(ms[:3])); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Offline().Push(ctx, owner, []byte("<message/>"), time.Now(), quota); err != nil {
		t.Errorf("Push after making room: %v", err)
	}
	wantErr(t, "Push at quota again", s.Offline().Push(ctx, owner, []byte("<message/>"), time.Now(), quota), store.ErrQuotaExceeded)
}

func testOfflineQuotaConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const owner = "alice@qc.example"
	mustCreate(t, s, owner)
	const (
		workers = 16
		each    = 5
		quota   = 23
	)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		ok, full int
		errs     []error
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				err := s.Offline().Push(ctx, owner, fmt.Appendf(nil, "<message id='%d-%d'/>", w, i), time.Now(), quota)
				mu.Lock()
				switch {
				case err == nil:
					ok++
				case errors.Is(err, store.ErrQuotaExceeded):
					full++
				default:
					errs = append(errs, err)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("Push: %v", err)
	}
	if ok != quota || full != workers*each-quota {
		t.Errorf("%d pushes stored and %d refused, want %d and %d", ok, full, quota, workers*each-quota)
	}
	if n, err := s.Offline().Count(ctx, owner); err != nil || n != quota {
		t.Errorf("Count = %d, %v; want %d", n, err, quota)
	}
}

func testKV(t *testing.T, s store.Store) {
	ctx := t.Context()
	const owner = "alice@kv.example"
	mustCreate(t, s, owner)
	_, err := s.KV().Get(ctx, owner, "absent")
	wantErr(t, "Get(absent)", err, store.ErrNotFound)
	tests := []struct {
		key   string
		value []byte
	}{
		{"last-activity", []byte("1700000000")},
		{"binary", []byte{0, 1, 2, 0xfe, 0xff, 0}},
		{"empty", []byte{}},
		{"ünïcode key ☃", bytes.Repeat([]byte("x"), 100000)},
		{"", []byte("empty key")},
	}
	for _, tc := range tests {
		if err := s.KV().Put(ctx, owner, tc.key, tc.value); err != nil {
			t.Fatalf("Put(%q): %v", tc.key, err)
		}
	}
	for _, tc := range tests {
		got, err := s.KV().Get(ctx, owner, tc.key)
		if err != nil || !bytes.Equal(got, tc.value) {
			t.Errorf("Get(%q) = %.40q, %v; want %.40q", tc.key, got, err, tc.value)
		}
	}
	if err := s.KV().Put(ctx, owner, "last-activity", []byte("2")); err != nil {
		t.Fatalf("Put(overwrite): %v", err)
	}
	if got, err := s.KV().Get(ctx, owner, "last-activity"); err != nil || string(got) != "2" {
		t.Errorf("Get after overwrite = %q, %v; want 2", got, err)
	}
	if err := s.KV().Delete(ctx, owner, "last-activity"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err = s.KV().Get(ctx, owner, "last-activity")
	wantErr(t, "Get after Delete", err, store.ErrNotFound)
	if err := s.KV().Delete(ctx, owner, "last-activity"); err != nil {
		t.Errorf("Delete(absent): %v", err)
	}
	if got, err := s.KV().Get(ctx, owner, "binary"); err != nil || !bytes.Equal(got, tests[1].value) {
		t.Errorf("Delete removed another key: %q, %v", got, err)
	}
	// Keys are exact.
	_, err = s.KV().Get(ctx, owner, "Binary")
	wantErr(t, "Get(other case)", err, store.ErrNotFound)
}

func testIsolation(t *testing.T, s store.Store) {
	ctx := t.Context()
	const alice, bob = "alice@iso.example", "bob@iso.example"
	mustCreate(t, s, alice, bob)
	contact := store.RosterItem{JID: "carol@remote.example", Name: "Carol", Subscription: store.SubBoth, Groups: []string{"A"}}
	for range 3 {
		if _, err := s.Roster().Put(ctx, alice, contact); err != nil {
			t.Fatalf("Put: %v", err)
		}
	}
	if err := s.Roster().AddPendingIn(ctx, alice, store.PendingIn{JID: "dan@remote.example", Stanza: []byte("a")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Offline().Push(ctx, alice, []byte("for alice"), time.Now(), 1); err != nil {
		t.Fatal(err)
	}
	if err := s.KV().Put(ctx, alice, "k", []byte("alice's")); err != nil {
		t.Fatal(err)
	}

	// Bob sees none of it.
	items, ver, err := s.Roster().Items(ctx, bob)
	if err != nil || len(items) != 0 || ver != 0 {
		t.Errorf("bob's Items = %v, %d, %v", items, ver, err)
	}
	_, err = s.Roster().Get(ctx, bob, contact.JID)
	wantErr(t, "bob's Roster.Get", err, store.ErrNotFound)
	_, err = s.Roster().Delete(ctx, bob, contact.JID)
	wantErr(t, "bob's Roster.Delete", err, store.ErrNotFound)
	if p, err := s.Roster().PendingIn(ctx, bob); err != nil || len(p) != 0 {
		t.Errorf("bob's PendingIn = %v, %v", p, err)
	}
	if n, err := s.Offline().Count(ctx, bob); err != nil || n != 0 {
		t.Errorf("bob's Offline.Count = %d, %v", n, err)
	}
	_, err = s.KV().Get(ctx, bob, "k")
	wantErr(t, "bob's KV.Get", err, store.ErrNotFound)

	// Bob's writes with the same keys leave alice's data alone.
	v, err := s.Roster().Put(ctx, bob, store.RosterItem{JID: contact.JID, Subscription: store.SubNone})
	if err != nil || v != 1 {
		t.Errorf("bob's first Put = %d, %v; want version 1", v, err)
	}
	if err := s.Roster().AddPendingIn(ctx, bob, store.PendingIn{JID: "dan@remote.example", Stanza: []byte("b")}); err != nil {
		t.Fatal(err)
	}
	if err := s.Roster().RemovePendingIn(ctx, bob, "dan@remote.example"); err != nil {
		t.Fatal(err)
	}
	if err := s.Offline().Push(ctx, bob, []byte("for bob"), time.Now(), 1); err != nil {
		t.Errorf("bob's Push (quota is per owner): %v", err)
	}
	if err := s.KV().Put(ctx, bob, "k", []byte("bob's")); err != nil {
		t.Fatal(err)
	}
	if err := s.KV().Delete(ctx, bob, "k"); err != nil {
		t.Fatal(err)
	}

	got, err := s.Roster().Get(ctx, alice, contact.JID)
	if err != nil || !reflect.DeepEqual(got, contact) {
		t.Errorf("alice's item = %+v, %v; want %+v", got, err, contact)
	}
	if _, ver, err := s.Roster().Items(ctx, alice); err != nil || ver != 3 {
		t.Errorf("alice's version = %d, %v; want 3", ver, err)
	}
	if p, err := s.Roster().PendingIn(ctx, alice); err != nil || len(p) != 1 || string(p[0].Stanza) != "a" {
		t.Errorf("alice's PendingIn = %q, %v", p, err)
	}
	if ms, err := s.Offline().List(ctx, alice); err != nil || len(ms) != 1 || string(ms[0].Stanza) != "for alice" {
		t.Errorf("alice's Offline.List = %v, %v", ms, err)
	}
	if v, err := s.KV().Get(ctx, alice, "k"); err != nil || string(v) != "alice's" {
		t.Errorf("alice's KV = %q, %v", v, err)
	}
}

// testConcurrency has 16 goroutines write and read at once: each its own
// account's data, and all of them one shared roster. No error is allowed
// (in particular no "database is locked"), and the shared roster's versions
// must all differ.
func testConcurrency(t *testing.T, s store.Store) {
	ctx := t.Context()
	const (
		workers = 16
		rounds  = 20
		shared  = "shared@conc.example"
	)
	mustCreate(t, s, shared)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		versions = map[int64]bool{}
		errs     []error
	)
	for w := range workers {
		wg.Go(func() {
			fail := func(err error) {
				mu.Lock()
				errs = append(errs, fmt.Errorf("worker %d: %w", w, err))
				mu.Unlock()
			}
			me := fmt.Sprintf("user%d@conc.example", w)
			if err := s.Accounts().Create(ctx, me, creds(me)); err != nil {
				fail(err)
				return
			}
			for i := range rounds {
				contact := fmt.Sprintf("c%d@remote.example", i)
				if _, err := s.Roster().Put(ctx, me, store.RosterItem{JID: contact, Subscription: store.SubTo, Groups: []string{"g"}}); err != nil {
					fail(err)
				}
				v, err := s.Roster().Put(ctx, shared, store.RosterItem{JID: me, Subscription: store.SubBoth, Name: contact})
				if err != nil {
					fail(err)
				} else {
					mu.Lock()
					if versions[v] {
						errs = append(errs, fmt.Errorf("worker %d: version %d returned twice", w, v))
					}
					versions[v] = true
					mu.Unlock()
				}
				if err := s.Offline().Push(ctx, me, []byte("<message/>"), time.Now(), 0); err != nil {
					fail(err)
				}
				if err := s.KV().Put(ctx, me, fmt.Sprint("k", i%3), []byte(contact)); err != nil {
					fail(err)
				}
				if err := s.Accounts().SetLastLogout(ctx, me, time.Now(), contact); err != nil {
					fail(err)
				}
				if _, _, err := s.Roster().Items(ctx, shared); err != nil {
					fail(err)
				}
				if _, err := s.Accounts().Get(ctx, me); err != nil {
					fail(err)
				}
				if ms, err := s.Offline().List(ctx, me); err != nil {
					fail(err)
				} else if len(ms) > 5 {
					if err := s.Offline().Delete(ctx, me, ids(ms[:2])); err != nil {
						fail(err)
					}
				}
				if _, err := s.Accounts().Count(ctx, "conc.example"); err != nil {
					fail(err)
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	items, ver, err := s.Roster().Items(ctx, shared)
	if err != nil {
		t.Fatalf("Items: %v", err)
	}
	if len(items) != workers || ver != workers*rounds || len(versions) != workers*rounds {
		t.Errorf("shared roster: %d items, version %d, %d distinct versions; want %d, %d, %d",
			len(items), ver, len(versions), workers, workers*rounds, workers*rounds)
	}
	if n, err := s.Accounts().Count(ctx, "conc.example"); err != nil || n != workers+1 {
		t.Errorf("Count = %d, %v; want %d", n, err, workers+1)
	}
	for w := range workers {
		me := fmt.Sprintf("user%d@conc.example", w)
		items, ver, err := s.Roster().Items(ctx, me)
		if err != nil || len(items) != rounds || ver != rounds {
			t.Errorf("%s: %d items, version %d, %v; want %d, %d", me, len(items), ver, err, rounds, rounds)
		}
	}
}

func testCanceled(t *testing.T, s store.Store) {
	mustCreate(t, s, "alice@cancel.example")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	calls := map[string]error{
		"Accounts.Get":    func() error { _, err := s.Accounts().Get(ctx, "alice@cancel.example"); return err }(),
		"Accounts.Create": s.Accounts().Create(ctx, "bob@cancel.example", creds("bob")),
		"Roster.Put": func() error {
			_, err := s.Roster().Put(ctx, "alice@cancel.example", store.RosterItem{JID: "x@y", Subscription: store.SubNone})
			return err
		}(),
		"Roster.Items": func() error { _, _, err := s.Roster().Items(ctx, "alice@cancel.example"); return err }(),
		"Offline.Push": s.Offline().Push(ctx, "alice@cancel.example", []byte("m"), time.Now(), 0),
		"KV.Put":       s.KV().Put(ctx, "alice@cancel.example", "k", []byte("v")),
	}
	for name, err := range calls {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context: %v, want context.Canceled", name, err)
		}
	}
	// Nothing was written.
	bg := t.Context()
	if _, err := s.Accounts().Get(bg, "bob@cancel.example"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("canceled Create stored the account: %v", err)
	}
	if _, ver, err := s.Roster().Items(bg, "alice@cancel.example"); err != nil || ver != 0 {
		t.Errorf("canceled Put changed the roster: version %d, %v", ver, err)
	}
	if n, err := s.Offline().Count(bg, "alice@cancel.example"); err != nil || n != 0 {
		t.Errorf("canceled Push stored %d messages, %v", n, err)
	}
}
