package storetest

import (
	"errors"
	"sync"
	"testing"
	"time"

	"stoa.im/stoa/internal/store"
)

// testInvites covers store.Invites and store.Nonces.
func testInvites(t *testing.T, s store.Store) {
	ctx := t.Context()
	mustCreate(t, s, "romeo@inv.example", "admin@inv.example")
	now := time.Date(2030, 5, 6, 7, 8, 9, 123456000, time.UTC)
	inv := s.Invites()

	contact := store.Invite{
		Token: "tok-contact", Kind: store.InviteContact, Host: "inv.example", Creator: "romeo@inv.example",
		AllowRegister: true, Subscribe: true, Note: "for juliet",
		Created: now, Expires: now.Add(time.Hour), MaxUses: 1, Uses: 7, // Uses is ignored
	}
	account := store.Invite{
		Token: "tok-account", Kind: store.InviteAccount, Host: "inv.example",
		JID: "juliet@inv.example", AllowRegister: true,
		Created: now.Add(time.Second), Expires: now.Add(2 * time.Hour), MaxUses: 2,
	}
	reset := store.Invite{
		Token: "tok-reset", Kind: store.InviteReset, Host: "inv.example", Creator: "admin@inv.example",
		JID: "romeo@inv.example", Created: now.Add(2 * time.Second), Expires: now.Add(time.Minute), MaxUses: 1,
	}
	for _, i := range []store.Invite{contact, account, reset} {
		if err := inv.Create(ctx, i); err != nil {
			t.Fatalf("Create(%s): %v", i.Token, err)
		}
	}
	wantErr(t, "Create(same token)", inv.Create(ctx, contact), store.ErrExists)
	orphan := contact
	orphan.Token, orphan.Creator = "tok-orphan", "nobody@inv.example"
	wantErr(t, "Create(creator without account)", inv.Create(ctx, orphan), store.ErrNotFound)
	bad := contact
	bad.Token, bad.Kind = "tok-bad", "party"
	if err := inv.Create(ctx, bad); err == nil {
		t.Errorf("Create(unknown kind) succeeded")
	}

	got, err := inv.Get(ctx, "tok-contact")
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got.Kind != store.InviteContact || got.Host != "inv.example" || got.Creator != "romeo@inv.example" ||
		!got.AllowRegister || !got.Subscribe || got.Note != "for juliet" || got.MaxUses != 1 || got.Uses != 0 ||
		!sameTime(got.Created, now) || !sameTime(got.Expires, now.Add(time.Hour)) {
		t.Errorf("Get = %+v", got)
	}
	if got, err := inv.Get(ctx, "tok-account"); err != nil || got.Creator != "" || got.JID != "juliet@inv.example" {
		t.Errorf("Get(account) = %+v, %v; want no creator and the reserved JID", got, err)
	}
	_, err = inv.Get(ctx, "tok-nope")
	wantErr(t, "Get(unknown)", err, store.ErrNotFound)

	// Reserved: only valid account invites reserve a JID.
	if r, err := inv.Reserved(ctx, "juliet@inv.example", now); err != nil || r.Token != "tok-account" {
		t.Errorf("Reserved(juliet) = %+v, %v", r, err)
	}
	_, err = inv.Reserved(ctx, "romeo@inv.example", now) // a reset invite reserves nothing
	wantErr(t, "Reserved(romeo)", err, store.ErrNotFound)
	_, err = inv.Reserved(ctx, "juliet@inv.example", now.Add(3*time.Hour))
	wantErr(t, "Reserved(after expiry)", err, store.ErrNotFound)

	// List: valid invites of the host, oldest first.
	list, err := inv.List(ctx, "inv.example", now)
	if err != nil || len(list) != 3 || list[0].Token != "tok-contact" || list[2].Token != "tok-reset" {
		t.Errorf("List = %+v, %v; want the three invites oldest first", list, err)
	}
	if list, err := inv.List(ctx, "inv.example", now.Add(90*time.Minute)); err != nil || len(list) != 1 || list[0].Token != "tok-account" {
		t.Errorf("List(later) = %+v, %v; want only tok-account", list, err)
	}
	if list, err := inv.List(ctx, "other.example", now); err != nil || len(list) != 0 {
		t.Errorf("List(other host) = %+v, %v; want none", list, err)
	}

	// Use: counted once per use, refused when used up or expired.
	u, err := inv.Use(ctx, "tok-account", now)
	if err != nil || u.Uses != 1 || !u.Valid(now) {
		t.Errorf("Use 1 = %+v, %v", u, err)
	}
	u, err = inv.Use(ctx, "tok-account", now)
	if err != nil || u.Uses != 2 || u.Valid(now) {
		t.Errorf("Use 2 = %+v, %v; want 2 uses, used up", u, err)
	}
	_, err = inv.Use(ctx, "tok-account", now)
	wantErr(t, "Use(used up)", err, store.ErrNotFound)
	_, err = inv.Reserved(ctx, "juliet@inv.example", now)
	wantErr(t, "Reserved(used up)", err, store.ErrNotFound)
	_, err = inv.Use(ctx, "tok-reset", now.Add(time.Minute)) // expires is exclusive
	wantErr(t, "Use(expired)", err, store.ErrNotFound)
	_, err = inv.Use(ctx, "tok-nope", now)
	wantErr(t, "Use(unknown)", err, store.ErrNotFound)
	if got, err := inv.Get(ctx, "tok-account"); err != nil || got.Uses != 2 {
		t.Errorf("Get(used up) = %+v, %v; want it kept with 2 uses", got, err)
	}
	// Release gives one use back; never below zero.
	if err := inv.Release(ctx, "tok-account"); err != nil {
		t.Errorf("Release: %v", err)
	}
	if u, err := inv.Use(ctx, "tok-account", now); err != nil || u.Uses != 2 {
		t.Errorf("Use after Release = %+v, %v; want 2 uses", u, err)
	}
	if err := inv.Release(ctx, "tok-nope"); err != nil {
		t.Errorf("Release(unknown): %v", err)
	}
	if err := inv.Release(ctx, "tok-contact"); err != nil {
		t.Errorf("Release(unused): %v", err)
	}
	if got, err := inv.Get(ctx, "tok-contact"); err != nil || got.Uses != 0 {
		t.Errorf("Release of an unused invite: %+v, %v; want 0 uses", got, err)
	}

	// Concurrent uses of a single-use invite: exactly one wins.
	single := store.Invite{Token: "tok-race", Kind: store.InviteAccount, Host: "inv.example",
		AllowRegister: true, Created: now, Expires: now.Add(time.Hour), MaxUses: 1}
	if err := inv.Create(ctx, single); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 8 {
		wg.Go(func() {
			_, err := inv.Use(ctx, "tok-race", now)
			switch {
			case err == nil:
				mu.Lock()
				wins++
				mu.Unlock()
			case !errors.Is(err, store.ErrNotFound):
				t.Errorf("concurrent Use: %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Errorf("%d concurrent uses of a single-use invite succeeded, want 1", wins)
	}

	// CountCreated: by creator and creation time, used or not.
	if n, err := inv.CountCreated(ctx, "romeo@inv.example", now); err != nil || n != 1 {
		t.Errorf("CountCreated(romeo) = %d, %v; want 1", n, err)
	}
	if n, err := inv.CountCreated(ctx, "romeo@inv.example", now.Add(time.Second)); err != nil || n != 0 {
		t.Errorf("CountCreated(romeo, later) = %d, %v; want 0", n, err)
	}

	// Purge: invites that expired before the given time go.
	n, err := inv.Purge(ctx, now.Add(90*time.Minute))
	if err != nil || n != 3 { // contact, reset, race
		t.Errorf("Purge = %d, %v; want 3", n, err)
	}
	if _, err := inv.Get(ctx, "tok-account"); err != nil {
		t.Errorf("Purge removed an invite that had not expired: %v", err)
	}

	// Deleting the creator's account deletes its invites.
	if err := inv.Create(ctx, contact); err != nil {
		t.Fatal(err)
	}
	if err := s.Accounts().Delete(ctx, "romeo@inv.example"); err != nil {
		t.Fatal(err)
	}
	_, err = inv.Get(ctx, "tok-contact")
	wantErr(t, "Get(invite of a deleted creator)", err, store.ErrNotFound)
	if err := inv.Delete(ctx, "tok-account"); err != nil {
		t.Errorf("Delete: %v", err)
	}
	if err := inv.Delete(ctx, "tok-account"); err != nil {
		t.Errorf("Delete(absent): %v", err)
	}
	_, err = inv.Get(ctx, "tok-account")
	wantErr(t, "Get(deleted)", err, store.ErrNotFound)

	// Nonces: each key once until purged after it expired.
	nc := s.Nonces()
	if ok, err := nc.Use(ctx, "pow:abc", now.Add(time.Minute)); err != nil || !ok {
		t.Errorf("Nonces.Use(first) = %v, %v; want true", ok, err)
	}
	if ok, err := nc.Use(ctx, "pow:abc", now.Add(time.Minute)); err != nil || ok {
		t.Errorf("Nonces.Use(replay) = %v, %v; want false", ok, err)
	}
	if ok, err := nc.Use(ctx, "pow:def", now.Add(time.Hour)); err != nil || !ok {
		t.Errorf("Nonces.Use(other) = %v, %v; want true", ok, err)
	}
	if n, err := nc.Purge(ctx, now.Add(2*time.Minute)); err != nil || n != 1 {
		t.Errorf("Nonces.Purge = %d, %v; want 1", n, err)
	}
	if ok, err := nc.Use(ctx, "pow:def", now.Add(time.Hour)); err != nil || ok {
		t.Errorf("Nonces.Use(unexpired replay after purge) = %v, %v; want false", ok, err)
	}
}
