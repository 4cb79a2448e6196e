package c2s

import (
	"sync"
	"testing"
	"time"

	sxml "stoa.im/stoa/internal/xmpp/xml"
)

// BenchmarkSMBookkeeping measures what stream management adds to sending
// one stanza to a client: under the link's lock, number it and keep it
// (with its size and time) until the client acknowledges, count it for
// the <r/> policy, and drop it again when an <a/> covers it (here every 5
// stanzas, as request_every asks). Serializing and writing the stanza
// cost the same with or without stream management and are not included.
//
//	go test -run '^$' -bench BenchmarkSMBookkeeping -benchmem ./internal/c2s
func BenchmarkSMBookkeeping(b *testing.B) {
	msg := parseEl(b, `<message from='bob@localhost/pc' to='alice@localhost/phone' type='chat' id='m1'><body>Hello, how are you doing today?</body></message>`)
	sm := &smState{r: sxml.New(nsSM, "r")}
	var mu sync.Mutex
	b.ReportAllocs()
	for i := range b.N {
		mu.Lock()
		if !sm.add(msg, time.Now(), 1000, 1<<20) {
			b.Fatal("queue full")
		}
		sm.sentOne(5)
		mu.Unlock()
		if i%5 == 4 {
			mu.Lock()
			sm.ack(sm.sent)
			mu.Unlock()
		}
	}
}
