package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"stoa.im/stoa/internal/store"
)

// archiveTests returns the message archive subtests, run by Run. Each
// uses its own domain and its own years, because NewID only goes forward.
func archiveTests() []struct {
	name string
	fn   func(t *testing.T, s store.Store)
} {
	return []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Archive/IDs", testArchiveIDs},
		{"Archive/AppendQuery", testArchiveAppendQuery},
		{"Archive/Paging", testArchivePaging},
		{"Archive/Filters", testArchiveFilters},
		{"Archive/UnknownIDs", testArchiveUnknownIDs},
		{"Archive/NoAccount", testArchiveNoAccount},
		{"Archive/Quota", testArchiveQuota},
		{"Archive/Prefs", testArchivePrefs},
		{"Archive/DeletedWithAccount", testArchiveDeletedWithAccount},
		{"Archive/Purge", testArchivePurge},
		{"Archive/DeleteOwner", testArchiveDeleteOwner},
	}
}

// archived is a message appended by a test, as the test knows it.
type archived struct {
	id   string
	with string
	at   time.Time
	body string
}

// appendAt archives one message per time (chronological) for owner and
// returns them.
func appendAt(t *testing.T, s store.Store, owner string, with []string, times ...time.Time) []archived {
	t.Helper()
	var out []archived
	var msgs []store.ArchiveMessage
	for i, at := range times {
		id, got := s.Archive().NewID(at)
		if !got.Equal(at.Truncate(time.Millisecond)) {
			t.Fatalf("NewID(%v) stands for %v", at, got)
		}
		w := with[i%len(with)]
		body := fmt.Sprintf("<message xmlns='jabber:client' to='%s'><body>%s %d</body></message>", w, owner, len(out))
		out = append(out, archived{id: id, with: w, at: got, body: body})
		msgs = append(msgs, store.ArchiveMessage{ID: id, Owner: owner, With: w, Stanza: []byte(body)})
	}
	res, err := s.Archive().Append(t.Context(), msgs, 0)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if res.Stored != len(msgs) || res.NoAccount != 0 || res.Trimmed != 0 {
		t.Fatalf("Append = %+v, want %d stored", res, len(msgs))
	}
	return out
}

// hours returns n times an hour apart from start.
func hours(start time.Time, n int) []time.Time {
	out := make([]time.Time, n)
	for i := range out {
		out[i] = start.Add(time.Duration(i) * time.Hour)
	}
	return out
}

func query(t *testing.T, s store.Store, owner string, q store.ArchiveQuery) store.ArchivePage {
	t.Helper()
	p, err := s.Archive().Query(t.Context(), owner, q)
	if err != nil {
		t.Fatalf("Query(%s, %+v): %v", owner, q, err)
	}
	return p
}

// checkPage compares a page's messages with the expected ones.
func checkPage(t *testing.T, what string, p store.ArchivePage, want []archived) {
	t.Helper()
	if len(p.Messages) != len(want) {
		var got []string
		for _, m := range p.Messages {
			got = append(got, string(m.Stanza))
		}
		t.Fatalf("%s: %d messages %q, want %d", what, len(p.Messages), got, len(want))
	}
	for i, m := range p.Messages {
		w := want[i]
		if m.ID != w.id || m.With != w.with || string(m.Stanza) != w.body || !m.Time.Equal(w.at) || m.Time.Location() != time.UTC {
			t.Errorf("%s: message %d = {%s %s %v %s}, want {%s %s %v %s}", what, i, m.ID, m.With, m.Time, m.Stanza, w.id, w.with, w.at, w.body)
		}
	}
}

func testArchiveIDs(t *testing.T, s store.Store) {
	at := time.Date(2009, 3, 1, 10, 0, 0, 123456789, time.UTC)
	seen := map[string]bool{}
	var prev time.Time
	for i := range 100 {
		id, got := s.Archive().NewID(at)
		if seen[id] {
			t.Fatalf("NewID gave %q twice", id)
		}
		seen[id] = true
		if i == 0 && !got.Equal(at.Truncate(time.Millisecond)) {
			t.Errorf("NewID(%v) stands for %v, want the millisecond", at, got)
		}
		if got.Before(prev) {
			t.Errorf("NewID went back in time: %v after %v", got, prev)
		}
		prev = got
	}
	// The clock stepping back does not make IDs go back.
	_, got := s.Archive().NewID(at.Add(-time.Hour))
	if got.Before(prev) {
		t.Errorf("NewID for an earlier time stands for %v, before the last %v", got, prev)
	}
}

