package e2e

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	goxmpp "github.com/xmppo/go-xmpp"
	"mellium.im/xmpp/stanza"
)

// limitsConfig turns the loopback exemption off (every test client
// connects from 127.0.0.1) and sets the [limits] tables given.
func limitsConfig(tables string) string {
	return "[limits]\nexempt_networks = []\n" + tables
}

// sample is one reading of a metric with the wall-clock interval it was
// taken in.
type sample struct {
	start, end time.Time
	v          float64
}

// TestBandwidthLimit: a mellium client sends large messages to itself as
// fast as it can; the bytes the server reads from its connection stay
// within rate × time + burst at every reading, the connection is
// throttled, and once it has been idle for the burst time a burst of
// nearly that size passes without any wait.
func TestBandwidthLimit(t *testing.T) {
	t.Parallel()
	const rate, burst = 8000.0, 8000.0 // "8kb/s", "1s"
	srv := startServer(t, serverOptions{extra: limitsConfig("[limits.bandwidth.c2s]\nrate = \"8kb/s\"\nburst = \"1s\"\n")})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	srv.addUser(t, "big", "big password")
	const readBytes = `stoa_c2s_limited_bytes_total{dir="read"}`
	const waits = `stoa_c2s_throttled_total{dir="read"}`
	connected := time.Now() // before the connection exists: the bucket starts full after this
	c := mustMellium(ctx, t, melliumLogin{addr: srv.direct, direct: true, local: "big", password: "big password"})
	me := c.jid.Bare().String()

	const n, size = 40, 1600 // 64 KB: eight seconds' worth at the rate
	body := func(i int) string { return fmt.Sprintf("%03d %s", i, strings.Repeat("x", size)) }
	sent := make(chan error, 1)
	go func() {
		for i := range n {
			if err := c.sendMessage(ctx, c.jid.String(), body(i)); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()
	var samples []sample
	check := func(s sample) {
		t.Helper()
		if limit := burst + rate*s.end.Sub(connected).Seconds(); s.v > limit {
			t.Errorf("the server read %.0f bytes within %.2fs of connecting: more than burst + rate × time = %.0f", s.v, s.end.Sub(connected).Seconds(), limit)
		}
	}
	received := 0
	for received < n {
		st := time.Now()
		v := srv.metric(t, readBytes)
		s := sample{start: st, end: time.Now(), v: v}
		check(s)
		samples = append(samples, s)
		for received < n {
			wctx, wcancel := context.WithTimeout(ctx, 250*time.Millisecond)
			_, err := c.wait(wctx, "an echo", isMessage(me, body(received)))
			wcancel()
			if err != nil {
				if ctx.Err() != nil {
					t.Fatalf("the echoes stopped at %d of %d: %v", received, n, err)
				}
				break
			}
			received++
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	end := sample{start: time.Now(), v: srv.metric(t, readBytes)}
	end.end = time.Now()
	check(end)
	samples = append(samples, end)
	// Every pair of readings, not only from the start.
	for i := range samples {
		for j := i + 1; j < len(samples); j++ {
			if d := samples[j].v - samples[i].v; d > burst+rate*samples[j].end.Sub(samples[i].start).Seconds() {
				t.Errorf("%.0f bytes read between readings %d and %d (%.2fs apart): more than the rate allows", d, i, j, samples[j].end.Sub(samples[i].start).Seconds())
			}
		}
	}
	first, last := samples[0], samples[len(samples)-1]
	t.Logf("read %.0f bytes in %.2fs while flooding: %.0f B/s (limit %.0f B/s, burst %.0f B); %d readings",
		last.v-first.v, last.end.Sub(first.start).Seconds(), (last.v-first.v)/last.end.Sub(first.start).Seconds(), rate, burst, len(samples))
	if w := srv.metric(t, waits); w == 0 {
		t.Fatal("the flooding connection was never held back")
	}

	// Idle for the burst time (the subject of the test, not a
	// synchronisation): the bucket is full again, and 5 KB go through
	// without a single wait.
	time.Sleep(1500 * time.Millisecond)
	before := srv.metric(t, waits)
	burstBody := strings.Repeat("y", 5000)
	c.must(t, c.sendMessage(ctx, c.jid.String(), burstBody))
	c.mustWait(ctx, t, "the burst's echo", isMessage(me, burstBody))
	if after := srv.metric(t, waits); after != before {
		t.Errorf("a 5 KB burst after idling waited %v times; an idle connection must earn its burst back", after-before)
	}
	if !srv.logHas("connection throttled", "policy=bandwidth", "reason=c2s_read") {
		t.Error("no log line for the throttled connection")
	}
}

// TestStanzaRateLimit: with action refuse, the message beyond the
// session's burst is refused with policy-violation and a text (mellium);
// with the default action (delay) a burst beyond the limit arrives
// complete and the delays are counted (go-xmpp).
func TestStanzaRateLimit(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOptions{extra: limitsConfig(`[limits.stanzas]
action = "refuse"
[limits.stanzas.session]
message = { rate = "1/h", burst = 3 }
`)})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	srv.addUser(t, "fast", "fast password")
	srv.addUser(t, "peer", "peer password")
	peer := mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "peer", password: "peer password"})
	peer.must(t, peer.sendPresence(ctx, "", stanza.AvailablePresence))
	f := mustMellium(ctx, t, melliumLogin{addr: srv.direct, direct: true, local: "fast", password: "fast password"})
	for i := range 4 {
		f.must(t, f.sendMessage(ctx, peer.jid.String(), fmt.Sprintf("m%d", i)))
	}
	e := f.mustWait(ctx, t, "the refusal", func(st inStanza) bool { return st.XMLName.Local == "message" && st.Type == "error" })
	if !strings.Contains(e.Raw, "policy-violation") || !strings.Contains(e.Raw, "too fast") || !strings.Contains(e.Raw, "m3") {
		t.Errorf("refusal of the 4th message: %s", e.Raw)
	}
	for i := range 3 {
		peer.mustWait(ctx, t, "message", isMessage(f.jid.Bare().String(), fmt.Sprintf("m%d", i)))
	}
	if n := srv.metric(t, `stoa_limits_decisions_total{action="refused",policy="stanza_rate",reason="stanza_rate_session_message"}`); n != 1 {
		t.Errorf("refusals counted: %v", n)
	}
	if n := srv.metric(t, `stoa_policy_denied_total{policy="stanza_rate_session_message"}`); n != 1 {
		t.Errorf("stoa_policy_denied_total: %v", n)
	}
	if !srv.logHas("stanza refused", "policy=stanza_rate_session_message") {
		t.Error("no log line for the refusal")
	}
}

// TestUnsolicitedLimit: an account may start talking to two strangers an
// hour (mellium); the third is refused with a text; a contact and a
// stranger who wrote first are free; subscription requests have their
// own budget (the one to the contact counted: a request is unsolicited
// until answered); a restricted account gets the stricter one at once.
func TestUnsolicitedLimit(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOptions{extra: limitsConfig(`[limits.unsolicited]
messages_per_hour = 2
subscriptions_per_hour = 2
restricted_messages_per_hour = 1
restricted_subscriptions_per_hour = 1
`)})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	for _, u := range []string{"sender", "s1", "s2", "s3", "talker", "friend"} {
		srv.addUser(t, u, u+" password")
	}
	sender := mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "sender", password: "sender password"})
	friend := mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "friend", password: "friend password"})
	runSubscriptionAndChat(ctx, t, sender, friend) // a contact now
	talker := mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "talker", password: "talker password"})
	talker.must(t, talker.sendPresence(ctx, "", stanza.AvailablePresence))
	talker.must(t, talker.sendMessage(ctx, sender.jid.Bare().String(), "hello stranger"))
	sender.mustWait(ctx, t, "the talker's message", isMessage(talker.jid.Bare().String(), "hello stranger"))

	isErr := func(st inStanza) bool { return st.Type == "error" }
	for _, to := range []string{"s1", "s1", "s2", "friend", "talker"} {
		sender.must(t, sender.sendMessage(ctx, to+"@"+domain, "hi "+to))
	}
	sender.barrier(ctx, t, "free")
	if errs := slices.DeleteFunc(sender.seen(), func(st inStanza) bool { return !isErr(st) }); len(errs) != 0 {
		t.Fatalf("refused within the budget: %v", errs)
	}
	sender.must(t, sender.sendMessage(ctx, "s3@"+domain, "hi s3"))
	e := sender.mustWait(ctx, t, "the refusal", isErr)
	if !strings.Contains(e.Raw, "policy-violation") || !strings.Contains(e.Raw, "not your contacts") {
		t.Errorf("the third stranger: %s", e.Raw)
	}
	// The subscription to friend (above) used one of two.
	sender.must(t, sender.sendPresence(ctx, "s1@"+domain, stanza.SubscribePresence))
	sender.must(t, sender.sendPresence(ctx, "s2@"+domain, stanza.SubscribePresence))
	if e := sender.mustWait(ctx, t, "the refused subscription request", isErr); !strings.Contains(e.Raw, "contact requests") {
		t.Errorf("second subscription request: %s", e.Raw)
	}

	// A restricted account: one stranger.
	srv.addUser(t, "newbie", "newbie password")
	nb := mustMellium(ctx, t, melliumLogin{addr: srv.direct, direct: true, local: "newbie", password: "newbie password"})
	if out, err := srv.stoa(ctx, "", "account", "restrict", "newbie@"+domain, "--reason", "new account"); err != nil {
		t.Fatalf("%s %v", out, err)
	}
	nb.must(t, nb.sendMessage(ctx, "s1@"+domain, "hi"))
	nb.must(t, nb.sendMessage(ctx, "s2@"+domain, "hi"))
	if e := nb.mustWait(ctx, t, "the restricted refusal", isErr); !strings.Contains(e.Raw, "restricted") {
		t.Errorf("restricted account's second stranger: %s", e.Raw)
	}
	for _, reason := range []string{"unsolicited_messages", "unsolicited_subscriptions", "unsolicited_messages_restricted"} {
		if n := srv.metric(t, `stoa_limits_decisions_total{action="refused",policy="unsolicited",reason="`+reason+`"}`); n != 1 {
			t.Errorf("%s counted %v times, want 1", reason, n)
		}
	}
}

