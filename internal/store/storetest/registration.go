package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"stoa.im/stoa/internal/store"
)

// testRegistration checks the name index, tombstones, the registration
// log and throttle state (store.Registration).
func testRegistration(t *testing.T, s store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateIndexes", testRegCreateIndexes},
		{"LookAlikeRefused", testRegLookAlike},
		{"DeleteTombstones", testRegDeleteTombstones},
		{"AccountsDeleteTombstones", testRegAccountsDelete},
		{"UnindexedAccounts", testRegUnindexed},
		{"ConcurrentSameKey", testRegConcurrent},
		{"Log", testRegLog},
		{"Throttle", testRegThrottle},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, s) })
	}
}

func testRegCreateIndexes(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := s.Registration()
	const j = "alice@ci.example"
	before := time.Now().Add(-time.Second)
	if err := r.CreateAccount(ctx, j, creds(j), "allce"); err != nil {
		t.Fatalf("CreateAccount: %v", err)
	}
	a, err := s.Accounts().Get(ctx, j)
	if err != nil || !credsEqual(a.Credentials, creds(j)) {
		t.Fatalf("Get after CreateAccount = %+v, %v", a, err)
	}
	e, err := r.LookupName(ctx, "ci.example", "allce")
	if err != nil {
		t.Fatalf("LookupName: %v", err)
	}
	if e.JID != j || e.Domain != "ci.example" || e.Key != "allce" || e.State != store.NameAccount || e.Since.Before(before) || e.Since.Location() != time.UTC {
		t.Errorf("LookupName = %+v", e)
	}
	_, err = r.LookupName(ctx, "other.example", "allce")
	wantErr(t, "LookupName(other domain)", err, store.ErrNotFound)
	// The same JID again is ErrExists, whatever the key.
	wantErr(t, "CreateAccount(same JID)", r.CreateAccount(ctx, j, creds("x"), "zzz"), store.ErrExists)
	// The same key in another domain is fine.
	if err := r.CreateAccount(ctx, "alice@ci2.example", creds("x"), "allce"); err != nil {
		t.Errorf("same key, other domain: %v", err)
	}
}

func testRegLookAlike(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := s.Registration()
	if err := r.CreateAccount(ctx, "paypal@la.example", creds("p"), "paypal"); err != nil {
		t.Fatal(err)
	}
	err := r.CreateAccount(ctx, "раураl@la.example", creds("q"), "paypal")
	var nt *store.NameTakenError
	if !errors.As(err, &nt) || !errors.Is(err, store.ErrNameTaken) {
		t.Fatalf("look-alike CreateAccount: %v, want a NameTakenError", err)
	}
	if nt.Holder.JID != "paypal@la.example" || nt.Holder.State != store.NameAccount {
		t.Errorf("holder = %+v", nt.Holder)
	}
	// Nothing of the refused account was created.
	_, err = s.Accounts().Get(ctx, "раураl@la.example")
	wantErr(t, "Get(refused look-alike)", err, store.ErrNotFound)
	if n, err := s.Accounts().Count(ctx, "la.example"); err != nil || n != 1 {
		t.Errorf("Count = %d, %v; want 1", n, err)
	}
}