func testArchiveAppendQuery(t *testing.T, s store.Store) {
	const alice = "alice@arch1.example"
	mustCreate(t, s, alice)
	// Three days, several per day, to cross partitions.
	var times []time.Time
	for d := range 3 {
		times = append(times, hours(time.Date(2010, 1, 1+d, 22, 0, 0, 0, time.UTC), 3)...)
	}
	msgs := appendAt(t, s, alice, []string{"bob@arch1.example", "carol@remote.example/phone"}, times...)
	p := query(t, s, alice, store.ArchiveQuery{Max: 100})
	checkPage(t, "all", p, msgs)
	if !p.Complete || p.Count != len(msgs) || p.Index != 0 {
		t.Errorf("complete=%v count=%d index=%d, want true %d 0", p.Complete, p.Count, p.Index, len(msgs))
	}
	for _, m := range p.Messages {
		if m.Owner != alice {
			t.Errorf("Owner = %q", m.Owner)
		}
	}
	// Count only.
	p = query(t, s, alice, store.ArchiveQuery{Max: 0})
	if len(p.Messages) != 0 || p.Count != len(msgs) {
		t.Errorf("Max 0: %d messages, count %d; want none and %d", len(p.Messages), p.Count, len(msgs))
	}
	// An empty archive and an account that never archived.
	const bob = "bob@arch1.example"
	mustCreate(t, s, bob)
	p = query(t, s, bob, store.ArchiveQuery{Max: 10})
	if len(p.Messages) != 0 || !p.Complete || p.Count != 0 {
		t.Errorf("empty archive: %+v", p)
	}
}

func testArchivePaging(t *testing.T, s store.Store) {
	const alice = "alice@arch2.example"
	mustCreate(t, s, alice)
	msgs := appendAt(t, s, alice, []string{"bob@arch2.example"}, hours(time.Date(2011, 5, 1, 20, 0, 0, 0, time.UTC), 10)...)

	// Forward: 3, 3, 3, 1.
	var got []archived
	after := ""
	for page := 0; ; page++ {
		p := query(t, s, alice, store.ArchiveQuery{Max: 3, After: after})
		if p.Count != 10 || p.Index != page*3 {
			t.Errorf("page %d: count %d index %d, want 10 and %d", page, p.Count, p.Index, page*3)
		}
		checkPage(t, fmt.Sprintf("forward page %d", page), p, msgs[page*3:min(10, page*3+3)])
		got = append(got, msgs[page*3:min(10, page*3+3)]...)
		if p.Complete != (page == 3) {
			t.Fatalf("page %d: complete = %v", page, p.Complete)
		}
		if p.Complete {
			break
		}
		after = p.Messages[len(p.Messages)-1].ID
	}
	if len(got) != len(msgs) {
		t.Errorf("forward paging returned %d messages in all, want %d", len(got), len(msgs))
	}
	// Backward from the end: the last page first.
	p := query(t, s, alice, store.ArchiveQuery{Max: 4, Last: true})
	checkPage(t, "last page", p, msgs[6:])
	if p.Complete || p.Index != 6 {
		t.Errorf("last page: complete=%v index=%d, want false 6", p.Complete, p.Index)
	}
	p = query(t, s, alice, store.ArchiveQuery{Max: 4, Before: p.Messages[0].ID})
	checkPage(t, "page before", p, msgs[2:6])
	p = query(t, s, alice, store.ArchiveQuery{Max: 4, Before: p.Messages[0].ID})
	checkPage(t, "first page backward", p, msgs[:2])
	if !p.Complete || p.Index != 0 {
		t.Errorf("first page backward: complete=%v index=%d", p.Complete, p.Index)
	}
	// A page that exactly fits is complete.
	p = query(t, s, alice, store.ArchiveQuery{Max: 10})
	if !p.Complete {
		t.Errorf("a page holding everything is not complete")
	}
}

