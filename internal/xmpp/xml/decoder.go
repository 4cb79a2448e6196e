package xml

import (
	"bytes"
	"encoding/binary"
	"hash/maphash"
	"io"
	"strings"
	"sync"
	"unicode/utf8"
)

// nsXMLNS is the namespace of xmlns declarations; it can never be bound.
const nsXMLNS = "http://www.w3.org/2000/xmlns/"

// Limits bounds what one peer can make the decoder hold. Zero (or negative)
// fields mean the default.
type Limits struct {
	// MaxStanza is the maximum size in bytes of one top-level element,
	// tags included (clients: 256 KiB; before authentication 10 KB). It is
	// also the bound on the stream header. It is capped at 1 GiB.
	MaxStanza int
	// MaxDepth is the maximum element nesting in a stanza; the stanza
	// element itself is depth 1.
	MaxDepth int
	// MaxAttrs is the maximum number of attributes on one element,
	// xmlns declarations included.
	MaxAttrs int
	// MaxName is the maximum size in bytes of an element or attribute name,
	// prefix included.
	MaxName int
}

// DefaultLimits returns the limits for an authenticated client stream.
func DefaultLimits() Limits {
	return Limits{MaxStanza: 256 << 10, MaxDepth: 32, MaxAttrs: 64, MaxName: 256}
}

func (l Limits) withDefaults() Limits {
	def := DefaultLimits()
	if l.MaxStanza <= 0 {
		l.MaxStanza = def.MaxStanza
	}
	if l.MaxStanza > maxMaxStanza {
		l.MaxStanza = maxMaxStanza
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = def.MaxDepth
	}
	if l.MaxAttrs <= 0 {
		l.MaxAttrs = def.MaxAttrs
	}
	if l.MaxName <= 0 {
		l.MaxName = def.MaxName
	}
	return l
}

// Header is the peer's stream header.
type Header struct {
	// Attrs are the attributes of <stream:stream> (to, from, id, version,
	// xml:lang with Space NSXML, ...), without xmlns declarations.
	Attrs []Attr
	// DefaultNS is the stream's default namespace (e.g. jabber:client), ""
	// if none was declared.
	DefaultNS string
}

// Attr returns the value of the unprefixed header attribute local, or "".
func (h *Header) Attr(local string) string {
	for i := range h.Attrs {
		if h.Attrs[i].Local == local && h.Attrs[i].Space == "" {
			return h.Attrs[i].Value
		}
	}
	return ""
}

const (
	// maxMaxStanza caps MaxStanza so that offsets fit in an int32.
	maxMaxStanza   = 1 << 30
	initialBufSize = 4096
	// smallReadSize is the inline buffer a Decoder reads into when it has no
	// read buffer (new or after Idle), so that a connection blocked in Read
	// holds no 4 KiB buffer.
	smallReadSize = 64
	// maxDeclSize bounds the XML declaration.
	maxDeclSize = 1024
	// maxNSBindings bounds the namespace declarations in scope inside a
	// stanza: prefix lookups scan them, so without a bound a stanza of
	// nested elements full of declarations would cost quadratic time.
	maxNSBindings = 128
	// rootSpare is the room left after a stanza root's attributes for
	// the ones the server adds ('from', 'to').
	rootSpare = 2
	// maxScratch is the capacity above which scratch slices are dropped
	// after a stanza instead of being kept for the next one.
	maxScratch = 256
)

// BufferPool shares 4 KiB read buffers, and the parser's scratch space,
// between Decoders that go idle. It is optional (see
// Decoder.SetBufferPool); its zero value is ready to use and it is safe
// for concurrent use.
type BufferPool struct {
	p  sync.Pool // *[initialBufSize]byte
	sc sync.Pool // *scratchBlock
}

func (p *BufferPool) getScratch() *scratchBlock {
	b, _ := p.sc.Get().(*scratchBlock)
	return b
}

func (p *BufferPool) putScratch(b *scratchBlock) { p.sc.Put(b) }

func (p *BufferPool) get() []byte {
	if a, ok := p.p.Get().(*[initialBufSize]byte); ok {
		return a[:]
	}
	return make([]byte, initialBufSize)
}

func (p *BufferPool) put(b []byte) {
	if cap(b) == initialBufSize {
		p.p.Put((*[initialBufSize]byte)(b[:initialBufSize]))
	}
}

// Decoder reads an XMPP stream: the stream header, then one top-level
// element (stanza) at a time. Framing never allocates; each stanza costs one
// string copy of its bytes plus a few slabs for the tree. It is not safe for
// concurrent use.
type Decoder struct {
	r    io.Reader
	lim  Limits
	pool *BufferPool

	buf        []byte // read buffer; nil when idle
	start, end int    // unconsumed bytes are buf[start:end]
	scan       int    // framing position in buf, start <= scan <= end
	state      uint8  // framing state
	quote      byte   // quote char in fsQuote / header tag
	depth      int    // element depth inside the current stanza
	nElems     int    // start tags seen in the current stanza
	nAttrs     int    // '=' seen in its tags: upper bound of attributes
	mark       int    // state-specific offset relative to start

	rerr error // reader error to return once buffered data is used up
	err  error // sticky decoder error

	hdr        *Header  // nil before the header, and after DropHeader
	opened     bool     // the stream header has been read
	defaultNS  string   // the header's default namespace
	closed     bool     // </stream:stream> seen (or self-closed header)
	streamName string   // qualified name of the stream element
	base       []nsBind // namespace bindings declared on the stream header

	seed  maphash.Seed  // see hashSeed
	sc    *scratch      // nil when idle; &scb.sc
	scb   *scratchBlock // the block sc lives in
	small [smallReadSize]byte
}

// Framing states.
const (
	// header phase
	fsInit   uint8 = iota // nothing consumed yet: BOM / XML declaration detection
	fsDecl                // inside <?xml ... ?>
	fsProlog              // before the stream tag, skipping whitespace
	fsHdrLT               // '<' seen in the prolog
	fsHdrTag              // inside the stream start tag
	// stream phase, between stanzas
	fsBetween // skipping whitespace between stanzas
	fsLT0     // '<' seen between stanzas
	fsClose   // inside </stream:stream>
	// inside a stanza
	fsText     // character data
	fsLT       // '<' seen
	fsStartTag // inside a start tag, outside quotes
	fsQuote    // inside a quoted attribute value
	fsEndTag   // inside an end tag
	fsBang     // "<!" seen: expecting "[CDATA["
	fsCDATA    // inside a CDATA section
)

// NewDecoder returns a decoder reading from r. Zero fields of lim take the
// defaults of DefaultLimits.
func NewDecoder(r io.Reader, lim Limits) *Decoder {
	return &Decoder{r: r, lim: lim.withDefaults()}
}

// SetLimits changes the limits, e.g. after authentication. They apply at
// once, also to a stanza partly read.
func (d *Decoder) SetLimits(lim Limits) { d.lim = lim.withDefaults() }

// SetBufferPool makes the decoder take its 4 KiB read buffer from p and
// return it there on Idle. p may be shared by many decoders.
func (d *Decoder) SetBufferPool(p *BufferPool) { d.pool = p }

// Reset starts over on a new reader (after STARTTLS or SASL success): it
// drops buffered bytes, the stream header and all namespace state. The next
// call must be Header (Next calls it implicitly). Limits and the buffer
// pool are kept.
func (d *Decoder) Reset(r io.Reader) {
	d.r = r
	d.start, d.end, d.scan = 0, 0, 0
	d.state = fsInit
	d.quote, d.depth, d.nElems, d.nAttrs, d.mark = 0, 0, 0, 0, 0
	d.rerr, d.err = nil, nil
	d.hdr, d.opened, d.defaultNS, d.closed, d.streamName, d.base = nil, false, "", false, "", nil
	d.sc, d.scb = nil, nil
}

