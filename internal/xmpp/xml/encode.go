package xml

import (
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// StreamClose closes a stream opened with AppendStreamHeader.
const StreamClose = "</stream:stream>"

// AppendStreamHeader appends an XML declaration and a <stream:stream> start
// tag declaring defaultNS as the default namespace and the stream prefix,
// followed by attrs (to, from, id, version, xml:lang, ...).
func AppendStreamHeader(b []byte, defaultNS string, attrs []Attr) []byte {
	b = append(b, "<?xml version='1.0'?><stream:stream"...)
	if defaultNS != "" {
		b = append(b, " xmlns='"...)
		b = appendEscAttr(b, defaultNS)
		b = append(b, '\'')
	}
	b = append(b, " xmlns:stream='"+NSStream+"'"...)
	b = appendAttrs(b, attrs)
	return append(b, '>')
}

// AppendTo appends the serialization of e, assuming defaultNS is the
// default namespace in scope: an element in that namespace gets no xmlns
// attribute, one in another namespace gets xmlns='...'. Elements in
// NSStream are written with the stream: prefix (stream:features,
// stream:error), which the stream header declares, and elements in NSXML
// with the predefined xml: prefix. Attributes in NSXML are
// written as xml:name; attributes in other namespaces get generated
// prefixes declared on the element. Text is escaped; characters that XML
// cannot carry (invalid UTF-8, control characters) are replaced by U+FFFD.
// A text node (Local == "") is written as its text. If e has both Text and
// children, Text comes first.
func (e *Element) AppendTo(b []byte, defaultNS string) []byte {
	if e.Local == "" {
		return appendEscText(b, e.Text)
	}
	b = append(b, '<')
	inner := defaultNS
	if pfx := fixedPrefix(e.Space); pfx != "" {
		b = append(b, pfx...)
		b = append(b, e.Local...)
	} else {
		b = append(b, e.Local...)
		if e.Space != defaultNS {
			b = append(b, " xmlns='"...)
			b = appendEscAttr(b, e.Space)
			b = append(b, '\'')
			inner = e.Space
		}
	}
	b = appendAttrs(b, e.Attrs)
	if e.Text == "" && len(e.Children) == 0 {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	b = appendEscText(b, e.Text)
	for _, c := range e.Children {
		if c != nil {
			b = c.AppendTo(b, inner)
		}
	}
	b = append(b, "</"...)
	b = append(b, fixedPrefix(e.Space)...)
	b = append(b, e.Local...)
	return append(b, '>')
}

// fixedPrefix returns the prefix (with colon) elements in space are written
// with: stream: for NSStream (declared by the stream header), xml: for NSXML
// (predefined); "" for namespaces written as the default namespace.
func fixedPrefix(space string) string {
	switch space {
	case NSStream:
		return "stream:"
	case NSXML:
		return "xml:"
	}
	return ""
}

// WriteTo writes e with no inherited default namespace.
func (e *Element) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(e.AppendTo(nil, ""))
	if err != nil {
		return int64(n), fmt.Errorf("xml: writing <%s>: %w", e.Local, err)
	}
	return int64(n), nil
}

// appendAttrs appends attributes, declaring generated prefixes (p1, p2,
// ...) for namespaces other than NSXML. xmlns declarations given as
// attributes are skipped: the serializer generates its own.
func appendAttrs(b []byte, attrs []Attr) []byte {
	var small [4]string
	declared := small[:0]
	for i := range attrs {
		a := &attrs[i]
		switch a.Space {
		case "":
			if a.Local == "xmlns" {
				continue
			}
			b = append(b, ' ')
		case NSXML:
			b = append(b, " xml:"...)
		case nsXMLNS:
			continue
		default:
			idx := -1
			for j, ns := range declared {
				if ns == a.Space {
					idx = j
					break
				}
			}
			if idx < 0 {
				declared = append(declared, a.Space)
				idx = len(declared) - 1
				b = append(b, " xmlns:p"...)
				b = strconv.AppendInt(b, int64(idx+1), 10)
				b = append(b, "='"...)
				b = appendEscAttr(b, a.Space)
				b = append(b, '\'')
			}
			b = append(b, " p"...)
			b = strconv.AppendInt(b, int64(idx+1), 10)
			b = append(b, ':')
		}
		b = append(b, a.Local...)
		b = append(b, "='"...)
		b = appendEscAttr(b, a.Value)
		b = append(b, '\'')
	}
	return b
}

// Escape tables: 0 = copy, 1 = escape, 2 = not representable (replace).
var textEsc = func() (t [utf8.RuneSelf]uint8) {
	for c := 0; c < 0x20; c++ {
		t[c] = 2
	}
	t['\t'], t['\n'] = 0, 0
	t['\r'], t['&'], t['<'], t['>'] = 1, 1, 1, 1
	return t
}()

var attrEsc = func() (t [utf8.RuneSelf]uint8) {
	t = textEsc
	t['\t'], t['\n'], t['"'], t['\''] = 1, 1, 1, 1
	return t
}()

func appendEscText(b []byte, s string) []byte { return appendEsc(b, s, &textEsc) }
func appendEscAttr(b []byte, s string) []byte { return appendEsc(b, s, &attrEsc) }

func appendEsc(b []byte, s string, tab *[utf8.RuneSelf]uint8) []byte {
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if tab[c] == 0 {
				i++
				continue
			}
			b = append(b, s[last:i]...)
			switch c {
			case '&':
				b = append(b, "&amp;"...)
			case '<':
				b = append(b, "&lt;"...)
			case '>':
				b = append(b, "&gt;"...)
			case '"':
				b = append(b, "&quot;"...)
			case '\'':
				b = append(b, "&apos;"...)
			case '\r':
				b = append(b, "&#xD;"...)
			case '\n':
				b = append(b, "&#xA;"...)
			case '\t':
				b = append(b, "&#x9;"...)
			default:
				b = append(b, "\uFFFD"...)
			}
			i++
			last = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || r == 0xFFFE || r == 0xFFFF {
			b = append(b, s[last:i]...)
			b = append(b, "\uFFFD"...)
			last = i + n
		}
		i += n
	}
	return append(b, s[last:]...)
}