func testArchiveFilters(t *testing.T, s store.Store) {
	const alice = "alice@arch3.example"
	mustCreate(t, s, alice)
	with := []string{"bob@arch3.example/phone", "bob@arch3.example/laptop", "carol@arch3.example", alice}
	start := time.Date(2012, 2, 28, 23, 0, 0, 0, time.UTC)
	msgs := appendAt(t, s, alice, with, hours(start, 12)...)
	pick := func(keep func(i int, m archived) bool) []archived {
		var out []archived
		for i, m := range msgs {
			if keep(i, m) {
				out = append(out, m)
			}
		}
		return out
	}
	cases := []struct {
		name string
		q    store.ArchiveQuery
		want []archived
	}{
		{"with bare", store.ArchiveQuery{With: "bob@arch3.example"}, pick(func(i int, _ archived) bool { return i%4 < 2 })},
		{"with full", store.ArchiveQuery{With: "bob@arch3.example/laptop"}, pick(func(i int, _ archived) bool { return i%4 == 1 })},
		{"with self", store.ArchiveQuery{With: alice}, pick(func(i int, _ archived) bool { return i%4 == 3 })},
		{"with nobody", store.ArchiveQuery{With: "dave@arch3.example"}, nil},
		{"start inclusive", store.ArchiveQuery{Start: msgs[5].at}, msgs[5:]},
		{"end inclusive", store.ArchiveQuery{End: msgs[5].at}, msgs[:6]},
		{"start and end", store.ArchiveQuery{Start: msgs[2].at, End: msgs[4].at}, msgs[2:5]},
		{"start after the millisecond", store.ArchiveQuery{Start: msgs[2].at.Add(time.Microsecond)}, msgs[3:]},
		{"end before", store.ArchiveQuery{End: msgs[0].at.Add(-time.Millisecond)}, nil},
		{"far future", store.ArchiveQuery{Start: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}, nil},
		{"end far future", store.ArchiveQuery{End: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}, msgs},
		{"after-id", store.ArchiveQuery{AfterID: msgs[8].id}, msgs[9:]},
		{"before-id", store.ArchiveQuery{BeforeID: msgs[3].id}, msgs[:3]},
		{"between ids", store.ArchiveQuery{AfterID: msgs[2].id, BeforeID: msgs[6].id}, msgs[3:6]},
		{"ids", store.ArchiveQuery{IDs: []string{msgs[7].id, msgs[1].id}}, []archived{msgs[1], msgs[7]}},
		{"ids and with", store.ArchiveQuery{IDs: []string{msgs[7].id, msgs[1].id}, With: "bob@arch3.example/laptop"}, []archived{msgs[1]}},
		{"with and time", store.ArchiveQuery{With: "carol@arch3.example", Start: msgs[3].at}, []archived{msgs[6], msgs[10]}},
	}
	for _, tc := range cases {
		tc.q.Max = 100
		p := query(t, s, alice, tc.q)
		checkPage(t, tc.name, p, tc.want)
		if p.Count != len(tc.want) || !p.Complete {
			t.Errorf("%s: count %d complete %v, want %d true", tc.name, p.Count, p.Complete, len(tc.want))
		}
	}
	// Paging within a filter: count and index follow the filter.
	p := query(t, s, alice, store.ArchiveQuery{With: "bob@arch3.example", Max: 2, After: msgs[1].id})
	checkPage(t, "with, second page", p, []archived{msgs[4], msgs[5]})
	if p.Count != 6 || p.Index != 2 || p.Complete {
		t.Errorf("with, second page: count %d index %d complete %v, want 6 2 false", p.Count, p.Index, p.Complete)
	}
	p = query(t, s, alice, store.ArchiveQuery{IDs: []string{msgs[1].id, msgs[2].id, msgs[3].id}, Max: 2, Last: true})
	checkPage(t, "ids, last page", p, msgs[2:4])
	if p.Count != 3 || p.Index != 1 || p.Complete {
		t.Errorf("ids, last page: count %d index %d complete %v, want 3 1 false", p.Count, p.Index, p.Complete)
	}
}