// DropHeader releases the stream header's attributes, for a caller that
// has read what it needs from them (a long-lived stream would otherwise
// keep the header's text for its whole life). The namespaces the header
// declared stay in force; Header afterwards returns only DefaultNS.
func (d *Decoder) DropHeader() { d.hdr = nil }

// Buffered returns the number of bytes read from the reader but not yet
// consumed.
func (d *Decoder) Buffered() int { return d.end - d.start }

// Idle releases the read buffer and scratch space if nothing is buffered,
// so that an idle connection holds well under 1 KiB of decoder memory. It
// is cheap; afterwards the next Next costs one extra small Read and a few
// small allocations, so call it when the connection is about to wait (for
// example when Buffered() == 0), not necessarily after every stanza.
func (d *Decoder) Idle() {
	if d.start != d.end {
		return
	}
	if d.buf != nil {
		if d.pool != nil {
			d.pool.put(d.buf)
		}
		d.buf = nil
		d.start, d.end, d.scan = 0, 0, 0
	}
	if d.scb != nil && d.pool != nil {
		d.sc.reset()
		d.pool.putScratch(d.scb)
	}
	d.sc, d.scb = nil, nil
}

// Header reads the optional XML declaration and the stream header. Only
// UTF-8 is accepted. The stream element must be
// {http://etherx.jabber.org/streams}stream. After the first successful call
// it returns the same header again.
func (d *Decoder) Header() (*Header, error) {
	if d.opened {
		if d.hdr == nil {
			return &Header{DefaultNS: d.defaultNS}, nil
		}
		return d.hdr, nil
	}
	if d.err != nil {
		return nil, d.err
	}
	for {
		done, err := d.frameHeader()
		if err != nil {
			d.err = err
			return nil, err
		}
		if done {
			return d.hdr, nil
		}
		if err := d.fill(); err != nil {
			d.stickyIfDecodeError(err)
			return nil, err
		}
	}
}

// Next returns the next top-level element of the stream with namespaces
// resolved (stanzas inherit the header's default namespace and prefixes).
// Whitespace between stanzas is skipped. It returns ErrStreamClosed after
// </stream:stream>, the reader's error (io.EOF, ...) when the connection
// closes, and *Error on bad input. *Error and ErrStreamClosed are sticky;
// reader errors are not: after a read deadline expires (a timeout error),
// Next may be called again and resumes where it was, even mid-stanza.
func (d *Decoder) Next() (*Element, error) {
	if d.err != nil {
		return nil, d.err
	}
	if !d.opened {
		if _, err := d.Header(); err != nil {
			return nil, err
		}
	}
	if d.closed {
		d.err = ErrStreamClosed
		return nil, d.err
	}
	for {
		if d.scan < d.end || d.state == fsBetween {
			unit, err := d.frame()
			if err != nil {
				d.err = err
				return nil, err
			}
			switch unit {
			case unitStanza:
				el, err := d.decodeStanza()
				if err != nil {
					d.err = err
					return nil, err
				}
				return el, nil
			case unitClose:
				d.closed = true
				d.err = ErrStreamClosed
				return nil, d.err
			}
		}
		if err := d.fill(); err != nil {
			d.stickyIfDecodeError(err)
			return nil, err
		}
	}
}

// stickyIfDecodeError keeps err for later calls if it is a decoding error.
// Reader errors are not kept: the framing state survives a failed Read, so
// after a read deadline expires the caller may call Next again.
func (d *Decoder) stickyIfDecodeError(err error) {
	if _, ok := err.(*Error); ok {
		d.err = err
	}
}

// fill reads more bytes into the buffer. It returns the reader's error
// (once) when no bytes came.
func (d *Decoder) fill() error {
	if d.rerr != nil {
		err := d.rerr
		d.rerr = nil
		return err
	}
	if d.buf == nil {
		// New or idle: block in Read on the small inline array, then take
		// a real buffer once bytes arrive.
		n, err := d.read(d.small[:])
		if n == 0 {
			return err
		}
		d.buf = d.newBuf()
		copy(d.buf, d.small[:n])
		d.start, d.end, d.scan = 0, n, 0
		d.rerr = err
		return nil
	}
	if len(d.buf) > initialBufSize && d.end-d.start <= initialBufSize/2 {
		// A big stanza has been consumed: go back to a small buffer.
		nb := d.newBuf()
		copy(nb, d.buf[d.start:d.end])
		d.buf = nb
		d.end -= d.start
		d.scan -= d.start
		d.start = 0
	}
	if d.start > 0 {
		copy(d.buf, d.buf[d.start:d.end])
		d.end -= d.start
		d.scan -= d.start
		d.start = 0
	}
	if d.end == len(d.buf) {
		max := d.lim.MaxStanza
		if max < initialBufSize {
			max = initialBufSize
		}
		if len(d.buf) >= max {
			// Unreachable: framing fails once a unit reaches MaxStanza.
			return errorf(condPolicyViolation, "stanza exceeds %d bytes", d.lim.MaxStanza)
		}
		n := 2 * len(d.buf)
		if n > max {
			n = max
		}
		nb := make([]byte, n)
		copy(nb, d.buf[:d.end])
		if d.pool != nil {
			d.pool.put(d.buf)
		}
		d.buf = nb
	}
	n, err := d.read(d.buf[d.end:])
	d.end += n
	if n == 0 {
		return err
	}
	d.rerr = err
	return nil
}

func (d *Decoder) newBuf() []byte {
	if d.pool != nil {
		return d.pool.get()
	}
	return make([]byte, initialBufSize)
}

func (d *Decoder) read(p []byte) (int, error) {
	for range 100 {
		n, err := d.r.Read(p)
		if n > 0 || err != nil {
			return n, err
		}
	}
	return 0, io.ErrNoProgress
}

// ---------------------------------------------------------------------------
// Framing

const (
	unitNone = iota
	unitStanza
	unitClose
)

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

