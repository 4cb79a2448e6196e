package xml

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"
)

// cpuMeter reports the process CPU time (user + system, GC workers
// included) per op and the throughput it implies. Unlike ns/op it does not
// count time spent waiting for a CPU, so it stays meaningful on a busy
// machine.
type cpuMeter struct{ start time.Duration }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU(b *testing.B) *cpuMeter {
	b.ResetTimer()
	return &cpuMeter{start: cpuTime()}
}

func (m *cpuMeter) stop(b *testing.B, bytesPerOp int64) {
	b.StopTimer()
	ns := float64(cpuTime()-m.start) / float64(b.N)
	b.ReportMetric(ns, "cpu-ns/op")
	if bytesPerOp > 0 && ns > 0 {
		b.ReportMetric(float64(bytesPerOp)/ns*1e3, "cpu-MB/s")
	}
}

// cycleReader returns head once, then body over and over, at most 4096
// bytes per Read (like a socket).
type cycleReader struct {
	head, body []byte
	off        int
}

func (r *cycleReader) Read(p []byte) (int, error) {
	p = p[:min(len(p), 4096)]
	if len(r.head) > 0 {
		n := copy(p, r.head)
		r.head = r.head[n:]
		return n, nil
	}
	n := copy(p, r.body[r.off:])
	r.off += n
	if r.off == len(r.body) {
		r.off = 0
	}
	return n, nil
}

const benchStanzas = 10000

// chatStream returns 10k chat messages (~355 bytes each) with a whitespace
// keepalive every 50 stanzas, and the average bytes per stanza.
func chatStream() ([]byte, int64) {
	var b strings.Builder
	for i := range benchStanzas {
		b.WriteString(chatStanza(i))
		if i%50 == 49 {
			b.WriteByte(' ')
		}
	}
	return []byte(b.String()), int64(b.Len() / benchStanzas)
}

// BenchmarkDecodeChat measures Decoder.Next on a chat stream; one op is
// one stanza.
func BenchmarkDecodeChat(b *testing.B) {
	body, per := chatStream()
	d := NewDecoder(&cycleReader{head: []byte(testHeader), body: body}, DefaultLimits())
	if _, err := d.Header(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(per)
	b.ReportAllocs()
	m := startCPU(b)
	for range b.N {
		if _, err := d.Next(); err != nil {
			b.Fatal(err)
		}
	}
	m.stop(b, per)
}

// stanzaReader returns head, then the stanzas over and over, one stanza
// per Read at most (a client sending one stanza per packet).
type stanzaReader struct {
	head    []byte
	stanzas [][]byte
	i, off  int
}

func (r *stanzaReader) Read(p []byte) (int, error) {
	if len(r.head) > 0 {
		n := copy(p, r.head)
		r.head = r.head[n:]
		return n, nil
	}
	s := r.stanzas[r.i]
	n := copy(p, s[r.off:])
	r.off += n
	if r.off == len(s) {
		r.off = 0
		r.i = (r.i + 1) % len(r.stanzas)
	}
	return n, nil
}

// BenchmarkDecodeChatIdle measures what calling Idle after every stanza
// costs when each stanza arrives in its own Read (so Idle always releases
// the buffer): "busy" never calls Idle, "idle" does, "idle-pool" does with
// a BufferPool.
func BenchmarkDecodeChatIdle(b *testing.B) {
	var stanzas [][]byte
	total := 0
	for i := range 1000 {
		stanzas = append(stanzas, []byte(chatStanza(i)))
		total += len(stanzas[i])
	}
	for _, mode := range []string{"busy", "idle", "idle-pool"} {
		b.Run(mode, func(b *testing.B) {
			d := NewDecoder(&stanzaReader{head: []byte(testHeader), stanzas: stanzas}, DefaultLimits())
			if mode == "idle-pool" {
				d.SetBufferPool(new(BufferPool))
			}
			if _, err := d.Header(); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(total / len(stanzas)))
			b.ReportAllocs()
			m := startCPU(b)
			for range b.N {
				if _, err := d.Next(); err != nil {
					b.Fatal(err)
				}
				if mode != "busy" {
					d.Idle()
				}
			}
			m.stop(b, int64(total/len(stanzas)))
		})
	}
}

