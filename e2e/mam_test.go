package e2e

import (
	"context"
	"encoding/xml"
	"fmt"
	"strings"
	"testing"
	"time"

	"mellium.im/xmpp/history"
	"mellium.im/xmpp/stanza"
)

// mamResult is an archive result message a Go client received.
type mamResult struct {
	Result struct {
		QueryID   string `xml:"queryid,attr"`
		ID        string `xml:"id,attr"`
		Forwarded struct {
			Delay struct {
				Stamp string `xml:"stamp,attr"`
			} `xml:"urn:xmpp:delay delay"`
			Message struct {
				From string `xml:"from,attr"`
				To   string `xml:"to,attr"`
				Body string `xml:"body"`
			} `xml:"jabber:client message"`
		} `xml:"urn:xmpp:forward:0 forwarded"`
	} `xml:"urn:xmpp:mam:2 result"`
}

func parseResult(s inStanza) (mamResult, bool) {
	if s.XMLName.Local != "message" || !strings.Contains(s.Raw, "urn:xmpp:mam:2") {
		return mamResult{}, false
	}
	var r mamResult
	if err := xml.Unmarshal([]byte(s.Raw), &r); err != nil || r.Result.ID == "" {
		return mamResult{}, false
	}
	return r, true
}

// melliumResults collects the results of one query.
func melliumResults(ctx context.Context, t *testing.T, c *melliumClient, queryID string, n int) []mamResult {
	t.Helper()
	var out []mamResult
	for len(out) < n {
		st := c.mustWait(ctx, t, fmt.Sprintf("archive result %d of query %s", len(out)+1, queryID), func(s inStanza) bool {
			r, ok := parseResult(s)
			return ok && r.Result.QueryID == queryID
		})
		r, _ := parseResult(st)
		out = append(out, r)
	}
	return out
}