// frameHeader advances over the prolog and the stream start tag. It
// returns true once the header has been parsed.
func (d *Decoder) frameHeader() (bool, error) {
	for {
		b := d.buf[d.start:d.end]
		switch d.state {
		case fsInit:
			if len(b) < 2 {
				return false, nil
			}
			if b[0] == 0xFE && b[1] == 0xFF || b[0] == 0xFF && b[1] == 0xFE ||
				b[0] == 0 && b[1] == '<' || b[0] == '<' && b[1] == 0 {
				return false, newError(condUnsupportedEncoding, "the stream is UTF-16; only UTF-8 is supported")
			}
			if bytes.HasPrefix(b, bom) {
				d.start += 3
				b = b[3:]
			} else if len(b) < 3 && bytes.HasPrefix(bom, b) {
				return false, nil
			}
			const xmlDecl = "<?xml"
			if len(b) < len(xmlDecl)+1 && strings.HasPrefix(xmlDecl, string(b)) {
				return false, nil
			}
			if len(b) > len(xmlDecl) && string(b[:len(xmlDecl)]) == xmlDecl && isSpace(b[len(xmlDecl)]) {
				d.state = fsDecl
				d.scan = d.start + len(xmlDecl)
			} else {
				d.state = fsProlog
				d.scan = d.start
			}
		case fsDecl:
			j := bytes.Index(d.buf[d.scan:d.end], []byte("?>"))
			if j < 0 {
				if d.end-d.start > maxDeclSize {
					return false, errorf(condPolicyViolation, "XML declaration exceeds %d bytes", maxDeclSize)
				}
				if d.end > d.scan {
					d.scan = d.end - 1 // a '?' at the end may start "?>"
				}
				return false, nil
			}
			decl := d.buf[d.start : d.scan+j+2]
			if err := validChars(decl); err != nil {
				return false, err
			}
			if err := parseDecl(string(decl)); err != nil {
				return false, err
			}
			d.start = d.scan + j + 2
			d.scan = d.start
			d.state = fsProlog
		case fsProlog:
			i := d.start
			for i < d.end && isSpace(d.buf[i]) {
				i++
			}
			d.start, d.scan = i, i
			if i == d.end {
				return false, nil
			}
			if d.buf[i] != '<' {
				return false, newError(condNotWellFormed, "expected the <stream:stream> header, got text")
			}
			d.scan = i + 1
			d.state = fsHdrLT
		case fsHdrLT:
			if d.scan == d.end {
				return false, nil
			}
			switch d.buf[d.scan] {
			case '?':
				return false, newError(condRestrictedXML, "processing instructions are not allowed")
			case '!':
				if d.scan+1 == d.end {
					return false, nil
				}
				if d.buf[d.scan+1] == '-' {
					return false, newError(condRestrictedXML, "comments are not allowed")
				}
				return false, newError(condRestrictedXML, "DTDs and markup declarations are not allowed")
			case '/':
				return false, newError(condNotWellFormed, "expected the <stream:stream> header, got an end tag")
			}
			if c := d.buf[d.scan]; c < utf8.RuneSelf && nameTab[c]&1 == 0 && c != ':' {
				return false, errorf(condNotWellFormed, "malformed tag %s", quoteSnippet(string(d.buf[d.start:d.scan+1])))
			}
			d.state = fsHdrTag
			d.quote = 0
		case fsHdrTag:
			lim := d.limit()
			i := d.scan
			for ; i < lim; i++ {
				c := d.buf[i]
				if d.quote != 0 {
					if c == d.quote {
						d.quote = 0
					}
					continue
				}
				switch c {
				case '\'', '"':
					d.quote = c
				case '<':
					return false, newError(condNotWellFormed, "'<' inside the stream header tag")
				case '>':
					tag := d.buf[d.start : i+1]
					d.start, d.scan = i+1, i+1
					d.state = fsBetween
					return true, d.parseHeader(tag)
				}
			}
			d.scan = i
			if i-d.start >= d.lim.MaxStanza {
				return false, errorf(condPolicyViolation, "stream header exceeds %d bytes", d.lim.MaxStanza)
			}
			return false, nil
		default:
			return true, nil
		}
	}
}

var bom = []byte{0xEF, 0xBB, 0xBF}

// limit returns the end of the bytes framing may look at: no unit may be
// longer than MaxStanza.
func (d *Decoder) limit() int {
	if d.end-d.start > d.lim.MaxStanza {
		return d.start + d.lim.MaxStanza
	}
	return d.end
}

// frame advances the framing state machine over the buffered bytes and
// reports a complete stanza (buf[start:scan]) or the stream's end.
func (d *Decoder) frame() (int, error) {
	for {
		switch d.state {
		case fsBetween:
			i := d.scan
			for i < d.end && isSpace(d.buf[i]) {
				i++
			}
			d.start, d.scan = i, i
			if i == d.end {
				return unitNone, nil
			}
			if d.buf[i] != '<' {
				return unitNone, newError(condInvalidXML, "text outside of stanzas")
			}
			d.scan++
			d.state = fsLT0
		case fsLT0:
			if d.scan == d.end {
				return unitNone, nil
			}
			switch d.buf[d.scan] {
			case '/':
				d.scan++
				d.state = fsClose
			case '?':
				return unitNone, newError(condRestrictedXML, "processing instructions are not allowed")
			case '!':
				if d.scan+1 == d.end {
					return unitNone, nil
				}
				switch d.buf[d.scan+1] {
				case '[':
					return unitNone, newError(condInvalidXML, "text outside of stanzas")
				case '-':
					return unitNone, newError(condRestrictedXML, "comments are not allowed")
				}
				return unitNone, newError(condRestrictedXML, "DTDs and markup declarations are not allowed")
			default:
				if c := d.buf[d.scan]; c < utf8.RuneSelf && nameTab[c]&1 == 0 && c != ':' {
					return unitNone, errorf(condNotWellFormed, "malformed tag %s", quoteSnippet(string(d.buf[d.start:d.scan+1])))
				}
				d.depth, d.nElems, d.nAttrs = 1, 1, 0
				if d.lim.MaxDepth < 1 {
					return unitNone, errorf(condPolicyViolation, "elements nested deeper than %d", d.lim.MaxDepth)
				}
				d.state = fsStartTag
			}
		case fsClose:
			j := bytes.IndexByte(d.buf[d.scan:d.end], '>')
			if j < 0 {
				d.scan = d.end
				if d.end-d.start > len(d.streamName)+64 {
					return unitNone, newError(condNotWellFormed, "malformed end tag between stanzas")
				}
				return unitNone, nil
			}
			name := d.buf[d.start+2 : d.scan+j]
			for len(name) > 0 && isSpace(name[len(name)-1]) {
				name = name[:len(name)-1]
			}
			if string(name) != d.streamName {
				return unitNone, errorf(condNotWellFormed, "end tag </%s> does not match <%s>",
					strings.Trim(quoteSnippet(string(name)), `"`), d.streamName)
			}
			d.scan += j + 1
			d.start = d.scan
			d.state = fsBetween
			return unitClose, nil
		default:
			return d.frameStanza()
		}
	}
}

// tagByte marks bytes the start-tag state must look at.
var tagByte = [256]bool{'>': true, '\'': true, '"': true, '=': true, '<': true}

