package xml

import (
	"errors"
	"fmt"
	"io"
	"strings"
)

// testHeader opens a client stream in tests.
const testHeader = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"

// chunkReader returns at most n bytes per Read, like a socket.
type chunkReader struct {
	data []byte
	n    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := min(r.n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// chunkSizes are the Read sizes every table test runs with.
var chunkSizes = []int{1, 7, 4096}

// decodeAll decodes a whole stream, returning the stanzas and the error
// that ended it (ErrStreamClosed, io.EOF or *Error).
func decodeAll(input string, chunk int, lim Limits) (*Header, []*Element, error) {
	d := NewDecoder(&chunkReader{data: []byte(input), n: chunk}, lim)
	h, err := d.Header()
	if err != nil {
		return nil, nil, err
	}
	var els []*Element
	for {
		el, err := d.Next()
		if err != nil {
			return h, els, err
		}
		els = append(els, el)
	}
}

// dump renders a tree canonically for comparisons.
func dump(e *Element) string {
	var b strings.Builder
	dumpTo(&b, e, false)
	return b.String()
}

// dumpAll renders a list of trees; relaxAttrWS maps tab, CR and LF in
// attribute values to spaces (see the differential test).
func dumpAll(els []*Element, relaxAttrWS bool) string {
	var b strings.Builder
	for _, e := range els {
		dumpTo(&b, e, relaxAttrWS)
		b.WriteByte('\n')
	}
	return b.String()
}

var wsToSpace = strings.NewReplacer("\t", " ", "\n", " ", "\r", " ")

func dumpTo(b *strings.Builder, e *Element, relax bool) {
	if e.Local == "" {
		fmt.Fprintf(b, "%q", e.Text)
		if len(e.Attrs) > 0 || len(e.Children) > 0 {
			b.WriteString("!!text node with attrs or children")
		}
		return
	}
	fmt.Fprintf(b, "({%s}%s", e.Space, e.Local)
	for _, a := range e.Attrs {
		v := a.Value
		if relax {
			v = wsToSpace.Replace(v)
		}
		if a.Space == "" {
			fmt.Fprintf(b, " %s=%q", a.Local, v)
		} else {
			fmt.Fprintf(b, " {%s}%s=%q", a.Space, a.Local, v)
		}
	}
	if e.Text != "" {
		fmt.Fprintf(b, " %q", e.Text)
	}
	if len(e.Children) > 0 {
		b.WriteString(" [")
		for i, c := range e.Children {
			if i > 0 {
				b.WriteByte(' ')
			}
			dumpTo(b, c, relax)
		}
		b.WriteByte(']')
	}
	b.WriteByte(')')
}

func condition(err error) string {
	var xe *Error
	if errors.As(err, &xe) {
		return xe.Condition
	}
	return ""
}