// TestConnectionLimits: a fourth connection from one address is refused
// with policy-violation and a text (raw streams); a third session of one
// account is refused with a text (mellium) while the first two (go-xmpp,
// mellium) work.
func TestConnectionLimits(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOptions{extra: limitsConfig("[limits.connections]\nper_ip = 4\nsessions_per_account = 2\n")})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	u := srv.addUser(t, "multi", "multi password")
	g1 := mustGox(t, goxLogin{addr: srv.direct, direct: true, user: u, password: "multi password"})
	mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "multi", password: "multi password"})
	if _, err := dialMellium(ctx, t, melliumLogin{addr: srv.direct, direct: true, local: "multi", password: "multi password"}); err == nil {
		t.Error("a third session of the account was bound")
	} else if !strings.Contains(err.Error(), "already has 2 sessions") {
		t.Errorf("third session: %v, want the text of the refusal", err)
	}
	// Open raw streams until one is refused: at most 4 connections from
	// one address (the refused third session's may still be open).
	var refused string
	for i := 0; i < 6 && refused == ""; i++ {
		r, err := dialRaw(ctx, t, srv.direct, true)
		if err != nil {
			t.Fatal(err)
		}
		r.reset()
		if err := r.send(streamHeader); err != nil {
			t.Fatal(err)
		}
		if err := r.readHeader(); err != nil {
			t.Fatal(err)
		}
		el, raw, err := r.next()
		if err != nil {
			t.Fatal(err)
		}
		if el.Name.Local == "error" {
			refused = string(raw)
		}
	}
	if !strings.Contains(refused, "policy-violation") || !strings.Contains(refused, "Too many connections from your address") {
		t.Errorf("connection beyond the limit: %q", refused)
	}
	// The sessions still work.
	if _, err := g1.c.Send(goxmpp.Chat{Remote: u, Type: "chat", Text: "still here"}); err != nil {
		t.Fatal(err)
	}
	if _, err := g1.wait(ctx, "its own message", goxChat(u, "still here")); err != nil {
		t.Fatal(err)
	}
	if n := srv.metric(t, `stoa_limits_decisions_total{action="refused",policy="sessions",reason="sessions_per_account"}`); n != 1 {
		t.Errorf("session refusals counted: %v", n)
	}
	if n := srv.metric(t, `stoa_policy_denied_total{policy="connections_per_ip"}`); n < 1 {
		t.Errorf("connection refusals counted: %v", n)
	}
}