func (d *Decoder) frameStanza() (int, error) {
	buf := d.buf
	lim := d.limit()
	i := d.scan
	state := d.state
loop:
	for i < lim {
		switch state {
		case fsText:
			j := bytes.IndexByte(buf[i:lim], '<')
			if j < 0 {
				i = lim
				break loop
			}
			i += j + 1
			state = fsLT
		case fsLT:
			switch buf[i] {
			case '/':
				i++
				state = fsEndTag
			case '!':
				i++
				state = fsBang
				d.mark = 0
			case '?':
				return unitNone, newError(condRestrictedXML, "processing instructions are not allowed")
			default:
				if c := buf[i]; c < utf8.RuneSelf && nameTab[c]&1 == 0 && c != ':' {
					return unitNone, errorf(condNotWellFormed, "malformed tag %s", quoteSnippet(string(buf[i-1:i+1])))
				}
				d.depth++
				if d.depth > d.lim.MaxDepth {
					return unitNone, errorf(condPolicyViolation, "elements nested deeper than %d", d.lim.MaxDepth)
				}
				d.nElems++
				state = fsStartTag
			}
		case fsStartTag:
			for ; i < lim; i++ {
				c := buf[i]
				if !tagByte[c] {
					continue
				}
				switch c {
				case '>':
					i++
					state = fsText
					if buf[i-2] == '/' {
						d.depth--
						if d.depth == 0 {
							d.scan, d.state = i, fsBetween
							return unitStanza, nil
						}
					}
					continue loop
				case '\'', '"':
					d.quote = c
					i++
					state = fsQuote
					continue loop
				case '=':
					d.nAttrs++
				case '<':
					return unitNone, newError(condNotWellFormed, "'<' inside a tag")
				}
			}
		case fsQuote:
			j := bytes.IndexByte(buf[i:lim], d.quote)
			if j < 0 {
				i = lim
				break loop
			}
			i += j + 1
			state = fsStartTag
		case fsEndTag:
			j := bytes.IndexByte(buf[i:lim], '>')
			if j < 0 {
				i = lim
				break loop
			}
			i += j + 1
			d.depth--
			if d.depth == 0 {
				d.scan, d.state = i, fsBetween
				return unitStanza, nil
			}
			state = fsText
		case fsBang:
			const cdata = "[CDATA["
			if c := buf[i]; c != cdata[d.mark] {
				if d.mark == 0 && c == '-' {
					return unitNone, newError(condRestrictedXML, "comments are not allowed")
				}
				return unitNone, newError(condRestrictedXML, "DTDs and markup declarations are not allowed")
			}
			i++
			d.mark++
			if d.mark == len(cdata) {
				d.mark = i - d.start
				state = fsCDATA
			}
		case fsCDATA:
			j := bytes.IndexByte(buf[i:lim], '>')
			if j < 0 {
				i = lim
				break loop
			}
			p := i + j
			i = p + 1
			if p-2 >= d.start+d.mark && buf[p-1] == ']' && buf[p-2] == ']' {
				state = fsText
			}
		}
	}
	d.scan, d.state = i, state
	if i-d.start >= d.lim.MaxStanza {
		return unitNone, errorf(condPolicyViolation, "stanza exceeds %d bytes", d.lim.MaxStanza)
	}
	return unitNone, nil
}

// ---------------------------------------------------------------------------
// Character validation

// validChars checks that b is UTF-8 made of XML 1.0 characters.
func validChars(b []byte) error {
	i := 0
	for i < len(b) {
		// Eight ASCII bytes in [0x20, 0x7F] at a time. x-0x20.. sets the
		// high bit of every byte below 0x20 (borrows only add false
		// positives); x itself has it for bytes >= 0x80.
		for i+8 <= len(b) {
			x := binary.LittleEndian.Uint64(b[i:])
			if (x|(x-0x2020202020202020))&0x8080808080808080 != 0 {
				break
			}
			i += 8
		}
		end := i + 8
		if end > len(b) {
			end = len(b)
		}
		for i < end {
			c := b[i]
			if c >= 0x20 && c < 0x80 {
				i++
				continue
			}
			if c < 0x80 {
				if c != '\t' && c != '\n' && c != '\r' {
					return errorf(condNotWellFormed, "character U+%04X is not allowed in XML", c)
				}
				i++
				continue
			}
			r, n := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && n == 1 {
				return newError(condNotWellFormed, "invalid UTF-8")
			}
			if r == 0xFFFE || r == 0xFFFF {
				return errorf(condNotWellFormed, "character U+%04X is not allowed in XML", r)
			}
			i += n
			if i > end {
				end = i
			}
		}
	}
	return nil
}

func isXMLChar(r rune) bool {
	switch {
	case r >= 0x20 && r <= 0xD7FF:
		return true
	case r == '\t' || r == '\n' || r == '\r':
		return true
	case r >= 0xE000 && r <= 0xFFFD:
		return true
	case r >= 0x10000 && r <= 0x10FFFF:
		return true
	}
	return false
}

// ---------------------------------------------------------------------------
// XML declaration

// parseDecl checks an XML declaration "<?xml ... ?>".
func parseDecl(s string) error {
	bad := newError(condNotWellFormed, "malformed XML declaration")
	s = s[len("<?xml") : len(s)-len("?>")]
	pos := 0
	pseudo := func(name string) (string, bool) {
		p := pos
		if p >= len(s) || !isSpace(s[p]) {
			return "", false
		}
		for p < len(s) && isSpace(s[p]) {
			p++
		}
		if !strings.HasPrefix(s[p:], name) {
			return "", false
		}
		p += len(name)
		for p < len(s) && isSpace(s[p]) {
			p++
		}
		if p >= len(s) || s[p] != '=' {
			return "", false
		}
		p++
		for p < len(s) && isSpace(s[p]) {
			p++
		}
		if p >= len(s) || s[p] != '\'' && s[p] != '"' {
			return "", false
		}
		q := s[p]
		j := strings.IndexByte(s[p+1:], q)
		if j < 0 {
			return "", false
		}
		pos = p + 1 + j + 1
		return s[p+1 : p+1+j], true
	}
	v, ok := pseudo("version")
	if !ok || len(v) < 3 || !strings.HasPrefix(v, "1.") || strings.Trim(v[2:], "0123456789") != "" {
		return bad
	}
	if v, ok := pseudo("encoding"); ok {
		if !strings.EqualFold(v, "UTF-8") {
			return errorf(condUnsupportedEncoding, "encoding %s is not supported; use UTF-8", quoteSnippet(v))
		}
	}
	if v, ok := pseudo("standalone"); ok && v != "yes" && v != "no" {
		return bad
	}
	for pos < len(s) && isSpace(s[pos]) {
		pos++
	}
	if pos != len(s) {
		return bad
	}
	return nil
}

// ---------------------------------------------------------------------------
// Stanza parser

type nsBind struct{ prefix, uri string }

// rawAttr is an attribute of the tag being parsed. It holds offsets into
// the stanza string, not strings, so that filling the scratch costs no GC
// write barriers.
type rawAttr struct {
	off, n   int32 // qualified name: s[off:off+n]
	colon    int32 // index of ':' in the name, or -1
	voff, vn int32 // raw value: s[voff:voff+vn]
	dec      int32 // index in scratch.vals of the decoded value, -1 if raw is the value
}

func (p *stanzaParser) aname(a *rawAttr) string { return p.s[a.off : a.off+a.n] }

func (p *stanzaParser) avalue(a *rawAttr) string {
	if a.dec >= 0 {
		return p.sc.vals[a.dec]
	}
	return p.s[a.voff : a.voff+a.vn]
}

type openElem struct {
	el      *Element
	name    string // qualified name, for the end tag
	nsMark  int    // len(sc.ns) before this element's declarations
	kidMark int    // len(sc.kids) when this element opened
}

// scratch is per-decoder working memory reused across stanzas.
type scratch struct {
	ns    []nsBind
	stack []openElem
	kids  []*Element
	attrs []rawAttr
	vals  []string // decoded attribute values of the current tag
	tab   []int32  // duplicate-attribute hash table
	tbuf  []byte   // decoded text of the current segment
	vbuf  []byte   // decoded attribute value
}

// reset clears references into the last stanza (so it can be collected)
// and drops slices grown large by an unusual stanza.
func (sc *scratch) reset() {
	// Popped entries were cleared when popped; what is left is from an
	// error mid-stanza. (attrs and tab hold no pointers.)
	sc.ns = clearScratch(sc.ns, len(sc.ns))
	sc.stack = clearScratch(sc.stack, len(sc.stack))
	sc.kids = clearScratch(sc.kids, len(sc.kids))
	sc.vals = clearScratch(sc.vals, len(sc.vals))
	if cap(sc.attrs) > maxScratch {
		sc.attrs = nil
	}
	if cap(sc.tab) > 4*maxScratch {
		sc.tab = nil
	}
	if cap(sc.tbuf) > 4*maxScratch {
		sc.tbuf = nil
	}
	if cap(sc.vbuf) > 4*maxScratch {
		sc.vbuf = nil
	}
}