func testArchiveUnknownIDs(t *testing.T, s store.Store) {
	const alice, bob = "alice@arch4.example", "bob@arch4.example"
	mustCreate(t, s, alice, bob)
	start := time.Date(2013, 1, 1, 0, 0, 0, 0, time.UTC)
	a := appendAt(t, s, alice, []string{bob}, hours(start, 2)...)
	b := appendAt(t, s, bob, []string{alice}, hours(start.Add(2*time.Hour), 2)...)
	for _, id := range []string{"", "nope", "AAAAAAAAAAAAAAAAAAAAAA", b[0].id} {
		for _, q := range []store.ArchiveQuery{
			{AfterID: id}, {BeforeID: id}, {IDs: []string{a[0].id, id}}, {After: id}, {Before: id},
		} {
			if id == "" && q.IDs == nil {
				continue // empty means absent
			}
			q.Max = 10
			_, err := s.Archive().Query(t.Context(), alice, q)
			wantErr(t, fmt.Sprintf("Query(%+v)", q), err, store.ErrNotFound)
		}
	}
	// An ID of a message already purged is unknown too.
	if _, _, err := s.Archive().Purge(t.Context(), store.ArchivePurge{Owner: alice, Before: a[1].at}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Archive().Query(t.Context(), alice, store.ArchiveQuery{After: a[0].id, Max: 10})
	wantErr(t, "Query after a purged id", err, store.ErrNotFound)
}

func testArchiveNoAccount(t *testing.T, s store.Store) {
	const alice, ghost = "alice@arch5.example", "ghost@arch5.example"
	mustCreate(t, s, alice)
	at := time.Date(2014, 1, 1, 0, 0, 0, 0, time.UTC)
	id1, _ := s.Archive().NewID(at)
	id2, _ := s.Archive().NewID(at)
	res, err := s.Archive().Append(t.Context(), []store.ArchiveMessage{
		{ID: id1, Owner: ghost, With: alice, Stanza: []byte("<message/>")},
		{ID: id2, Owner: alice, With: ghost, Stanza: []byte("<message/>")},
	}, 0)
	if err != nil || res.Stored != 1 || res.NoAccount != 1 {
		t.Fatalf("Append = %+v, %v; want 1 stored and 1 without account", res, err)
	}
	p := query(t, s, ghost, store.ArchiveQuery{Max: 10})
	if len(p.Messages) != 0 || p.Count != 0 {
		t.Errorf("archive of a missing account: %+v", p)
	}
	// A made-up ID is refused before anything is written.
	if _, err := s.Archive().Append(t.Context(), []store.ArchiveMessage{{ID: "made-up", Owner: alice}}, 0); err == nil {
		t.Error("Append with a made-up ID succeeded")
	}
}

func testArchiveQuota(t *testing.T, s store.Store) {
	const alice = "alice@arch6.example"
	mustCreate(t, s, alice)
	start := time.Date(2015, 6, 1, 22, 0, 0, 0, time.UTC)
	msgs := appendAt(t, s, alice, []string{"bob@arch6.example"}, hours(start, 5)...)
	// Three more over two days with a quota of 4: the four newest stay.
	var batch []store.ArchiveMessage
	for _, at := range hours(start.Add(5*time.Hour), 3) {
		id, got := s.Archive().NewID(at)
		body := fmt.Sprintf("<message xmlns='jabber:client'><body>q%d</body></message>", len(msgs))
		msgs = append(msgs, archived{id: id, with: "bob@arch6.example", at: got, body: body})
		batch = append(batch, store.ArchiveMessage{ID: id, Owner: alice, With: "bob@arch6.example", Stanza: []byte(body)})
	}
	res, err := s.Archive().Append(t.Context(), batch, 4)
	if err != nil || res.Stored != 3 || res.Trimmed != 4 {
		t.Fatalf("Append = %+v, %v; want 3 stored, 4 trimmed", res, err)
	}
	p := query(t, s, alice, store.ArchiveQuery{Max: 100})
	checkPage(t, "after trimming", p, msgs[4:])
	if p.Count != 4 {
		t.Errorf("count = %d, want 4", p.Count)
	}
}

func testArchivePrefs(t *testing.T, s store.Store) {
	ctx := t.Context()
	const alice = "alice@arch7.example"
	mustCreate(t, s, alice)
	p, err := s.Archive().Prefs(ctx, alice)
	if err != nil || p.Default != "" || len(p.Always) != 0 || len(p.Never) != 0 {
		t.Fatalf("Prefs of a new account = %+v, %v; want zero", p, err)
	}
	want := store.ArchivePrefs{Default: store.PolicyNever, Always: []string{"bob@x.example", "carol@x.example/phone"}, Never: []string{"spam.example"}}
	if err := s.Archive().SetPrefs(ctx, alice, want); err != nil {
		t.Fatal(err)
	}
	p, err = s.Archive().Prefs(ctx, alice)
	if err != nil || p.Default != want.Default || !slices.Equal(p.Always, want.Always) || !slices.Equal(p.Never, want.Never) {
		t.Errorf("Prefs = %+v, %v; want %+v", p, err, want)
	}
	// Replaced, not merged; "" is the server's default.
	if err := s.Archive().SetPrefs(ctx, alice, store.ArchivePrefs{}); err != nil {
		t.Fatal(err)
	}
	p, err = s.Archive().Prefs(ctx, alice)
	if err != nil || p.Default != "" || len(p.Always) != 0 || len(p.Never) != 0 {
		t.Errorf("Prefs after reset = %+v, %v", p, err)
	}
	if err := s.Archive().SetPrefs(ctx, alice, store.ArchivePrefs{Default: "sometimes"}); err == nil {
		t.Error("SetPrefs accepted an unknown default")
	}
	err = s.Archive().SetPrefs(ctx, "ghost@arch7.example", store.ArchivePrefs{Default: store.PolicyAlways})
	wantErr(t, "SetPrefs of a missing account", err, store.ErrNotFound)
}

func testArchiveDeletedWithAccount(t *testing.T, s store.Store) {
	ctx := t.Context()
	const alice, bob = "alice@arch8.example", "bob@arch8.example"
	mustCreate(t, s, alice, bob)
	start := time.Date(2016, 3, 1, 0, 0, 0, 0, time.UTC)
	a := appendAt(t, s, alice, []string{bob}, hours(start, 3)...)
	b := appendAt(t, s, bob, []string{alice}, hours(start.Add(3*time.Hour), 2)...)
	if err := s.Archive().SetPrefs(ctx, alice, store.ArchivePrefs{Default: store.PolicyAlways}); err != nil {
		t.Fatal(err)
	}
	if err := s.Accounts().Delete(ctx, alice); err != nil {
		t.Fatal(err)
	}
	// Gone at once, and not back for a new account with the same name.
	mustCreate(t, s, alice)
	p := query(t, s, alice, store.ArchiveQuery{Max: 10})
	if len(p.Messages) != 0 || p.Count != 0 {
		t.Errorf("archive after the account was deleted and created again: %d messages, count %d", len(p.Messages), p.Count)
	}
	if _, err := s.Archive().Query(ctx, alice, store.ArchiveQuery{After: a[0].id, Max: 10}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("an ID of the deleted archive: %v, want ErrNotFound", err)
	}
	if pr, err := s.Archive().Prefs(ctx, alice); err != nil || pr.Default != "" {
		t.Errorf("preferences survived the account: %+v, %v", pr, err)
	}
	// Clearing deleted archives leaves bob's alone.
	for more := true; more; {
		var err error
		if _, more, err = s.Archive().ReapDeleted(ctx, 2); err != nil {
			t.Fatal(err)
		}
	}
	checkPage(t, "bob", query(t, s, bob, store.ArchiveQuery{Max: 10}), b)
	// The new account archives normally.
	c := appendAt(t, s, alice, []string{bob}, start.Add(10*time.Hour))
	checkPage(t, "new alice", query(t, s, alice, store.ArchiveQuery{Max: 10}), c)
}

func testArchivePurge(t *testing.T, s store.Store) {
	ctx := t.Context()
	const alice, bob = "alice@arch9.example", "bob@arch9b.example"
	mustCreate(t, s, alice, bob)
	// Two messages an hour for each, interleaved, over four days of 2001.
	start := time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC)
	var a, b []archived
	for i, at := range hours(start, 96) {
		if i%2 == 0 {
			a = append(a, appendAt(t, s, alice, []string{bob}, at)...)
		} else {
			b = append(b, appendAt(t, s, bob, []string{alice}, at)...)
		}
	}
	purge := func(p store.ArchivePurge) int {
		t.Helper()
		total, calls := 0, 0
		for more := true; more; calls++ {
			if calls > 1000 {
				t.Fatalf("Purge(%+v) keeps saying there is more", p)
			}
			n, m, err := s.Archive().Purge(ctx, p)
			if err != nil {
				t.Fatalf("Purge(%+v): %v", p, err)
			}
			if n > p.Limit && p.Limit > 0 {
				// Dropping a whole partition may exceed the limit; rows
				// deleted one by one may not. Partition drops only happen
				// with neither owner nor domain.
				if p.Owner != "" || p.Domain != "" {
					t.Errorf("Purge(%+v) deleted %d rows in one call", p, n)
				}
			}
			total += n
			more = m
		}
		return total
	}
	// One domain, to the middle of day 2: alice loses 18 of her 48.
	cut := start.Add(36 * time.Hour)
	if n := purge(store.ArchivePurge{Domain: "arch9.example", Before: cut, Limit: 5}); n != 18 {
		t.Errorf("domain purge removed %d, want 18", n)
	}
	checkPage(t, "alice after domain purge", query(t, s, alice, store.ArchiveQuery{Max: 100}), a[18:])
	checkPage(t, "bob after domain purge", query(t, s, bob, store.ArchiveQuery{Max: 100}), b)
	// Everyone, to the middle of day 3: whole days and a partial one.
	cut = start.Add(60 * time.Hour)
	if n := purge(store.ArchivePurge{Before: cut, Limit: 4}); n != 12+30 {
		t.Errorf("purge removed %d, want %d", n, 12+30)
	}
	pa := query(t, s, alice, store.ArchiveQuery{Max: 100})
	checkPage(t, "alice after purge", pa, a[30:])
	checkPage(t, "bob after purge", query(t, s, bob, store.ArchiveQuery{Max: 100}), b[30:])
	if pa.Count != 18 {
		t.Errorf("alice's count = %d, want 18", pa.Count)
	}
	// Nothing left to do.
	if n, more, err := s.Archive().Purge(ctx, store.ArchivePurge{Before: cut}); n != 0 || more || err != nil {
		t.Errorf("second purge = %d, %v, %v; want 0 false nil", n, more, err)
	}
	// One owner.
	if n := purge(store.ArchivePurge{Owner: bob, Before: start.Add(90 * time.Hour), Limit: 3}); n != 15 {
		t.Errorf("owner purge removed %d, want 15", n)
	}
	checkPage(t, "bob after owner purge", query(t, s, bob, store.ArchiveQuery{Max: 100}), b[45:])
	checkPage(t, "alice after bob's purge", query(t, s, alice, store.ArchiveQuery{Max: 100}), a[30:])
}

func testArchiveDeleteOwner(t *testing.T, s store.Store) {
	ctx := t.Context()
	const alice, bob = "alice@arch10.example", "bob@arch10.example"
	mustCreate(t, s, alice, bob)
	start := time.Date(2017, 1, 1, 0, 0, 0, 0, time.UTC)
	appendAt(t, s, alice, []string{bob}, hours(start, 50)...)
	b := appendAt(t, s, bob, []string{alice}, hours(start.Add(50*time.Hour), 3)...)
	n, err := s.Archive().DeleteOwner(ctx, alice)
	if err != nil || n != 50 {
		t.Fatalf("DeleteOwner = %d, %v; want 50", n, err)
	}
	p := query(t, s, alice, store.ArchiveQuery{Max: 100})
	if len(p.Messages) != 0 || p.Count != 0 {
		t.Errorf("after DeleteOwner: %d messages, count %d", len(p.Messages), p.Count)
	}
	checkPage(t, "bob", query(t, s, bob, store.ArchiveQuery{Max: 100}), b)
	if n, err := s.Archive().DeleteOwner(ctx, "ghost@arch10.example"); err != nil || n != 0 {
		t.Errorf("DeleteOwner of a missing account = %d, %v", n, err)
	}
}