// BenchmarkEncodingXMLChat is the baseline: encoding/xml Token() building
// the same trees (names resolved, xmlns attributes dropped, same text
// rules) from the same stream.
func BenchmarkEncodingXMLChat(b *testing.B) {
	body, per := chatStream()
	st := newStdTree(&cycleReader{head: []byte(testHeader), body: body})
	b.SetBytes(per)
	b.ReportAllocs()
	m := startCPU(b)
	for range b.N {
		if _, err := st.next(); err != nil {
			b.Fatal(err)
		}
	}
	m.stop(b, per)
}

// BenchmarkEncode serializes a chat stanza into a reused buffer.
func BenchmarkEncode(b *testing.B) {
	_, els, err := decodeAll(testHeader+chatStanza(1), 4096, Limits{})
	if len(els) != 1 {
		b.Fatal(err)
	}
	el := els[0]
	buf := el.AppendTo(nil, NSClient)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	m := startCPU(b)
	for range b.N {
		buf = el.AppendTo(buf[:0], NSClient)
	}
	m.stop(b, int64(len(buf)))
}

// BenchmarkDecodeHostile measures throughput on stanzas built to be
// expensive within the default limits; one op is one stanza. attrs: 200
// elements with 64 attributes each; nsdecls: 30 levels declaring 4 prefixes
// each, then 100 elements with 60 prefixed attributes; entities: 30000
// references; elements: 50000 empty elements (the worst tree expansion);
// deep: 32 levels.
func BenchmarkDecodeHostile(b *testing.B) {
	attrs := func(prefix string, n int) string {
		var s strings.Builder
		for i := range n {
			fmt.Fprintf(&s, " %sa%d=''", prefix, i)
		}
		return s.String()
	}
	var decls strings.Builder
	for i := range 4 {
		fmt.Fprintf(&decls, " xmlns:p%d='urn:%d'", i, i)
	}
	cases := map[string]string{
		"attrs": "<message>" + strings.Repeat("<x"+attrs("", 64)+"/>", 200) + "</message>",
		"nsdecls": "<m xmlns:q='urn:q'>" + strings.Repeat("<a"+decls.String()+">", 30) +
			strings.Repeat("<x"+attrs("q:", 60)+"/>", 100) + strings.Repeat("</a>", 30) + "</m>",
		"entities": "<message><body>" + strings.Repeat("&amp;&#x1F600;&lt;", 10000) + "</body></message>",
		"elements": "<message>" + strings.Repeat("<a/>", 50000) + "</message>",
		"deep":     strings.Repeat("<message>"+strings.Repeat("<a>", 31)+"x"+strings.Repeat("</a>", 31)+"</message>", 100),
	}
	for _, name := range []string{"attrs", "nsdecls", "entities", "elements", "deep"} {
		stanza := cases[name]
		b.Run(name, func(b *testing.B) {
			d := NewDecoder(&cycleReader{head: []byte(testHeader), body: []byte(stanza)}, DefaultLimits())
			if _, err := d.Header(); err != nil {
				b.Fatal(err)
			}
			if _, err := d.Next(); err != nil {
				b.Fatal(err)
			}
			n := strings.Count(stanza, "<message") + strings.Count(stanza, "<m ")
			b.SetBytes(int64(len(stanza) / n))
			b.ReportAllocs()
			m := startCPU(b)
			for range b.N {
				if _, err := d.Next(); err != nil {
					b.Fatal(err)
				}
			}
			m.stop(b, int64(len(stanza)/n))
		})
	}
}

func TestChatStreamSize(t *testing.T) {
	t.Parallel()
	body, per := chatStream()
	if per < 340 || per > 370 {
		t.Errorf("chat stanzas average %d bytes, want ~355", per)
	}
	// The benchmark stream decodes cleanly with both decoders.
	_, els, err := decodeAll(testHeader+string(body), 4096, Limits{})
	if len(els) != benchStanzas {
		t.Fatalf("decoded %d stanzas, %v", len(els), err)
	}
	differential(t, body[:20000])
}