func clearScratch[T any](s []T, used int) []T {
	if cap(s) > maxScratch {
		return nil
	}
	clear(s[:used])
	return s[:0]
}

// scratchBlock holds a fresh scratch and its first backing arrays in one
// allocation (after NewDecoder or Idle); a slice that outgrows its array
// moves out on its own.
type scratchBlock struct {
	sc    scratch
	ns    [8]nsBind
	stack [8]openElem
	kids  [8]*Element
	attrs [8]rawAttr
	tbuf  [128]byte
}

// scratch returns the decoder's scratch, allocating it if needed.
func (d *Decoder) scratch() *scratch {
	if d.sc == nil {
		var b *scratchBlock
		if d.pool != nil {
			b = d.pool.getScratch()
		}
		if b == nil {
			b = new(scratchBlock)
			b.sc.ns, b.sc.stack, b.sc.kids = b.ns[:0], b.stack[:0], b.kids[:0]
			b.sc.attrs, b.sc.tbuf = b.attrs[:0], b.tbuf[:0]
		}
		d.sc, d.scb = &b.sc, b
	}
	return d.sc
}

// stanzaParser parses the bytes of one framed unit.
type stanzaParser struct {
	d     *Decoder
	sc    *scratch
	s     string
	pos   int
	els   []Element // element slab
	attrs []Attr    // attribute slab
	kids  []*Element

	nextEl int // next free element of els
	nsMark int // len(sc.ns) before the last start tag's declarations

	// current text segment
	segRaw string
	segHas bool // a segment is open
	segBuf bool // the segment is in sc.tbuf (else it is segRaw)
}

// decodeStanza parses the stanza framed at buf[start:scan].
func (d *Decoder) decodeStanza() (*Element, error) {
	raw := d.buf[d.start:d.scan]
	d.start = d.scan
	if err := validChars(raw); err != nil {
		return nil, err
	}
	p := stanzaParser{d: d, sc: d.scratch(), s: string(raw)}
	p.els = make([]Element, d.nElems)
	if d.nAttrs > 0 {
		p.attrs = make([]Attr, 0, d.nAttrs+rootSpare)
	}
	if d.nElems > 1 {
		p.kids = make([]*Element, 0, d.nElems-1)
	}
	el, err := p.parse()
	p.sc.reset()
	return el, err
}

// parseHeader parses the stream start tag and sets the decoder's header.
func (d *Decoder) parseHeader(tag []byte) error {
	if err := validChars(tag); err != nil {
		return err
	}
	p := stanzaParser{d: d, sc: d.scratch(), s: string(tag)}
	p.els = make([]Element, 1)
	d.base = nil
	el, name, self, err := p.startTag()
	defer p.sc.reset()
	if err != nil {
		return err
	}
	if p.pos != len(p.s) {
		return newError(condNotWellFormed, "malformed stream header")
	}
	if el.Space != NSStream || el.Local != "stream" {
		return errorf(condInvalidNamespace, "the stream element must be <stream xmlns='%s'>, got {%s}%s",
			NSStream, el.Space, el.Local)
	}
	h := &Header{Attrs: el.Attrs}
	for _, b := range p.sc.ns {
		if b.prefix == "" {
			h.DefaultNS = b.uri
		}
	}
	// The bindings and the name outlive the header (DropHeader): give them
	// their own strings, so they do not keep the header's text alive.
	d.base = make([]nsBind, len(p.sc.ns))
	for i, b := range p.sc.ns {
		d.base[i] = nsBind{prefix: intern(b.prefix), uri: intern(b.uri)}
	}
	d.hdr = h
	d.opened = true
	d.defaultNS = intern(h.DefaultNS)
	d.streamName = intern(name)
	d.closed = self
	return nil
}

// intern returns s without reference to the text it was cut from: the
// usual stream names and namespaces as constants, others copied.
func intern(s string) string {
	switch s {
	case "":
		return ""
	case NSClient:
		return NSClient
	case NSServer:
		return NSServer
	case NSStream:
		return NSStream
	case "stream":
		return "stream"
	case "stream:stream":
		return "stream:stream"
	case "jabber:server:dialback":
		return "jabber:server:dialback"
	case "db":
		return "db"
	}
	return strings.Clone(s)
}

func (p *stanzaParser) parse() (*Element, error) {
	s := p.s
	for p.pos < len(s) {
		if s[p.pos] != '<' {
			j := strings.IndexByte(s[p.pos:], '<')
			if j < 0 {
				break
			}
			if err := p.text(s[p.pos : p.pos+j]); err != nil {
				return nil, err
			}
			p.pos += j
			continue
		}
		if p.pos+1 >= len(s) {
			break
		}
		switch s[p.pos+1] {
		case '/':
			root, done, err := p.endTag()
			if err != nil {
				return nil, err
			}
			if done {
				if p.pos != len(s) {
					return nil, newError(condNotWellFormed, "data after the end of the stanza")
				}
				return root, nil
			}
		case '!':
			if err := p.cdata(); err != nil {
				return nil, err
			}
		case '?':
			return nil, newError(condRestrictedXML, "processing instructions are not allowed")
		default:
			if len(p.sc.stack) > 0 {
				p.flushText(p.sc.stack[len(p.sc.stack)-1].el, true)
			}
			el, name, self, err := p.startTag()
			if err != nil {
				return nil, err
			}
			if len(p.sc.stack) > 0 {
				p.sc.kids = append(p.sc.kids, el)
			}
			if self {
				clear(p.sc.ns[p.nsMark:])
				p.sc.ns = p.sc.ns[:p.nsMark]
				if len(p.sc.stack) == 0 {
					if p.pos != len(s) {
						return nil, newError(condNotWellFormed, "data after the end of the stanza")
					}
					return el, nil
				}
				continue
			}
			if len(p.sc.stack) >= p.d.lim.MaxDepth {
				return nil, errorf(condPolicyViolation, "elements nested deeper than %d", p.d.lim.MaxDepth)
			}
			st := p.sc.stack
			if n := len(st); n < cap(st) {
				st = st[:n+1]
			} else {
				st = append(st, openElem{})
			}
			top := &st[len(st)-1]
			top.el, top.name, top.nsMark, top.kidMark = el, name, p.nsMark, len(p.sc.kids)
			p.sc.stack = st
		}
	}
	return nil, newError(condNotWellFormed, "unexpected end of stanza")
}