// TestMAM: a mellium client writes to a slixmpp client that is offline;
// slixmpp (its XEP-0313 plugin) gets the messages with stanza-ids, pages
// through its archive and reads its metadata, then answers; mellium (its
// history package) queries its own archive, which holds both directions;
// `stoa mam purge` empties it through the running server.
func TestMAM(t *testing.T) {
	t.Parallel()
	requirePython(t, "slixmpp", "python3-slixmpp")
	srv := startServer(t, serverOptions{extra: "[mam]\ndefault_policy = \"always\"\n"})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	slixJID := srv.addUser(t, "slix", "slix password")
	melJID := srv.addUser(t, "mel", "mel password")

	mel := mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "mel", password: "mel password"})
	mel.must(t, mel.sendPresence(ctx, "", stanza.AvailablePresence))
	const sent = 12
	for i := range sent {
		mel.must(t, mel.sendMessage(ctx, slixJID, fmt.Sprintf("m%02d", i)))
	}

	s := startScript(ctx, t, "slix_mam.py", map[string]any{
		"jid": slixJID, "password": "slix password", "host": "127.0.0.1", "port": portOf(t, srv.starttls),
		"peer": melJID, "expect": sent, "timeout": 90,
	})
	events := s.wait(ctx, t)
	if errs := find(events, "error", nil); len(errs) != 0 || len(find(events, "done", nil)) != 1 {
		t.Fatalf("slixmpp reported %v or did not finish", errs)
	}
	for _, body := range []string{"reply one", "reply two"} {
		mel.mustWait(ctx, t, body, isMessage(slixJID, body))
	}

	// The offline messages came with slix's stanza-ids, which are the
	// archive ids slixmpp then pages through, in order.
	delivered := find(events, "message", func(e event) bool { return bareOf(e.str("frm")) == melJID })
	archived := find(events, "mam", nil)
	if len(delivered) != sent || len(archived) != sent {
		t.Fatalf("slixmpp got %d messages and %d archive results, want %d each", len(delivered), len(archived), sent)
	}
	for i := range sent {
		d, a := delivered[i], archived[i]
		want := fmt.Sprintf("m%02d", i)
		if d.str("body") != want || d.str("by") != slixJID || d.str("stanza_id") == "" {
			t.Errorf("delivered %d: %v, want %s with a stanza-id by %s", i, d, want, slixJID)
		}
		if a.str("body") != want || a.str("id") != d.str("stanza_id") || bareOf(a.str("frm")) != melJID {
			t.Errorf("archived %d: %v, want %s under id %s", i, a, want, d.str("stanza_id"))
		}
	}
	pages := find(events, "page", nil)
	if len(pages) != 3 {
		t.Errorf("slixmpp read %d pages of 5, want 3: %v", len(pages), pages)
	} else if pages[2].str("complete") != "true" || pages[0].str("complete") == "true" || pages[1].str("index") != "5" || pages[0].str("count") != "12" {
		t.Errorf("pages: %v", pages)
	}
	if w := find(events, "with", nil); len(w) != 1 || w[0]["count"] != float64(sent) || w[0].str("complete") != "true" {
		t.Errorf("query with the peer: %v", w)
	}
	if md := find(events, "metadata", nil); len(md) != 1 || md[0].str("start") != archived[0].str("id") || md[0].str("end") != archived[sent-1].str("id") {
		t.Errorf("metadata: %v", md)
	}

	// mellium's own archive: the 12 it sent and the 2 replies.
	res, err := history.Fetch(ctx, history.Query{ID: "all", Limit: 100}, mel.jid.Bare(), mel.s)
	if err != nil {
		t.Fatalf("mellium history.Fetch: %v", err)
	}
	rs := melliumResults(ctx, t, mel, "all", sent+2)
	if !res.Complete || res.Set.Count == nil || *res.Set.Count != sent+2 || res.Set.First.ID != rs[0].Result.ID || res.Set.Last != rs[sent+1].Result.ID {
		t.Errorf("fin: complete=%v set=%+v", res.Complete, res.Set)
	}
	for i, r := range rs {
		m := r.Result.Forwarded.Message
		want := fmt.Sprintf("m%02d", i)
		if i >= sent {
			want = []string{"reply one", "reply two"}[i-sent]
		}
		if m.Body != want || r.Result.Forwarded.Delay.Stamp == "" {
			t.Errorf("mellium's archive %d: %+v, want %q", i, r, want)
		}
	}
	// The last page, backward, through mellium's paging.
	res, err = history.Fetch(ctx, history.Query{ID: "last", Limit: 3, Last: true}, mel.jid.Bare(), mel.s)
	if err != nil {
		t.Fatalf("mellium history.Fetch (last page): %v", err)
	}
	last := melliumResults(ctx, t, mel, "last", 3)
	if res.Complete || last[0].Result.Forwarded.Message.Body != "m11" || last[2].Result.Forwarded.Message.Body != "reply two" {
		t.Errorf("last page: complete=%v, %+v", res.Complete, last)
	}

	// The administrator purges mel's archive through the running server.
	out, err := srv.stoa(ctx, "", "mam", "purge", "--user", melJID)
	if err != nil || !strings.Contains(out, fmt.Sprintf("removed %d", sent+2)) || strings.Contains(out, "not running") {
		t.Fatalf("stoa mam purge --user: %v: %s", err, out)
	}
	res, err = history.Fetch(ctx, history.Query{ID: "after-purge", Limit: 100}, mel.jid.Bare(), mel.s)
	if err != nil || res.Set.Count == nil || *res.Set.Count != 0 || !res.Complete {
		t.Errorf("after the purge: %+v, %v", res, err)
	}
	out, err = srv.stoa(ctx, "", "mam", "purge", "--older-than", "1d")
	if err != nil || !strings.Contains(out, "removed 0 ") {
		t.Errorf("stoa mam purge --older-than 1d: %v: %s", err, out)
	}
	if !srv.logHas("archive purged by an administrator", "removed=14") {
		t.Errorf("the purge is not in the server's log")
	}
}
