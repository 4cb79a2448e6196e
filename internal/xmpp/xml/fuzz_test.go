package xml

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzLimits are small so that the fuzzer reaches them.
var fuzzLimits = Limits{MaxStanza: 2048, MaxDepth: 8, MaxAttrs: 8, MaxName: 32}

// FuzzDecoder feeds arbitrary streams (header included) 7 bytes per Read.
// The decoder must not panic, must keep its buffer within the limits, must
// only return trees within the limits made of XML characters, and what it
// returns must survive AppendTo and decoding again.
func FuzzDecoder(f *testing.F) {
	f.Add([]byte(testHeader + chatStanza(1) + "</stream:stream>"))
	f.Add([]byte(testHeader + strings.Join(roundTripCorpus, " ")))
	f.Fuzz(func(t *testing.T, input []byte) {
		d := NewDecoder(&chunkReader{data: input, n: 7}, fuzzLimits)
		maxBuf := max(fuzzLimits.MaxStanza, initialBufSize)
		h, err := d.Header()
		if cap(d.buf) > maxBuf {
			t.Fatalf("buffer %d bytes", cap(d.buf))
		}
		if err != nil {
			return
		}
		for _, a := range h.Attrs {
			checkAttr(t, a)
		}
		for i := 0; ; i++ {
			el, err := d.Next()
			if cap(d.buf) > maxBuf {
				t.Fatalf("buffer %d bytes", cap(d.buf))
			}
			if err != nil {
				if xe, ok := err.(*Error); ok && (xe.Condition == "" || xe.Text == "") {
					t.Fatalf("incomplete error %#v", xe)
				}
				return
			}
			checkTree(t, el, 1)
			if i%2 == 0 {
				d.Idle()
			}
			// Round trip.
			out := AppendStreamHeader(nil, h.DefaultNS, nil)
			out = el.AppendTo(out, h.DefaultNS)
			_, els, err := decodeAll(string(out)+StreamClose, 4096, Limits{MaxStanza: 1 << 20})
			if err != ErrStreamClosed || len(els) != 1 {
				t.Fatalf("reparse of %q: %d stanzas, %v", out, len(els), err)
			}
			if a, b := dump(el), dump(els[0]); a != b {
				t.Fatalf("round trip via %q:\n%s\n%s", out, a, b)
			}
		}
	})
}

func checkTree(t *testing.T, e *Element, depth int) {
	t.Helper()
	if depth > fuzzLimits.MaxDepth {
		t.Fatalf("depth %d", depth)
	}
	if e.Local == "" {
		if len(e.Attrs) > 0 || len(e.Children) > 0 || e.Space != "" || isAllSpace(e.Text) {
			t.Fatalf("bad text node %#v", e)
		}
		checkChars(t, e.Text)
		return
	}
	if len(e.Local) > fuzzLimits.MaxName || len(e.Attrs) > fuzzLimits.MaxAttrs {
		t.Fatalf("limits exceeded: %s", dump(e))
	}
	if len(e.Children) > 0 && e.Text != "" {
		t.Fatalf("Text and children: %s", dump(e))
	}
	checkChars(t, e.Local)
	checkChars(t, e.Text)
	for _, a := range e.Attrs {
		checkAttr(t, a)
	}
	for i, c := range e.Children {
		if c.Local == "" && i > 0 && e.Children[i-1].Local == "" {
			t.Fatalf("adjacent text nodes: %s", dump(e))
		}
		checkTree(t, c, depth+1)
	}
}

func checkAttr(t *testing.T, a Attr) {
	t.Helper()
	if a.Local == "" || a.Space == "" && a.Local == "xmlns" || a.Space == nsXMLNS || a.Space == "xmlns" {
		t.Fatalf("bad attribute %#v", a)
	}
	checkChars(t, a.Local)
	checkChars(t, a.Value)
}

func checkChars(t *testing.T, s string) {
	t.Helper()
	for i, r := range s {
		if r == utf8.RuneError && !strings.HasPrefix(s[i:], "\uFFFD") || !isXMLChar(r) {
			t.Fatalf("invalid character %U in %q", r, s)
		}
	}
}