// startTag parses a start tag at p.pos. It pushes the element's namespace
// declarations onto sc.ns (the caller pops them), returns the element, its
// qualified name and whether it was self-closing.
func (p *stanzaParser) startTag() (*Element, string, bool, error) {
	s := p.s
	lim := &p.d.lim
	pos := p.pos + 1
	name, colon, pos, err := p.qname(pos)
	if err != nil {
		return nil, "", false, err
	}
	sc := p.sc
	sc.attrs = sc.attrs[:0]
	clear(sc.vals)
	sc.vals = sc.vals[:0]
	self := false
	for {
		sp := pos
		for pos < len(s) && isSpace(s[pos]) {
			pos++
		}
		if pos >= len(s) {
			return nil, "", false, newError(condNotWellFormed, "unexpected end inside a tag")
		}
		c := s[pos]
		if c == '>' {
			pos++
			break
		}
		if c == '/' {
			if pos+1 < len(s) && s[pos+1] == '>' {
				pos += 2
				self = true
				break
			}
			return nil, "", false, errorf(condNotWellFormed, "expected '>' after '/' in <%s>", name)
		}
		if sp == pos {
			if c >= utf8.RuneSelf || nameTab[c]&1 != 0 || c == ':' {
				return nil, "", false, errorf(condNotWellFormed, "attributes must be separated by whitespace in <%s>", name)
			}
			return nil, "", false, errorf(condNotWellFormed, "bad attribute syntax in <%s>", name)
		}
		an, acolon, np, err := p.qname(pos)
		if err != nil {
			return nil, "", false, err
		}
		pos = np
		for pos < len(s) && isSpace(s[pos]) {
			pos++
		}
		if pos >= len(s) || s[pos] != '=' {
			return nil, "", false, errorf(condNotWellFormed, "attribute %s in <%s> has no value", an, name)
		}
		pos++
		for pos < len(s) && isSpace(s[pos]) {
			pos++
		}
		if pos >= len(s) || s[pos] != '\'' && s[pos] != '"' {
			return nil, "", false, errorf(condNotWellFormed, "attribute %s in <%s> is not quoted", an, name)
		}
		q := s[pos]
		pos++
		j := strings.IndexByte(s[pos:], q)
		if j < 0 {
			return nil, "", false, newError(condNotWellFormed, "unterminated attribute value")
		}
		if len(sc.attrs) >= lim.MaxAttrs {
			return nil, "", false, errorf(condPolicyViolation, "element <%s> has more than %d attributes", name, lim.MaxAttrs)
		}
		a := rawAttr{off: int32(np - len(an)), n: int32(len(an)), colon: int32(acolon), voff: int32(pos), vn: int32(j), dec: -1}
		if raw := s[pos : pos+j]; needsDecode(raw) {
			v, err := decodeInto(sc.vbuf[:0], raw, true)
			sc.vbuf = v
			if err != nil {
				return nil, "", false, err
			}
			a.dec = int32(len(sc.vals))
			sc.vals = append(sc.vals, string(v))
		}
		pos += j + 1
		sc.attrs = append(sc.attrs, a)
	}
	p.pos = pos

	if err := p.checkRawDuplicates(name); err != nil {
		return nil, "", false, err
	}

	// Namespace declarations apply to the element and all its attributes.
	p.nsMark = len(sc.ns)
	nDecl := 0
	for i := range sc.attrs {
		a := &sc.attrs[i]
		switch {
		case a.colon < 0 && p.aname(a) == "xmlns":
			nDecl++
			v := p.avalue(a)
			if v == NSXML || v == nsXMLNS {
				return nil, "", false, errorf(condNotWellFormed, "%s cannot be the default namespace", v)
			}
			sc.pushNS("", v)
		case a.colon == 5 && p.aname(a)[:5] == "xmlns":
			nDecl++
			prefix := p.aname(a)[6:]
			v := p.avalue(a)
			switch {
			case prefix == "xmlns":
				return nil, "", false, newError(condBadNamespacePrefix, "the xmlns prefix cannot be declared")
			case prefix == "xml":
				if v != NSXML {
					return nil, "", false, newError(condBadNamespacePrefix, "the xml prefix cannot be rebound")
				}
				continue
			case v == "":
				return nil, "", false, errorf(condNotWellFormed, "prefix %s is declared with an empty namespace", prefix)
			case v == NSXML || v == nsXMLNS:
				return nil, "", false, errorf(condBadNamespacePrefix, "%s cannot be bound to prefix %s", v, prefix)
			}
			sc.pushNS(prefix, v)
		}
	}

	if len(sc.ns) > maxNSBindings {
		return nil, "", false, errorf(condPolicyViolation, "more than %d namespace declarations in scope", maxNSBindings)
	}

	el := p.newElement()
	el.Local = name[colon+1:]
	if colon < 0 {
		el.Space = p.lookup("")
	} else {
		prefix := name[:colon]
		switch prefix {
		case "xml":
			el.Space = NSXML
		case "xmlns":
			return nil, "", false, errorf(condBadNamespacePrefix, "element <%s> uses the xmlns prefix", name)
		default:
			uri, ok := p.lookupPrefix(prefix)
			if !ok {
				return nil, "", false, errorf(condBadNamespacePrefix, "undeclared namespace prefix %s in <%s>", prefix, name)
			}
			el.Space = uri
		}
	}

	if n := len(sc.attrs) - nDecl; n > 0 {
		a0 := len(p.attrs)
		nPrefixed := 0
		for i := range sc.attrs {
			a := &sc.attrs[i]
			an := p.aname(a)
			if a.colon < 0 {
				if an != "xmlns" {
					p.addAttr("", an, p.avalue(a))
				}
				continue
			}
			prefix := an[:a.colon]
			var uri string
			switch prefix {
			case "xmlns":
				continue
			case "xml":
				uri = NSXML
			default:
				var ok bool
				uri, ok = p.lookupPrefix(prefix)
				if !ok {
					return nil, "", false, errorf(condBadNamespacePrefix, "undeclared namespace prefix %s in attribute %s of <%s>", prefix, an, name)
				}
			}
			p.addAttr(uri, an[a.colon+1:], p.avalue(a))
			nPrefixed++
		}
		end := len(p.attrs)
		el.Attrs = p.attrs[a0:end:end]
		if el == &p.els[0] && cap(p.attrs)-end >= rootSpare {
			// The stanza's root: the server stamps 'from' (and often
			// 'to') on it, so leave room there instead of copying every
			// attribute on the first SetAttr.
			el.Attrs = p.attrs[a0 : end : end+rootSpare]
			p.attrs = p.attrs[:end+rootSpare]
		}
		if nPrefixed > 1 {
			if err := p.checkResolvedDuplicates(el.Attrs, name); err != nil {
				return nil, "", false, err
			}
		}
	}
	return el, name, self, nil
}

// checkRawDuplicates rejects two attributes with the same qualified name.
func (p *stanzaParser) checkRawDuplicates(elem string) error {
	attrs := p.sc.attrs
	n := len(attrs)
	if n < 2 {
		return nil
	}
	if n <= 8 {
		for i := 1; i < n; i++ {
			ni := p.aname(&attrs[i])
			for j := 0; j < i; j++ {
				if p.aname(&attrs[j]) == ni {
					return errorf(condNotWellFormed, "duplicate attribute %s in <%s>", ni, elem)
				}
			}
		}
		return nil
	}
	t := p.sc.table(n)
	mask := len(t) - 1
	seed := p.d.hashSeed()
	for i := range attrs {
		ni := p.aname(&attrs[i])
		for k := int(maphash.String(seed, ni)) & mask; ; k = (k + 1) & mask {
			j := t[k]
			if j < 0 {
				t[k] = int32(i)
				break
			}
			if p.aname(&attrs[j]) == ni {
				return errorf(condNotWellFormed, "duplicate attribute %s in <%s>", ni, elem)
			}
		}
	}
	return nil
}

// checkResolvedDuplicates rejects two prefixed attributes that resolve to
// the same {namespace}local.
func (p *stanzaParser) checkResolvedDuplicates(attrs []Attr, elem string) error {
	dup := func(a *Attr) error {
		return errorf(condNotWellFormed, "duplicate attribute {%s}%s in <%s>", a.Space, a.Local, elem)
	}
	if len(attrs) <= 8 {
		for i := 1; i < len(attrs); i++ {
			if attrs[i].Space == "" {
				continue
			}
			for j := 0; j < i; j++ {
				if attrs[i].Local == attrs[j].Local && attrs[i].Space == attrs[j].Space {
					return dup(&attrs[i])
				}
			}
		}
		return nil
	}
	t := p.sc.table(len(attrs))
	mask := len(t) - 1
	seed := p.d.hashSeed()
	for i := range attrs {
		a := &attrs[i]
		if a.Space == "" {
			continue
		}
		h := maphash.String(seed, a.Space) ^ maphash.String(seed, a.Local)*0x9E3779B97F4A7C15
		for k := int(h) & mask; ; k = (k + 1) & mask {
			j := t[k]
			if j < 0 {
				t[k] = int32(i)
				break
			}
			if attrs[j].Local == a.Local && attrs[j].Space == a.Space {
				return dup(a)
			}
		}
	}
	return nil
}