// TestFloodHeldToLimit: one account (go-xmpp) sends 200 messages as fast
// as it can while two other users (mellium) keep chatting. The server
// holds the flood to the account's message rate (20/s after a burst of
// 20) by reading its connection more slowly, loses none of its messages,
// and the chat goes on. Both sides' figures are logged; times are
// reported, not asserted.
func TestFloodHeldToLimit(t *testing.T) {
	t.Parallel()
	srv := startServer(t, serverOptions{extra: limitsConfig(`[limits.stanzas.session]
message = { rate = "20/s", burst = 20 }
[limits.stanzas.account]
message = { rate = "20/s", burst = 20 }
`)})
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	flooder := srv.addUser(t, "flooder", "flood password")
	sink := srv.addUser(t, "sink", "sink password")
	srv.addUser(t, "chat-a", "a password")
	srv.addUser(t, "chat-b", "b password")
	sk := mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "sink", password: "sink password"})
	sk.must(t, sk.sendPresence(ctx, "", stanza.AvailablePresence))
	a := mustMellium(ctx, t, melliumLogin{addr: srv.starttls, local: "chat-a", password: "a password"})
	b := mustMellium(ctx, t, melliumLogin{addr: srv.direct, direct: true, local: "chat-b", password: "b password"})
	for _, m := range []*melliumClient{a, b} {
		m.must(t, m.sendPresence(ctx, "", stanza.AvailablePresence))
	}
	fl := mustGox(t, goxLogin{addr: srv.direct, direct: true, user: flooder, password: "flood password"})

	// The chat: timed rounds of ping and pong until the flood is over,
	// ten a second, so that the chatters stay within their own message
	// rate (the limits apply to them too) and the round trips show what
	// the flood costs them.
	var mu sync.Mutex
	var rtts []time.Duration
	stop := make(chan struct{})
	chatDone := make(chan error, 1)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				chatDone <- nil
				return
			case <-tick.C:
			}
			start := time.Now()
			ping, pong := fmt.Sprintf("ping %d", i), fmt.Sprintf("pong %d", i)
			if err := a.sendMessage(ctx, b.jid.String(), ping); err != nil {
				chatDone <- err
				return
			}
			if _, err := b.wait(ctx, ping, isMessage(a.jid.Bare().String(), ping)); err != nil {
				chatDone <- err
				return
			}
			if err := b.sendMessage(ctx, a.jid.String(), pong); err != nil {
				chatDone <- err
				return
			}
			if _, err := a.wait(ctx, pong, isMessage(b.jid.Bare().String(), pong)); err != nil {
				chatDone <- err
				return
			}
			mu.Lock()
			rtts = append(rtts, time.Since(start))
			mu.Unlock()
		}
	}()

	const n, rate, burst = 200, 20.0, 20.0
	floodStart := time.Now()
	written := make(chan time.Duration, 1)
	go func() {
		for i := range n {
			if _, err := fl.c.Send(goxmpp.Chat{Remote: sink, Type: "chat", Text: fmt.Sprintf("flood %d", i)}); err != nil {
				t.Errorf("flooding: %v", err)
				written <- 0
				return
			}
		}
		written <- time.Since(floodStart)
	}()
	var arrivals []time.Duration
	for i := range n {
		sk.mustWait(ctx, t, fmt.Sprintf("flood message %d", i), isMessage(flooder, fmt.Sprintf("flood %d", i)))
		arrivals = append(arrivals, time.Since(floodStart))
		// At every arrival, the server had taken at most burst + rate × t.
		if limit := burst + rate*arrivals[i].Seconds(); float64(i+1) > limit {
			t.Errorf("%d flood messages delivered %.2fs after the flood began: more than burst + rate × time = %.1f", i+1, arrivals[i].Seconds(), limit)
		}
		sk.mu.Lock()
		sk.backlog = nil
		sk.mu.Unlock()
	}
	close(stop)
	if err := <-chatDone; err != nil {
		t.Fatalf("the chat between two other users broke during the flood: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(rtts) == 0 {
		t.Fatal("the other users could not complete a single chat round during the flood")
	}
	sorted := slices.Clone(rtts)
	slices.Sort(sorted)
	total := arrivals[n-1]
	t.Logf("flooder (go-xmpp): %d messages written to its socket in %v (the kernel buffers them); the server delivered them in %v: %.1f msg/s after the burst (limit %.0f/s, burst %.0f)",
		n, (<-written).Round(time.Millisecond), total.Round(time.Millisecond), float64(n-int(burst))/(total-arrivals[int(burst)-1]).Seconds(), rate, burst)
	t.Logf("chatters (mellium): %d ping-pong rounds meanwhile; round trip min %v, median %v, p90 %v, max %v",
		len(sorted), sorted[0].Round(time.Microsecond), sorted[len(sorted)/2].Round(time.Microsecond),
		sorted[len(sorted)*9/10].Round(time.Microsecond), sorted[len(sorted)-1].Round(time.Microsecond))
	// How many stanzas had to wait depends on how fast the server read
	// the others; that some did is certain.
	d := srv.metric(t, `stoa_limits_decisions_total{action="delayed",policy="stanza_rate",reason="stanza_rate_session_message"}`) +
		srv.metric(t, `stoa_limits_decisions_total{action="delayed",policy="stanza_rate",reason="stanza_rate_account_message"}`)
	if d == 0 {
		t.Error("no delay was counted")
	}
	t.Logf("delays counted: %v of %d messages", d, n)
	if !srv.logHas("stanzas delayed", "policy=stanza_rate", "jid="+flooder) {
		t.Error("no log line for the delays")
	}
}