func testRegDeleteTombstones(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := s.Registration()
	const j = "bob@dt.example"
	if err := r.CreateAccount(ctx, j, creds(j), "bob"); err != nil {
		t.Fatal(err)
	}
	if err := s.KV().Put(ctx, j, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 6000, time.UTC)
	if err := r.DeleteAccount(ctx, j, "bob", at, "inband"); err != nil {
		t.Fatalf("DeleteAccount: %v", err)
	}
	_, err := s.Accounts().Get(ctx, j)
	wantErr(t, "Get after DeleteAccount", err, store.ErrNotFound)
	_, err = s.KV().Get(ctx, j, "k")
	wantErr(t, "KV.Get after DeleteAccount", err, store.ErrNotFound)
	wantErr(t, "second DeleteAccount", r.DeleteAccount(ctx, j, "bob", at, "inband"), store.ErrNotFound)
	e, err := r.LookupName(ctx, "dt.example", "bob")
	if err != nil || e.State != store.NameTombstone || e.JID != j || !sameTime(e.Since, at) || e.Via != "inband" {
		t.Fatalf("LookupName after delete = %+v, %v; want a tombstone at %v via inband", e, err, at)
	}
	// The name, and look-alikes of it, cannot be created again.
	for _, jj := range []string{j, "b0b@dt.example"} {
		err := r.CreateAccount(ctx, jj, creds(jj), "bob")
		var nt *store.NameTakenError
		if !errors.As(err, &nt) || nt.Holder.State != store.NameTombstone {
			t.Errorf("CreateAccount(%s) over a tombstone: %v", jj, err)
		}
	}
	ts, err := r.Tombstones(ctx, "dt.example")
	if err != nil || len(ts) != 1 || ts[0].JID != j {
		t.Errorf("Tombstones = %+v, %v", ts, err)
	}
	// Purging keeps newer tombstones, removes older ones.
	if n, err := r.PurgeTombstones(ctx, "dt.example", at); err != nil || n != 0 {
		t.Errorf("PurgeTombstones(at) = %d, %v; want 0", n, err)
	}
	if n, err := r.PurgeTombstones(ctx, "dt.example", at.Add(time.Second)); err != nil || n != 1 {
		t.Errorf("PurgeTombstones(after) = %d, %v; want 1", n, err)
	}
	if err := r.CreateAccount(ctx, j, creds(j), "bob"); err != nil {
		t.Errorf("CreateAccount after the tombstone expired: %v", err)
	}
	// RemoveTombstone frees one name; it refuses live accounts.
	wantErr(t, "RemoveTombstone(live account)", r.RemoveTombstone(ctx, j), store.ErrNotFound)
	if err := r.DeleteAccount(ctx, j, "bob", at, "cli"); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveTombstone(ctx, j); err != nil {
		t.Errorf("RemoveTombstone: %v", err)
	}
	_, err = r.LookupName(ctx, "dt.example", "bob")
	wantErr(t, "LookupName after RemoveTombstone", err, store.ErrNotFound)
}

// testRegAccountsDelete: Accounts.Delete also tombstones an indexed name.
func testRegAccountsDelete(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := s.Registration()
	const j = "carol@ad.example"
	if err := r.CreateAccount(ctx, j, creds(j), "carol"); err != nil {
		t.Fatal(err)
	}
	if err := s.Accounts().Delete(ctx, j); err != nil {
		t.Fatal(err)
	}
	e, err := r.LookupName(ctx, "ad.example", "carol")
	if err != nil || e.State != store.NameTombstone {
		t.Errorf("LookupName after Accounts.Delete = %+v, %v; want a tombstone", e, err)
	}
}

func testRegUnindexed(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := s.Registration()
	mustCreate(t, s, "old1@ui.example", "old2@ui.example")
	if err := r.CreateAccount(ctx, "new@ui.example", creds("n"), "new"); err != nil {
		t.Fatal(err)
	}
	got, err := r.UnindexedAccounts(ctx, "ui.example", "", 10)
	if err != nil || fmt.Sprint(got) != "[old1@ui.example old2@ui.example]" {
		t.Fatalf("UnindexedAccounts = %v, %v", got, err)
	}
	if got, err := r.UnindexedAccounts(ctx, "ui.example", "old1@ui.example", 10); err != nil || fmt.Sprint(got) != "[old2@ui.example]" {
		t.Errorf("UnindexedAccounts(after old1) = %v, %v", got, err)
	}
	if got, err := r.UnindexedAccounts(ctx, "ui.example", "", 1); err != nil || fmt.Sprint(got) != "[old1@ui.example]" {
		t.Errorf("UnindexedAccounts(limit 1) = %v, %v", got, err)
	}
	if ok, err := r.IndexName(ctx, "old1@ui.example", "oldl"); err != nil || !ok {
		t.Errorf("IndexName(old1) = %v, %v", ok, err)
	}
	// old2 has the same key: not indexed, and says so.
	if ok, err := r.IndexName(ctx, "old2@ui.example", "oldl"); err != nil || ok {
		t.Errorf("IndexName(old2, taken key) = %v, %v; want false", ok, err)
	}
	if _, err := r.IndexName(ctx, "nobody@ui.example", "x"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("IndexName(no account) = %v, want ErrNotFound", err)
	}
	got, err = r.UnindexedAccounts(ctx, "ui.example", "", 10)
	if err != nil || fmt.Sprint(got) != "[old2@ui.example]" {
		t.Errorf("UnindexedAccounts after indexing = %v, %v", got, err)
	}
	// Deleting the unindexed account still leaves its key blocked (held
	// by old1) and does not fail.
	if err := r.DeleteAccount(ctx, "old2@ui.example", "oldl", time.Now(), "cli"); err != nil {
		t.Errorf("DeleteAccount(unindexed): %v", err)
	}
	if err := r.DeleteAccount(ctx, "new@ui.example", "new", time.Now(), "cli"); err != nil {
		t.Fatal(err)
	}
	if e, err := r.LookupName(ctx, "ui.example", "new"); err != nil || e.State != store.NameTombstone {
		t.Errorf("LookupName(new) = %+v, %v", e, err)
	}
}