// table returns an empty open-addressing table (-1 = free) for n keys.
func (sc *scratch) table(n int) []int32 {
	size := 16
	for size < 2*n {
		size <<= 1
	}
	if cap(sc.tab) < size {
		sc.tab = make([]int32, size)
	}
	t := sc.tab[:size]
	for i := range t {
		t[i] = -1
	}
	return t
}

// hashSeed returns the decoder's seed for duplicate detection; it is
// random per decoder so that peers cannot aim for hash collisions.
func (d *Decoder) hashSeed() maphash.Seed {
	if d.seed == (maphash.Seed{}) {
		d.seed = maphash.MakeSeed()
	}
	return d.seed
}

func (p *stanzaParser) newElement() *Element {
	if p.nextEl < len(p.els) {
		el := &p.els[p.nextEl]
		p.nextEl++
		return el
	}
	return new(Element)
}

// lookup returns the namespace bound to prefix ("" for the default
// namespace), or "" if none.
func (p *stanzaParser) lookup(prefix string) string {
	uri, _ := p.lookupPrefix(prefix)
	return uri
}

func (p *stanzaParser) lookupPrefix(prefix string) (string, bool) {
	for _, ns := range [2][]nsBind{p.sc.ns, p.d.base} {
		for i := len(ns) - 1; i >= 0; i-- {
			if ns[i].prefix == prefix {
				return ns[i].uri, true
			}
		}
	}
	return "", false
}

// endTag parses an end tag at p.pos and closes the current element, which
// it returns. It reports whether that was the stanza element.
func (p *stanzaParser) endTag() (*Element, bool, error) {
	s := p.s
	sc := p.sc
	name, _, pos, err := p.qname(p.pos + 2)
	if err != nil {
		return nil, false, err
	}
	for pos < len(s) && isSpace(s[pos]) {
		pos++
	}
	if pos >= len(s) || s[pos] != '>' {
		return nil, false, errorf(condNotWellFormed, "malformed end tag </%s", name)
	}
	p.pos = pos + 1
	if len(sc.stack) == 0 {
		return nil, false, errorf(condNotWellFormed, "unexpected end tag </%s>", name)
	}
	top := sc.stack[len(sc.stack)-1]
	if name != top.name {
		return nil, false, errorf(condNotWellFormed, "end tag </%s> does not match <%s>", name, top.name)
	}
	kids := sc.kids[top.kidMark:]
	p.flushText(top.el, len(kids) > 0)
	kids = sc.kids[top.kidMark:]
	if len(kids) > 0 {
		k0 := len(p.kids)
		p.kids = append(p.kids, kids...)
		top.el.Children = p.kids[k0:len(p.kids):len(p.kids)]
		clear(kids)
		sc.kids = sc.kids[:top.kidMark]
	}
	clear(sc.ns[top.nsMark:])
	sc.ns = sc.ns[:top.nsMark]
	sc.stack[len(sc.stack)-1] = openElem{}
	sc.stack = sc.stack[:len(sc.stack)-1]
	return top.el, len(sc.stack) == 0, nil
}

// cdata parses "<![CDATA[...]]>" at p.pos.
func (p *stanzaParser) cdata() error {
	s := p.s[p.pos:]
	if !strings.HasPrefix(s, "<![CDATA[") || len(p.sc.stack) == 0 {
		return newError(condRestrictedXML, "comments and DTDs are not allowed")
	}
	j := strings.Index(s[9:], "]]>")
	if j < 0 {
		return newError(condNotWellFormed, "unterminated CDATA section")
	}
	content := s[9 : 9+j]
	p.pos += 9 + j + 3
	if strings.IndexByte(content, '\r') < 0 {
		p.addPiece(content)
		return nil
	}
	p.toBuf()
	tb := p.sc.tbuf
	for i := 0; i < len(content); i++ {
		c := content[i]
		if c == '\r' {
			c = '\n'
			if i+1 < len(content) && content[i+1] == '\n' {
				i++
			}
		}
		tb = append(tb, c)
	}
	p.sc.tbuf = tb
	return nil
}

// text adds raw character data (between markup) to the current segment.
func (p *stanzaParser) text(raw string) error {
	if len(p.sc.stack) == 0 {
		return newError(condNotWellFormed, "text outside the stanza element")
	}
	if strings.Contains(raw, "]]>") {
		return newError(condNotWellFormed, "']]>' is not allowed in text")
	}
	if strings.IndexByte(raw, '&') < 0 && strings.IndexByte(raw, '\r') < 0 {
		p.addPiece(raw)
		return nil
	}
	p.toBuf()
	var err error
	p.sc.tbuf, err = decodeInto(p.sc.tbuf, raw, false)
	return err
}

func (p *stanzaParser) addPiece(raw string) {
	if !p.segHas {
		p.segRaw, p.segHas = raw, true
		return
	}
	p.toBuf()
	p.sc.tbuf = append(p.sc.tbuf, raw...)
}

// toBuf moves the current segment into sc.tbuf.
func (p *stanzaParser) toBuf() {
	if p.segBuf {
		return
	}
	p.sc.tbuf = append(p.sc.tbuf[:0], p.segRaw...)
	p.segRaw, p.segHas, p.segBuf = "", true, true
}

// flushText ends the current text segment of el. In mixed content (el has
// or is getting child elements) a non-whitespace segment becomes a text
// node child and a whitespace-only one is dropped; otherwise it is el.Text.
func (p *stanzaParser) flushText(el *Element, mixed bool) {
	if !p.segHas {
		return
	}
	var t string
	if mixed {
		if p.segBuf {
			if isAllSpace(p.sc.tbuf) {
				p.segHas, p.segBuf = false, false
				return
			}
			t = string(p.sc.tbuf)
		} else {
			if isAllSpace(p.segRaw) {
				p.segHas, p.segRaw = false, ""
				return
			}
			t = p.segRaw
		}
		p.sc.kids = append(p.sc.kids, &Element{Text: t})
	} else {
		if p.segBuf {
			t = string(p.sc.tbuf)
		} else {
			t = p.segRaw
		}
		el.Text = t
	}
	p.segHas, p.segBuf, p.segRaw = false, false, ""
}

func isAllSpace[T string | []byte](s T) bool {
	for i := 0; i < len(s); i++ {
		if !isSpace(s[i]) {
			return false
		}
	}
	return true
}

// attrSpecial marks bytes that make an attribute value need decoding.
var attrSpecial = [256]bool{'&': true, '<': true, '\t': true, '\n': true, '\r': true}

