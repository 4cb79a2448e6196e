package xml

import (
	"bytes"
	stdxml "encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// stdTree builds the same trees as Decoder from encoding/xml's Token(): it
// is the oracle of the differential tests and the baseline of the
// benchmarks. It does not enforce what encoding/xml lets through (limits,
// undeclared prefixes, duplicate attributes); it reports the restricted
// tokens it sees (comments, PIs, directives) and text outside stanzas.
type stdTree struct {
	d      *stdxml.Decoder
	depth  int // 0 before the header, 1 between stanzas
	closed bool
}

// errStdRestricted marks input that encoding/xml accepts and that we must
// reject by design (restricted XML, text outside stanzas).
var errStdRestricted = errors.New("restricted XML or text outside stanzas")

// errStdTruncated is encoding/xml's "unexpected EOF": the input ended
// inside an element.
var errStdTruncated = errors.New("stream ends inside an element")

func newStdTree(r io.Reader) *stdTree { return &stdTree{d: stdxml.NewDecoder(r)} }

type stdFrame struct {
	el      *Element
	text    []byte
	hasText bool
}

// next returns the next stanza, io.EOF / ErrStreamClosed at the end, or
// encoding/xml's error.
func (s *stdTree) next() (*Element, error) {
	if s.closed {
		return nil, ErrStreamClosed
	}
	var stack []*stdFrame
	for {
		tok, err := s.d.Token()
		if err != nil {
			var se *stdxml.SyntaxError
			if errors.As(err, &se) && se.Msg == "unexpected EOF" {
				return nil, errStdTruncated
			}
			return nil, err
		}
		switch tok := tok.(type) {
		case stdxml.StartElement:
			if s.depth == 0 {
				s.depth = 1
				continue
			}
			el := &Element{Space: tok.Name.Space, Local: tok.Name.Local}
			for _, a := range tok.Attr {
				if a.Name.Space == "xmlns" || a.Name.Space == "" && a.Name.Local == "xmlns" {
					continue
				}
				el.Attrs = append(el.Attrs, Attr{Space: a.Name.Space, Local: a.Name.Local, Value: a.Value})
			}
			if n := len(stack); n > 0 {
				parent := stack[n-1]
				parent.flush(true)
				parent.el.Children = append(parent.el.Children, el)
			}
			stack = append(stack, &stdFrame{el: el})
		case stdxml.EndElement:
			if len(stack) == 0 {
				s.closed = true
				return nil, ErrStreamClosed
			}
			top := stack[len(stack)-1]
			top.flush(len(top.el.Children) > 0)
			stack = stack[:len(stack)-1]
			if len(stack) == 0 {
				return top.el, nil
			}
		case stdxml.CharData:
			if len(stack) == 0 {
				if !isAllSpace([]byte(tok)) {
					return nil, errStdRestricted
				}
				continue
			}
			top := stack[len(stack)-1]
			top.text = append(top.text, tok...)
			top.hasText = true
		case stdxml.Comment, stdxml.ProcInst, stdxml.Directive:
			return nil, errStdRestricted
		}
	}
}

func (f *stdFrame) flush(mixed bool) {
	if !f.hasText {
		return
	}
	if mixed {
		if !isAllSpace(f.text) {
			f.el.Children = append(f.el.Children, &Element{Text: string(f.text)})
		}
	} else {
		f.el.Text = string(f.text)
	}
	f.text, f.hasText = f.text[:0], false
}

// differential decodes input inside testHeader with both decoders and
// fails t on a disagreement that is not a documented difference.
func differential(t *testing.T, input []byte) {
	t.Helper()
	stream := append([]byte(testHeader), input...)
	// Big limits: encoding/xml has none, so only deliberate limit checks
	// (a fuzz input can still nest deeply) differ.
	lim := Limits{MaxStanza: 1 << 20, MaxDepth: 1000, MaxAttrs: 1000, MaxName: 1000}
	var ours []*Element
	d := NewDecoder(&chunkReader{data: stream, n: 7}, lim)
	var oerr error
	for {
		el, err := d.Next()
		if err != nil {
			oerr = err
			break
		}
		ours = append(ours, el)
	}
	// We frame a whole stanza before parsing it: a truncated one ends in
	// EOF, where encoding/xml may already have found an error in it.
	truncated := oerr == io.EOF && d.Buffered() > 0
	var theirs []*Element
	st := newStdTree(bytes.NewReader(stream))
	var terr error
	for {
		el, err := st.next()
		if err != nil {
			terr = err
			break
		}
		theirs = append(theirs, el)
	}
	n := min(len(ours), len(theirs))
	if a, b := dumpAll(ours[:n], true), dumpAll(theirs[:n], true); a != b {
		t.Fatalf("trees differ for %q:\nours:\n%s\nencoding/xml:\n%s", input, a, b)
	}
	var xe *Error
	weReject := errors.As(oerr, &xe)
	theyTruncated := terr == errStdTruncated
	theyReject := terr != io.EOF && terr != ErrStreamClosed && !theyTruncated
	same := len(ours) == len(theirs)
	switch {
	case !weReject && !theyReject:
		if !same || (oerr == ErrStreamClosed) != (terr == ErrStreamClosed) {
			t.Fatalf("both accept %q but differ: %d stanzas, %v vs %d stanzas, %v", input, len(ours), oerr, len(theirs), terr)
		}
	case weReject && theyReject:
		// Both reject. encoding/xml may reject later when our reason is
		// one it does not check.
		if len(ours) > len(theirs) || !same && !deliberate(xe) {
			t.Fatalf("%q: we accepted %d stanzas then %v; encoding/xml %d then %v", input, len(ours), oerr, len(theirs), terr)
		}
	case weReject:
		// Unless the reason is one encoding/xml does not check, the input
		// must have been cut inside the stanza we rejected (encoding/xml
		// waits for more where we already see an error).
		if !deliberate(xe) && !(theyTruncated && same) {
			t.Fatalf("%q: we reject (%v) what encoding/xml accepts (%d stanzas, %v)", input, oerr, len(theirs), terr)
		}
	default:
		// encoding/xml rejects what we accept. Allowed: a truncated stanza
		// (we parse a stanza only once it is complete), and names that
		// its XML 1.0 4th edition tables reject and the 5th edition
		// (ours, a superset) accepts.
		if terr == errStdRestricted || !(truncated && same) && !hasNonASCIIName(input) {
			t.Fatalf("%q: we accept (%d stanzas, %v) what encoding/xml rejects: %v", input, len(ours), oerr, terr)
		}
	}
}

// deliberate reports whether e is a rejection encoding/xml does not make
// by design: restrictions of RFC 6120 §11, limits, namespace and
// duplicate-attribute checks, and a few XML rules it does not enforce.
func deliberate(e *Error) bool {
	switch e.Condition {
	case condRestrictedXML, condBadNamespacePrefix, condPolicyViolation, condInvalidXML:
		return true
	}
	for _, s := range []string{
		"duplicate attribute",          // encoding/xml keeps both
		"']]>' is not allowed in text", // not checked by encoding/xml
		"declared with an empty namespace",
		"cannot be the default namespace",
		"malformed name", // a:b:c, :a, a: (namespace well-formedness)
		"attributes must be separated by whitespace",
	} {
		if strings.Contains(e.Text, s) {
			return true
		}
	}
	return false
}

func hasNonASCIIName(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

func TestDifferential(t *testing.T) {
	t.Parallel()
	corpus := append([]string{}, roundTripCorpus...)
	corpus = append(corpus,
		strings.Join(roundTripCorpus, "\n"),
		"<a/></stream:stream>",
		"<a><b>partial",
		"<body>&#0;</body>",
		"<body>&lol;</body>",
		"<a></b>",
		"<a x='<'/>",
		"<a x='1' x='2'/>",
		"<x:a/>",
		"<a><!-- c --></a>",
		"<a>]]></a>",
		"<a xmlns:p=''/>",
		"hello",
	)
	for _, in := range corpus {
		differential(t, []byte(in))
	}
}

func FuzzDifferential(f *testing.F) {
	for _, in := range roundTripCorpus {
		f.Add([]byte(in))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		differential(t, input)
	})
}