// testRegConcurrent: of many concurrent creations with one key, exactly
// one wins.
func testRegConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := s.Registration()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		wins  int
		other []error
	)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			j := fmt.Sprintf("user%d@cc.example", i)
			err := r.CreateAccount(ctx, j, creds(j), "samekey")
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, store.ErrNameTaken):
				other = append(other, err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || len(other) > 0 {
		t.Errorf("wins = %d, other errors %v; want exactly one win", wins, other)
	}
	if n, err := s.Accounts().Count(ctx, "cc.example"); err != nil || n != 1 {
		t.Errorf("Count = %d, %v; want 1", n, err)
	}
}

func testRegLog(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := s.Registration()
	base := time.Date(2031, 5, 6, 7, 0, 0, 0, time.UTC)
	entries := []store.RegistrationLogEntry{
		{JID: "a@log.example", At: base, IP: "192.0.2.1", Method: "inband"},
		{JID: "b@log.example", At: base.Add(time.Minute), IP: "192.0.2.2", Method: "web", Invite: "tok"},
		{JID: "c@log2.example", At: base.Add(2 * time.Minute), IP: "192.0.2.1", Method: "inband"},
	}
	var last int64
	for _, e := range entries {
		id, err := r.AppendLog(ctx, e)
		if err != nil || id <= last {
			t.Fatalf("AppendLog = %d, %v", id, err)
		}
		last = id
	}
	got, err := r.Log(ctx, store.RegistrationLogQuery{Domain: "log.example"})
	if err != nil || len(got) != 2 || got[0].JID != "a@log.example" || got[1].Invite != "tok" || got[1].Method != "web" || got[1].Domain != "log.example" || !sameTime(got[1].At, base.Add(time.Minute)) {
		t.Errorf("Log(domain) = %+v, %v", got, err)
	}
	got, err = r.Log(ctx, store.RegistrationLogQuery{IP: "192.0.2.1", Since: base.Add(time.Second)})
	if err != nil || len(got) != 1 || got[0].JID != "c@log2.example" {
		t.Errorf("Log(ip, since) = %+v, %v", got, err)
	}
	got, err = r.Log(ctx, store.RegistrationLogQuery{Before: base.Add(time.Minute), Limit: 5})
	if err != nil || len(got) != 1 || got[0].JID != "a@log.example" {
		t.Errorf("Log(before) = %+v, %v", got, err)
	}
	if n, err := r.PurgeLog(ctx, base.Add(90*time.Second)); err != nil || n != 2 {
		t.Errorf("PurgeLog = %d, %v; want 2", n, err)
	}
	got, err = r.Log(ctx, store.RegistrationLogQuery{})
	if err != nil || len(got) != 1 {
		t.Errorf("Log after purge = %+v, %v", got, err)
	}
}

func testRegThrottle(t *testing.T, s store.Store) {
	ctx := t.Context()
	r := s.Registration()
	base := time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC)
	in := []store.ThrottleEntry{
		{Key: "refused/ip/192.0.2.1", Times: []time.Time{base, base.Add(time.Second)}},
		{Key: "refused/v4/192.0.2.0/24", Times: []time.Time{base.Add(time.Hour)}},
	}
	if err := r.PutThrottle(ctx, in); err != nil {
		t.Fatal(err)
	}
	got, err := r.Throttle(ctx)
	if err != nil || len(got) != 2 || got[0].Key != in[0].Key || len(got[0].Times) != 2 || !sameTime(got[0].Times[1], base.Add(time.Second)) {
		t.Fatalf("Throttle = %+v, %v", got, err)
	}
	// Replacing and removing.
	if err := r.PutThrottle(ctx, []store.ThrottleEntry{{Key: in[0].Key, Times: []time.Time{base.Add(2 * time.Hour)}}, {Key: in[1].Key}}); err != nil {
		t.Fatal(err)
	}
	got, err = r.Throttle(ctx)
	if err != nil || len(got) != 1 || len(got[0].Times) != 1 {
		t.Fatalf("Throttle after replace = %+v, %v", got, err)
	}
	if n, err := r.PurgeThrottle(ctx, base.Add(3*time.Hour)); err != nil || n != 1 {
		t.Errorf("PurgeThrottle = %d, %v; want 1", n, err)
	}
}