// needsDecode reports whether an attribute value holds '&', '<' or
// whitespace other than spaces. The stanza passed validChars, so the only
// bytes below 0x20 are tab, LF and CR.
func needsDecode(raw string) bool {
	const (
		ones  = 0x0101010101010101
		highs = 0x8080808080808080
	)
	i := 0
	for ; i+8 <= len(raw); i += 8 {
		x := uint64(raw[i]) | uint64(raw[i+1])<<8 | uint64(raw[i+2])<<16 | uint64(raw[i+3])<<24 |
			uint64(raw[i+4])<<32 | uint64(raw[i+5])<<40 | uint64(raw[i+6])<<48 | uint64(raw[i+7])<<56
		amp := x ^ (ones * '&')
		lt := x ^ (ones * '<')
		// A byte is flagged when it is zero in amp or lt, or below 0x20
		// in x (false positives only from borrows, after a true one).
		if ((amp-ones)&^amp|(lt-ones)&^lt|(x-ones*0x20)&^x)&highs != 0 {
			return true
		}
	}
	for ; i < len(raw); i++ {
		if attrSpecial[raw[i]] {
			return true
		}
	}
	return false
}

// addAttr appends an attribute to the slab field by field (a struct copy
// would cost a bulk write barrier while the GC runs).
func (p *stanzaParser) addAttr(space, local, value string) {
	n := len(p.attrs)
	if n < cap(p.attrs) {
		p.attrs = p.attrs[:n+1]
	} else {
		p.attrs = append(p.attrs, Attr{})
	}
	a := &p.attrs[n]
	a.Space, a.Local, a.Value = space, local, value
}

func (sc *scratch) pushNS(prefix, uri string) {
	n := len(sc.ns)
	if n < cap(sc.ns) {
		sc.ns = sc.ns[:n+1]
	} else {
		sc.ns = append(sc.ns, nsBind{})
	}
	b := &sc.ns[n]
	b.prefix, b.uri = prefix, uri
}

// decodeInto appends raw with entities and character references decoded
// and line ends normalized. In attribute values (attr) '<' is an error and
// literal whitespace becomes a space (XML 1.0 §3.3.3).
func decodeInto(dst []byte, raw string, attr bool) ([]byte, error) {
	for i := 0; i < len(raw); {
		c := raw[i]
		switch c {
		case '&':
			r, n, err := entity(raw[i:])
			if err != nil {
				return dst, err
			}
			dst = utf8.AppendRune(dst, r)
			i += n
		case '\r':
			if attr {
				dst = append(dst, ' ')
			} else {
				dst = append(dst, '\n')
			}
			i++
			if i < len(raw) && raw[i] == '\n' {
				i++
			}
		case '\n', '\t':
			if attr {
				c = ' '
			}
			dst = append(dst, c)
			i++
		case '<':
			return dst, newError(condNotWellFormed, "'<' in an attribute value")
		default:
			j := i + 1
			for j < len(raw) && !attrSpecial[raw[j]] {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
		}
	}
	return dst, nil
}

// entity decodes the reference at the start of s ("&...;"), returning the
// character and the bytes consumed.
func entity(s string) (rune, int, error) {
	if len(s) > 1 && s[1] == '#' {
		i, base := 2, rune(10)
		if len(s) > 2 && s[2] == 'x' {
			i, base = 3, 16
		}
		var v rune
		digits := 0
		for ; i < len(s) && s[i] != ';'; i++ {
			c := s[i]
			var dv rune
			switch {
			case c >= '0' && c <= '9':
				dv = rune(c - '0')
			case base == 16 && c >= 'a' && c <= 'f':
				dv = rune(c-'a') + 10
			case base == 16 && c >= 'A' && c <= 'F':
				dv = rune(c-'A') + 10
			default:
				return 0, 0, errorf(condNotWellFormed, "malformed character reference %s", quoteSnippet(s[:i+1]))
			}
			v = v*base + dv
			if v > 0x10FFFF {
				v = 0x110000
			}
			digits++
		}
		if i >= len(s) || digits == 0 {
			return 0, 0, errorf(condNotWellFormed, "malformed character reference %s", quoteSnippet(s[:i]))
		}
		if !isXMLChar(v) {
			return 0, 0, errorf(condNotWellFormed, "character reference %s is not an allowed XML character", s[:i+1])
		}
		return v, i + 1, nil
	}
	end := len(s)
	if end > 8 {
		end = 8
	}
	j := strings.IndexByte(s[:end], ';')
	if j < 0 {
		return 0, 0, errorf(condNotWellFormed, "'&' must be escaped as &amp; (at %s)", quoteSnippet(s[:end]))
	}
	switch s[1:j] {
	case "lt":
		return '<', j + 1, nil
	case "gt":
		return '>', j + 1, nil
	case "amp":
		return '&', j + 1, nil
	case "quot":
		return '"', j + 1, nil
	case "apos":
		return '\'', j + 1, nil
	}
	return 0, 0, errorf(condNotWellFormed, "undeclared entity %s", s[:j+1])
}

// Name characters (XML 1.0 fifth edition), ASCII part: bit 1 = may start
// an NCName, bit 2 = may continue one. Non-ASCII bytes are 0 (handled by
// isNameStartRune and isNameRune).
var nameTab = func() (t [256]uint8) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = 3
		t[c-'a'+'A'] = 3
	}
	t['_'] = 3
	for c := '0'; c <= '9'; c++ {
		t[c] = 2
	}
	t['-'] = 2
	t['.'] = 2
	return t
}()

func isNameStartRune(r rune) bool {
	switch {
	case r >= 0xC0 && r <= 0xD6, r >= 0xD8 && r <= 0xF6, r >= 0xF8 && r <= 0x2FF,
		r >= 0x370 && r <= 0x37D, r >= 0x37F && r <= 0x1FFF, r >= 0x200C && r <= 0x200D,
		r >= 0x2070 && r <= 0x218F, r >= 0x2C00 && r <= 0x2FEF, r >= 0x3001 && r <= 0xD7FF,
		r >= 0xF900 && r <= 0xFDCF, r >= 0xFDF0 && r <= 0xFFFD, r >= 0x10000 && r <= 0xEFFFF:
		return true
	}
	return false
}

func isNameRune(r rune) bool {
	return isNameStartRune(r) || r == 0xB7 || r >= 0x300 && r <= 0x36F || r >= 0x203F && r <= 0x2040
}

// qname parses a qualified name (NCName or NCName:NCName) at pos. It
// returns the name, the index of its colon (-1 if none) and the position
// after it.
func (p *stanzaParser) qname(pos int) (string, int, int, error) {
	s := p.s
	start := pos
	colon := -1
	partStart := true
loop:
	for pos < len(s) {
		c := s[pos]
		if t := nameTab[c]; t != 0 && (!partStart || t&1 != 0) {
			// The common case: a run of ASCII name characters.
			pos++
			for pos < len(s) && nameTab[s[pos]] != 0 {
				pos++
			}
			partStart = false
			continue
		}
		switch {
		case c == ':':
			if colon >= 0 || partStart {
				return "", 0, 0, errorf(condNotWellFormed, "malformed name %s", quoteSnippet(s[start:pos+1]))
			}
			colon = pos - start
			partStart = true
			pos++
		case c >= utf8.RuneSelf:
			r, n := utf8.DecodeRuneInString(s[pos:])
			if partStart && !isNameStartRune(r) || !isNameRune(r) {
				break loop
			}
			partStart = false
			pos += n
		default:
			break loop
		}
	}
	if pos == start || partStart {
		if pos < len(s) {
			return "", 0, 0, errorf(condNotWellFormed, "malformed name at %s", quoteSnippet(s[start:pos+1]))
		}
		return "", 0, 0, newError(condNotWellFormed, "unexpected end in a name")
	}
	if pos-start > p.d.lim.MaxName {
		return "", 0, 0, errorf(condPolicyViolation, "name longer than %d bytes", p.d.lim.MaxName)
	}
	return s[start:pos], colon, pos, nil
}
