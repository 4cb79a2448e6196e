package xml

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"unsafe"
)

const jc = "{jabber:client}"

func TestDecodeAccepts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		header string // testHeader if empty
		in     string
		want   []string
	}{
		{
			name: "message",
			in:   "<message to='a@b' id=\"1\"><body>hi</body></message>",
			want: []string{`(` + jc + `message to="a@b" id="1" [(` + jc + `body "hi")])`},
		},
		{
			name: "self-closing and whitespace keepalives",
			in:   " \n<presence/>\r\n\t <presence />  ",
			want: []string{`(` + jc + `presence)`, `(` + jc + `presence)`},
		},
		{
			name: "child default namespace",
			in:   "<iq type='get' id='1'><query xmlns='jabber:iq:roster'><item jid='x@y'/></query></iq>",
			want: []string{`(` + jc + `iq type="get" id="1" [({jabber:iq:roster}query [({jabber:iq:roster}item jid="x@y")])])`},
		},
		{
			name: "prefixes",
			in:   "<message xmlns:a='urn:a'><a:x a:k='1' k='2'><a:y/><z/></a:x></message>",
			want: []string{`(` + jc + `message [({urn:a}x {urn:a}k="1" k="2" [({urn:a}y) (` + jc + `z)])])`},
		},
		{
			name: "attribute order kept, declarations dropped",
			in:   "<message b='1' xmlns:p='urn:p' a='2' p:c='3'/>",
			want: []string{`(` + jc + `message b="1" a="2" {urn:p}c="3")`},
		},
		{
			name: "default namespace undeclared",
			in:   "<message><x xmlns=''><y/></x></message>",
			want: []string{`(` + jc + `message [({}x [({}y)])])`},
		},
		{
			name: "prefix shadowing",
			in:   "<message xmlns:p='urn:1'><p:a><p:b xmlns:p='urn:2'/><p:c/></p:a></message>",
			want: []string{`(` + jc + `message [({urn:1}a [({urn:2}b) ({urn:1}c)])])`},
		},
		{
			name:   "prefixes declared on the stream header",
			header: "<stream:stream xmlns='jabber:server' xmlns:db='jabber:server:dialback' xmlns:stream='http://etherx.jabber.org/streams'>",
			in:     "<db:result from='a' to='b'>key</db:result>",
			want:   []string{`({jabber:server:dialback}result from="a" to="b" "key")`},
		},
		{
			name: "stream namespace elements",
			in:   "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>",
			want: []string{`({http://etherx.jabber.org/streams}features [({urn:ietf:params:xml:ns:xmpp-tls}starttls [({urn:ietf:params:xml:ns:xmpp-tls}required)])])`},
		},
		{
			name: "xml:lang and declared xml prefix",
			in:   "<message xml:lang='en' xmlns:xml='http://www.w3.org/XML/1998/namespace'><body xml:lang='de'>x</body></message>",
			want: []string{`(` + jc + `message {http://www.w3.org/XML/1998/namespace}lang="en" [(` + jc + `body {http://www.w3.org/XML/1998/namespace}lang="de" "x")])`},
		},
		{
			name: "same local name in two namespaces",
			in:   "<x a='1' p:a='2' xmlns:p='urn:p'/>",
			want: []string{`(` + jc + `x a="1" {urn:p}a="2")`},
		},
		{
			name: "entities",
			in:   "<body a='&lt;&gt;&amp;&quot;&apos;'>&lt;&gt;&amp;&quot;&apos;</body>",
			want: []string{`(` + jc + `body a="<>&\"'" "<>&\"'")`},
		},
		{
			name: "character references",
			in:   "<body a='&#65;&#x42;&#x0043;&#10;&#x9;&#13;'>&#65;&#x1F600;&#xe9;&#13;&#10;</body>",
			want: []string{`(` + jc + `body a="ABC\n\t\r" "A😀é\r\n")`},
		},
		{
			name: "CDATA",
			in:   "<body>a<![CDATA[<b> & ]] ]>]]>c<![CDATA[]]></body>",
			want: []string{`(` + jc + `body "a<b> & ]] ]>c")`},
		},
		{
			name: "gt and quotes in values and text",
			in:   `<body a="it's > 1" b='say "hi"'>1 > 0 ]] ></body>`,
			want: []string{`(` + jc + `body a="it's > 1" b="say \"hi\"" "1 > 0 ]] >")`},
		},
		{
			name: "whitespace in tags",
			in:   "<message\n\tto = 'x'\r\n  ></message\n>",
			want: []string{`(` + jc + `message to="x")`},
		},
		{
			name: "text-only element keeps whitespace",
			in:   "<message><body>  </body><x>\n</x></message>",
			want: []string{`(` + jc + `message [(` + jc + `body "  ") (` + jc + `x "\n")])`},
		},
		{
			name: "mixed content",
			in:   "<p>hello <b>big</b> world<i/>\n  </p>",
			want: []string{`(` + jc + `p ["hello " (` + jc + `b "big") " world" (` + jc + `i)])`},
		},
		{
			name: "mixed content drops whitespace-only segments",
			in:   "<message>\n  <body>x</body>\n  <thread>t</thread>\n</message>",
			want: []string{`(` + jc + `message [(` + jc + `body "x") (` + jc + `thread "t")])`},
		},
		{
			name: "mixed content merges entities and CDATA into one segment",
			in:   "<p><b/>a&amp;<![CDATA[b]]>c<i/></p>",
			want: []string{`(` + jc + `p [(` + jc + `b) "a&bc" (` + jc + `i)])`},
		},
		{
			name: "line ends normalized",
			in:   "<body a='x\r\ny\rz\tw\nv'>a\r\nb\rc\n<![CDATA[d\r\ne]]></body>",
			want: []string{`(` + jc + `body a="x y z w v" "a\nb\nc\nd\ne")`},
		},
		{
			name: "non-ASCII names and text",
			in:   "<message><héllo 名前='値'>ünïcödé 日本</héllo></message>",
			want: []string{`(` + jc + `message [(` + jc + `héllo 名前="値" "ünïcödé 日本")])`},
		},
		{
			name: "names with digits, dots, dashes, underscores",
			in:   "<origin-id xmlns='urn:xmpp:sid:0' id='x' _a.b-c9='1'/>",
			want: []string{`({urn:xmpp:sid:0}origin-id id="x" _a.b-c9="1")`},
		},
		{
			name: "many attributes, same local names in several namespaces",
			in:   "<a xmlns:p='u' xmlns:q='v' b1='' b2='' b3='' p:b1='' p:b2='' p:b3='' q:b1='' q:b2='' q:b3='' xml:b1=''/>",
			want: []string{`(` + jc + `a b1="" b2="" b3="" {u}b1="" {u}b2="" {u}b3="" {v}b1="" {v}b2="" {v}b3="" {http://www.w3.org/XML/1998/namespace}b1="")`},
		},
		{
			name: "empty attribute value",
			in:   "<message id=''/>",
			want: []string{`(` + jc + `message id="")`},
		},
		{
			name: "several stanzas",
			in:   "<a>1</a><b>2</b> <c>3</c>",
			want: []string{`(` + jc + `a "1")`, `(` + jc + `b "2")`, `(` + jc + `c "3")`},
		},
	}
	for _, tc := range tests {
		for _, chunk := range chunkSizes {
			t.Run(fmt.Sprintf("%s/%d", tc.name, chunk), func(t *testing.T) {
				t.Parallel()
				h := tc.header
				if h == "" {
					h = testHeader
				}
				_, els, err := decodeAll(h+tc.in+"</stream:stream>", chunk, Limits{})
				if err != ErrStreamClosed {
					t.Fatalf("stream ended with %v, want ErrStreamClosed (after %d stanzas)", err, len(els))
				}
				var got []string
				for _, el := range els {
					got = append(got, dump(el))
				}
				if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
					t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
				}
			})
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	t.Parallel()
	// The limits admit testHeader (85 bytes, names up to 13 bytes).
	small := Limits{MaxStanza: 100, MaxDepth: 3, MaxAttrs: 3, MaxName: 13}
	tests := []struct {
		name string
		in   string // after testHeader
		lim  Limits
		cond string
	}{
		// RFC 6120 §11.1 restricted XML
		{"comment in stanza", "<message><!-- hi --></message>", Limits{}, condRestrictedXML},
		{"comment between stanzas", "<!-- hi --><message/>", Limits{}, condRestrictedXML},
		{"PI in stanza", "<message><?php x ?></message>", Limits{}, condRestrictedXML},
		{"PI between stanzas", "<?foo bar?>", Limits{}, condRestrictedXML},
		{"XML declaration after header", "<?xml version='1.0'?>", Limits{}, condRestrictedXML},
		{"DOCTYPE in stanza", "<message><!DOCTYPE x></message>", Limits{}, condRestrictedXML},
		{"entity declaration in stanza", "<message><!ENTITY x 'y'></message>", Limits{}, condRestrictedXML},
		{"DOCTYPE between stanzas", "<!DOCTYPE x [<!ENTITY a 'b'>]>", Limits{}, condRestrictedXML},
		// entities and characters
		{"undeclared entity in text", "<body>&lol;</body>", Limits{}, condNotWellFormed},
		{"undeclared entity in attribute", "<body a='&nbsp;'/>", Limits{}, condNotWellFormed},
		{"bare ampersand", "<body>a & b</body>", Limits{}, condNotWellFormed},
		{"unterminated entity", "<body>&amp</body>", Limits{}, condNotWellFormed},
		{"char ref zero", "<body>&#0;</body>", Limits{}, condNotWellFormed},
		{"char ref control", "<body>&#1;</body>", Limits{}, condNotWellFormed},
		{"char ref surrogate", "<body>&#xD800;</body>", Limits{}, condNotWellFormed},
		{"char ref FFFE", "<body>&#xFFFE;</body>", Limits{}, condNotWellFormed},
		{"char ref too big", "<body>&#x110000;</body>", Limits{}, condNotWellFormed},
		{"char ref huge", "<body>&#99999999999999999999;</body>", Limits{}, condNotWellFormed},
		{"char ref empty", "<body>&#;</body>", Limits{}, condNotWellFormed},
		{"char ref empty hex", "<body>&#x;</body>", Limits{}, condNotWellFormed},
		{"char ref bad digit", "<body>&#12a;</body>", Limits{}, condNotWellFormed},
		{"char ref uppercase X", "<body>&#X41;</body>", Limits{}, condNotWellFormed},
		{"invalid UTF-8", "<body>\xff</body>", Limits{}, condNotWellFormed},
		{"truncated UTF-8", "<body>\xc3(</body>", Limits{}, condNotWellFormed},
		{"overlong UTF-8", "<body>\xc0\xaf</body>", Limits{}, condNotWellFormed},
		{"UTF-8 surrogate", "<body>\xed\xa0\x80</body>", Limits{}, condNotWellFormed},
		{"invalid UTF-8 in name", "<b\xffody/>", Limits{}, condNotWellFormed},
		{"invalid UTF-8 in attribute", "<body a='\xfe'/>", Limits{}, condNotWellFormed},
		{"U+0001 in text", "<body>\x01</body>", Limits{}, condNotWellFormed},
		{"U+0000 in attribute", "<body a='\x00'/>", Limits{}, condNotWellFormed},
		{"U+FFFF in text", "<body>\uffff</body>", Limits{}, condNotWellFormed},
		{"]]> in text", "<body>a]]>b</body>", Limits{}, condNotWellFormed},
		// structure
		{"mismatched end tag", "<message><body></message></body>", Limits{}, condNotWellFormed},
		{"mismatched prefix in end tag", "<p:a xmlns:p='urn:p'></q:a>", Limits{}, condNotWellFormed},
		{"end tag with attributes", "<a></a x='1'>", Limits{}, condNotWellFormed},
		{"space after <", "< a/>", Limits{}, condNotWellFormed},
		{"space in end tag", "<a></ a>", Limits{}, condNotWellFormed},
		{"< in start tag", "<a <b/>", Limits{}, condNotWellFormed},
		{"bad name start", "<1a/>", Limits{}, condNotWellFormed},
		{"bad name char", "<a$b/>", Limits{}, condNotWellFormed},
		{"empty local name", "<p: xmlns:p='u'/>", Limits{}, condNotWellFormed},
		{"empty prefix", "<:a/>", Limits{}, condNotWellFormed},
		{"two colons", "<a:b:c xmlns:a='u'/>", Limits{}, condNotWellFormed},
		{"unexpected end tag between stanzas", "</message>", Limits{}, condNotWellFormed},
		{"text between stanzas", "hello<message/>", Limits{}, condInvalidXML},
		{"entity between stanzas", "&amp;", Limits{}, condInvalidXML},
		{"CDATA between stanzas", "<![CDATA[x]]>", Limits{}, condInvalidXML},
		// attributes
		{"duplicate attribute", "<message id='1' id='2'/>", Limits{}, condNotWellFormed},
		{"duplicate after resolution", "<a xmlns:p='u' xmlns:q='u' p:x='1' q:x='2'/>", Limits{}, condNotWellFormed},
		{"duplicate xml:lang", "<a xml:lang='en' xmlns:x='http://www.w3.org/XML/1998/namespace' x:lang='de'/>", Limits{}, condBadNamespacePrefix},
		{"duplicate default declaration", "<a xmlns='u' xmlns='v'/>", Limits{}, condNotWellFormed},
		{"duplicate attribute, many attributes", "<a a1='' a2='' a3='' a4='' a5='' a6='' a7='' a8='' a9='' a10='' a11='' a12='' a13='' a14='' a15='' a16='' a17='' a5=''/>", Limits{}, condNotWellFormed},
		{"duplicate after resolution, several attributes", "<a xmlns:p='u' xmlns:q='u' p:a1='' p:a2='' p:a3='' q:a1=''/>", Limits{}, condNotWellFormed},
		{"duplicate after resolution, many attributes", "<a xmlns:p='u' xmlns:q='u' b1='' b2='' b3='' b4='' p:a1='' p:a2='' p:a3='' p:a4='' p:a5='' q:a6='' q:a7='' q:a2=''/>", Limits{}, condNotWellFormed},
		{"unquoted value", "<a x=1/>", Limits{}, condNotWellFormed},
		{"missing value", "<a x/>", Limits{}, condNotWellFormed},
		{"missing equals", "<a x '1'/>", Limits{}, condNotWellFormed},
		{"no space between attributes", "<a x='1'y='2'/>", Limits{}, condNotWellFormed},
		{"< in attribute value", "<a x='<'/>", Limits{}, condNotWellFormed},
		{"slash not before >", "<a / >", Limits{}, condNotWellFormed},
		// namespaces
		{"undeclared element prefix", "<x:message/>", Limits{}, condBadNamespacePrefix},
		{"undeclared attribute prefix", "<message y:a='1'/>", Limits{}, condBadNamespacePrefix},
		{"prefix out of scope", "<a><b xmlns:p='u'/><p:c/></a>", Limits{}, condBadNamespacePrefix},
		{"xmlns element prefix", "<xmlns:a/>", Limits{}, condBadNamespacePrefix},
		{"declaring xmlns prefix", "<a xmlns:xmlns='u'/>", Limits{}, condBadNamespacePrefix},
		{"rebinding xml prefix", "<a xmlns:xml='urn:x'/>", Limits{}, condBadNamespacePrefix},
		{"binding the xml namespace", "<a xmlns:x='http://www.w3.org/XML/1998/namespace'/>", Limits{}, condBadNamespacePrefix},
		{"xml namespace as default", "<a xmlns='http://www.w3.org/XML/1998/namespace'/>", Limits{}, condNotWellFormed},
		{"empty prefixed declaration", "<a xmlns:p=''/>", Limits{}, condNotWellFormed},
		// limits
		{"stanza too big", "<message><body>" + strings.Repeat("x", 100) + "</body></message>", small, condPolicyViolation},
		{"open tag too big", "<message to='" + strings.Repeat("x", 200), small, condPolicyViolation},
		{"too deep", "<a><b><c><d/></c></b></a>", small, condPolicyViolation},
		{"too deep self-closing", "<a><b><c/><c><d/></c></b></a>", small, condPolicyViolation},
		{"too many attributes", "<a b='' c='' d='' e=''/>", small, condPolicyViolation},
		{"too many attributes with declarations", "<a xmlns='u' xmlns:p='v' c='' d=''/>", small, condPolicyViolation},
		{"too many namespace declarations in scope", strings.Repeat("<a xmlns:p='u' xmlns:q='v'>", 70) + "<b/>" + strings.Repeat("</a>", 70),
			Limits{MaxDepth: 100, MaxAttrs: 4}, condPolicyViolation},
		{"element name too long", "<abcdefghijklmn/>", small, condPolicyViolation},
		{"attribute name too long", "<a abcdefghijklmn=''/>", small, condPolicyViolation},
		{"prefixed name too long", "<p:abcdefghijkl xmlns:p='u'/>", small, condPolicyViolation},
	}
	for _, tc := range tests {
		for _, chunk := range chunkSizes {
			t.Run(fmt.Sprintf("%s/%d", tc.name, chunk), func(t *testing.T) {
				t.Parallel()
				h, els, err := decodeAll(testHeader+tc.in+"</stream:stream>", chunk, tc.lim)
				if h == nil {
					t.Fatalf("header failed: %v", err)
				}
				if got := condition(err); got != tc.cond {
					t.Fatalf("got %v (condition %q) after %d stanzas, want condition %q", err, got, len(els), tc.cond)
				}
				if len(els) != 0 {
					t.Errorf("got %d stanzas before the error, want 0", len(els))
				}
				var xe *Error
				if errors.As(err, &xe) && xe.Text == "" {
					t.Errorf("error %v has no text", err)
				}
			})
		}
	}
}

func TestLimitsBoundaries(t *testing.T) {
	t.Parallel()
	// Each stanza sits exactly at a limit and must be accepted.
	// (The header is bounded by MaxStanza too; testHeader is 85 bytes.)
	lim := Limits{MaxStanza: 100, MaxDepth: 3, MaxAttrs: 3, MaxName: 13}
	in := []string{
		"<a>" + strings.Repeat("x", 100-7) + "</a>",
		"<a><b><c/></b></a>",
		"<a><b><c></c></b></a>",
		"<a xmlns='u' b='' c=''/>",
		"<abcdefghijklm/>",
		"<a abcdefghijklm=''/>",
		"<p:abcdefghijk xmlns:p='u'/>",
	}
	for _, chunk := range chunkSizes {
		_, els, err := decodeAll(testHeader+strings.Join(in, "")+"</stream:stream>", chunk, lim)
		if err != ErrStreamClosed || len(els) != len(in) {
			t.Errorf("chunk %d: got %d stanzas, %v; want %d, ErrStreamClosed", chunk, len(els), err, len(in))
		}
	}
	// One byte more fails.
	_, _, err := decodeAll(testHeader+"<a>"+strings.Repeat("x", 100-6)+"</a>", 4096, lim)
	if condition(err) != condPolicyViolation {
		t.Errorf("101-byte stanza: got %v, want policy-violation", err)
	}
}

func TestHeader(t *testing.T) {
	t.Parallel()
	const nsAttrs = "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'"
	tests := []struct {
		name   string
		in     string
		cond   string // expected error condition, "" for success
		attrs  string
		defNS  string
		closed bool // Next returns ErrStreamClosed at once
	}{
		{name: "plain", in: "<stream:stream " + nsAttrs + " to='example.com' version='1.0'>",
			attrs: `to="example.com" version="1.0"`, defNS: "jabber:client"},
		{name: "declaration", in: "<?xml version='1.0'?><stream:stream " + nsAttrs + ">", defNS: "jabber:client"},
		{name: "declaration with encoding", in: "<?xml version=\"1.0\" encoding=\"utf-8\" standalone='yes' ?>\n<stream:stream " + nsAttrs + ">", defNS: "jabber:client"},
		{name: "BOM", in: "\xef\xbb\xbf<?xml version='1.0'?><stream:stream " + nsAttrs + ">", defNS: "jabber:client"},
		{name: "leading whitespace", in: "\r\n  <stream:stream " + nsAttrs + ">", defNS: "jabber:client"},
		{name: "xml:lang and from", in: "<stream:stream from='a@b' xml:lang='en' " + nsAttrs + " id='x&amp;y'>",
			attrs: `from="a@b" {http://www.w3.org/XML/1998/namespace}lang="en" id="x&y"`, defNS: "jabber:client"},
		{name: "no default namespace", in: "<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>"},
		{name: "other prefix", in: "<s:stream xmlns='jabber:server' xmlns:s='http://etherx.jabber.org/streams'>", defNS: "jabber:server"},
		{name: "self-closing", in: "<stream:stream " + nsAttrs + "/>", defNS: "jabber:client", closed: true},
		{name: "wrong stream namespace", in: "<stream:stream xmlns:stream='urn:wrong'>", cond: condInvalidNamespace},
		{name: "wrong element", in: "<stream:features " + nsAttrs + ">", cond: condInvalidNamespace},
		{name: "unprefixed in client namespace", in: "<stream xmlns='jabber:client'>", cond: condInvalidNamespace},
		{name: "undeclared prefix", in: "<stream:stream xmlns='jabber:client'>", cond: condBadNamespacePrefix},
		{name: "prefix other than declared", in: "<foo:stream xmlns:stream='http://etherx.jabber.org/streams'>", cond: condBadNamespacePrefix},
		{name: "encoding", in: "<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream " + nsAttrs + ">", cond: condUnsupportedEncoding},
		{name: "UTF-16 BOM", in: "\xff\xfe<\x00?\x00", cond: condUnsupportedEncoding},
		{name: "UTF-16 without BOM", in: "\x00<\x00s", cond: condUnsupportedEncoding},
		{name: "bad declaration version", in: "<?xml version='2.0'?><stream:stream " + nsAttrs + ">", cond: condNotWellFormed},
		{name: "declaration without version", in: "<?xml encoding='UTF-8'?><stream:stream " + nsAttrs + ">", cond: condNotWellFormed},
		{name: "declaration junk", in: "<?xml version='1.0' foo='bar'?><stream:stream " + nsAttrs + ">", cond: condNotWellFormed},
		{name: "declaration after whitespace", in: " <?xml version='1.0'?><stream:stream " + nsAttrs + ">", cond: condRestrictedXML},
		{name: "PI", in: "<?xml version='1.0'?><?foo?><stream:stream " + nsAttrs + ">", cond: condRestrictedXML},
		{name: "comment", in: "<!-- hi --><stream:stream " + nsAttrs + ">", cond: condRestrictedXML},
		{name: "billion laughs", in: "<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;'>]><stream:stream " + nsAttrs + ">&lol2;", cond: condRestrictedXML},
		{name: "text first", in: "hello", cond: condNotWellFormed},
		{name: "end tag first", in: "</stream:stream>", cond: condNotWellFormed},
		{name: "duplicate attribute", in: "<stream:stream " + nsAttrs + " to='a' to='b'>", cond: condNotWellFormed},
		{name: "invalid UTF-8", in: "<stream:stream " + nsAttrs + " to='\xff'>", cond: condNotWellFormed},
		{name: "header too big", in: "<stream:stream " + nsAttrs + " to='" + strings.Repeat("x", 300), cond: condPolicyViolation},
	}
	for _, tc := range tests {
		for _, chunk := range chunkSizes {
			t.Run(fmt.Sprintf("%s/%d", tc.name, chunk), func(t *testing.T) {
				t.Parallel()
				d := NewDecoder(&chunkReader{data: []byte(tc.in), n: chunk}, Limits{MaxStanza: 256})
				h, err := d.Header()
				if got := condition(err); got != tc.cond {
					t.Fatalf("got %v, want condition %q", err, tc.cond)
				}
				if tc.cond != "" {
					if _, err2 := d.Next(); err2 != err {
						t.Errorf("Next after failed Header: %v, want the same error", err2)
					}
					return
				}
				var attrs []string
				for _, a := range h.Attrs {
					if a.Space == "" {
						attrs = append(attrs, fmt.Sprintf("%s=%q", a.Local, a.Value))
					} else {
						attrs = append(attrs, fmt.Sprintf("{%s}%s=%q", a.Space, a.Local, a.Value))
					}
				}
				if got := strings.Join(attrs, " "); got != tc.attrs {
					t.Errorf("attrs %s, want %s", got, tc.attrs)
				}
				if h.DefaultNS != tc.defNS {
					t.Errorf("DefaultNS %q, want %q", h.DefaultNS, tc.defNS)
				}
				h2, err := d.Header()
				if h2 != h || err != nil {
					t.Errorf("second Header call: %v, %v", h2, err)
				}
				_, err = d.Next()
				if tc.closed && err != ErrStreamClosed || !tc.closed && err != io.EOF {
					t.Errorf("Next: %v", err)
				}
			})
		}
	}
}

func TestHeaderAttr(t *testing.T) {
	t.Parallel()
	h := &Header{Attrs: []Attr{{Space: NSXML, Local: "to", Value: "x"}, {Local: "to", Value: "y"}}}
	if h.Attr("to") != "y" || h.Attr("from") != "" {
		t.Errorf("Attr: %q %q", h.Attr("to"), h.Attr("from"))
	}
}

func TestStreamEnd(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		n    int
		want error
		cond string
	}{
		{"close", "<a/></stream:stream>trailing junk <<<", 1, ErrStreamClosed, ""},
		{"close with space", "<a/></stream:stream \n>", 1, ErrStreamClosed, ""},
		{"EOF between stanzas", "<a/>  ", 1, io.EOF, ""},
		{"EOF in stanza", "<a/><b>text", 1, io.EOF, ""},
		{"EOF in close tag", "<a/></stream:str", 1, io.EOF, ""},
		{"wrong close tag", "<a/></stream:foo>", 1, nil, condNotWellFormed},
		{"wrong close prefix", "<a/></s:stream>", 1, nil, condNotWellFormed},
	}
	for _, tc := range tests {
		for _, chunk := range chunkSizes {
			t.Run(fmt.Sprintf("%s/%d", tc.name, chunk), func(t *testing.T) {
				t.Parallel()
				d := NewDecoder(&chunkReader{data: []byte(testHeader + tc.in), n: chunk}, Limits{})
				n := 0
				var err error
				for {
					if _, err = d.Next(); err != nil {
						break
					}
					n++
				}
				if n != tc.n {
					t.Errorf("got %d stanzas, want %d", n, tc.n)
				}
				if tc.want != nil && err != tc.want || condition(err) != tc.cond {
					t.Errorf("got %v, want %v / %q", err, tc.want, tc.cond)
				}
				if _, err2 := d.Next(); err2 != err {
					t.Errorf("error not sticky: %v then %v", err, err2)
				}
			})
		}
	}
}

// errReader returns data, then err together with the last bytes.
type errReader struct {
	data []byte
	err  error
}

func (r *errReader) Read(p []byte) (int, error) {
	n := copy(p, r.data)
	r.data = r.data[n:]
	if len(r.data) == 0 {
		return n, r.err
	}
	return n, nil
}

func TestReaderError(t *testing.T) {
	t.Parallel()
	boom := errors.New("boom")
	d := NewDecoder(&errReader{data: []byte(testHeader + "<a/><b/>"), err: boom}, Limits{})
	for i := range 2 {
		if _, err := d.Next(); err != nil {
			t.Fatalf("stanza %d: %v", i, err)
		}
	}
	if _, err := d.Next(); err != boom {
		t.Fatalf("got %v, want the reader's error", err)
	}
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "i/o timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

// scriptReader returns its steps in turn: data, or an error if the step is
// "" and err is set.
type scriptReader struct {
	steps []string
	err   error
}

func (r *scriptReader) Read(p []byte) (int, error) {
	if len(r.steps) == 0 {
		return 0, io.EOF
	}
	st := r.steps[0]
	if st == "" {
		r.steps = r.steps[1:]
		return 0, r.err
	}
	n := copy(p, st)
	if n == len(st) {
		r.steps = r.steps[1:]
	} else {
		r.steps[0] = st[n:]
	}
	return n, nil
}

func TestReadTimeoutIsNotSticky(t *testing.T) {
	t.Parallel()
	// A session with a read deadline gets a timeout, pings, and calls Next
	// again: between stanzas, inside one, and before the header.
	r := &scriptReader{err: timeoutError{}, steps: []string{
		"", testHeader[:20], "", testHeader[20:], "<message><bo", "", "dy>hi</body></message>", "", "<presence/>",
	}}
	d := NewDecoder(r, Limits{})
	var got []string
	timeouts := 0
	for {
		el, err := d.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if _, ok := err.(timeoutError); !ok {
				t.Fatalf("got %v", err)
			}
			timeouts++
			continue
		}
		got = append(got, dump(el))
	}
	want := []string{`(` + jc + `message [(` + jc + `body "hi")])`, `(` + jc + `presence)`}
	if timeouts != 4 || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%d timeouts, got\n%s", timeouts, strings.Join(got, "\n"))
	}
}

// zeroReader never makes progress.
type zeroReader struct{}

func (zeroReader) Read([]byte) (int, error) { return 0, nil }

func TestNoProgress(t *testing.T) {
	t.Parallel()
	if _, err := NewDecoder(zeroReader{}, Limits{}).Header(); err != io.ErrNoProgress {
		t.Fatalf("got %v, want io.ErrNoProgress", err)
	}
}

func TestBigStanzaNotBuffered(t *testing.T) {
	t.Parallel()
	// A 300 KiB body must be refused once the buffer reaches MaxStanza,
	// without buffering it whole.
	lim := DefaultLimits()
	in := testHeader + "<message><body>" + strings.Repeat("x", 300<<10) + "</body></message>"
	r := &chunkReader{data: []byte(in), n: 4096}
	d := NewDecoder(r, lim)
	_, err := d.Next()
	if condition(err) != condPolicyViolation {
		t.Fatalf("got %v, want policy-violation", err)
	}
	if !strings.Contains(err.Error(), "262144") {
		t.Errorf("error %q does not name the limit", err)
	}
	if cap(d.buf) > lim.MaxStanza {
		t.Errorf("buffer grew to %d bytes, limit %d", cap(d.buf), lim.MaxStanza)
	}
	if consumed := len(in) - len(r.data); consumed > lim.MaxStanza+len(testHeader)+4096 {
		t.Errorf("read %d bytes before failing", consumed)
	}
}

func TestBufferShrinks(t *testing.T) {
	t.Parallel()
	in := testHeader + "<a>" + strings.Repeat("x", 100<<10) + "</a>" + strings.Repeat("<b/>", 2000)
	d := NewDecoder(&chunkReader{data: []byte(in), n: 4096}, Limits{})
	if _, err := d.Next(); err != nil {
		t.Fatal(err)
	}
	if cap(d.buf) < 100<<10 {
		t.Fatalf("buffer %d bytes after a 100 KiB stanza", cap(d.buf))
	}
	for range 2000 {
		if _, err := d.Next(); err != nil {
			t.Fatal(err)
		}
	}
	if cap(d.buf) != initialBufSize {
		t.Errorf("buffer %d bytes after small stanzas, want %d", cap(d.buf), initialBufSize)
	}
}

func TestBuffered(t *testing.T) {
	t.Parallel()
	d := NewDecoder(strings.NewReader(testHeader+"<a/><b/><c"), Limits{})
	if _, err := d.Next(); err != nil {
		t.Fatal(err)
	}
	if got := d.Buffered(); got != len("<b/><c") {
		t.Errorf("Buffered = %d, want %d", got, len("<b/><c"))
	}
}

func TestReset(t *testing.T) {
	t.Parallel()
	// Bytes sent before STARTTLS completes must not leak into the new
	// stream (the "STARTTLS command injection" attack).
	d := NewDecoder(strings.NewReader(testHeader+"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><message>injected</message>"), Limits{})
	el, err := d.Next()
	if err != nil || el.Local != "starttls" {
		t.Fatalf("got %v, %v", el, err)
	}
	if d.Buffered() == 0 {
		t.Fatal("test needs buffered bytes")
	}
	d.Reset(strings.NewReader("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'><iq/>"))
	if d.Buffered() != 0 {
		t.Errorf("Buffered = %d after Reset", d.Buffered())
	}
	h, err := d.Header()
	if err != nil || h.DefaultNS != "jabber:server" {
		t.Fatalf("header after Reset: %+v, %v", h, err)
	}
	el, err = d.Next()
	if err != nil || el.Local != "iq" || el.Space != "jabber:server" {
		t.Fatalf("after Reset got %v, %v", el, err)
	}
	// Reset also clears a sticky error and namespace state.
	d.Reset(strings.NewReader("<stream:stream xmlns:stream='http://etherx.jabber.org/streams'><iq/>"))
	el, err = d.Next()
	if err != nil || el.Space != "" {
		t.Fatalf("after second Reset got %v, %v", el, err)
	}
}

// footprint estimates the memory a decoder holds besides its header.
func (d *Decoder) footprint() int {
	n := int(unsafe.Sizeof(*d)) + cap(d.buf) + cap(d.base)*int(unsafe.Sizeof(nsBind{}))
	if sc := d.sc; sc != nil {
		n += int(unsafe.Sizeof(scratchBlock{}))
		n += cap(sc.ns)*int(unsafe.Sizeof(nsBind{})) + cap(sc.stack)*int(unsafe.Sizeof(openElem{})) +
			cap(sc.kids)*8 + cap(sc.attrs)*int(unsafe.Sizeof(rawAttr{})) + cap(sc.tab)*4 + cap(sc.vals)*16 +
			cap(sc.tbuf) + cap(sc.vbuf)
	}
	return n
}

func TestIdle(t *testing.T) {
	t.Parallel()
	pr, pw := io.Pipe()
	defer pr.Close()
	var pool BufferPool
	d := NewDecoder(pr, Limits{})
	d.SetBufferPool(&pool)
	go func() {
		defer pw.Close()
		for _, s := range []string{testHeader, "<message><body>one</body></message><pres", "ence/>", "<iq/>"} {
			if _, err := pw.Write([]byte(s)); err != nil {
				return
			}
		}
	}()
	if _, err := d.Header(); err != nil {
		t.Fatal(err)
	}
	el, err := d.Next()
	if err != nil || el.ChildText("", "body") != "one" {
		t.Fatalf("got %v, %v", el, err)
	}
	// "<pres" is buffered: Idle must keep it.
	d.Idle()
	if d.buf == nil || d.Buffered() == 0 {
		t.Fatal("Idle dropped a partial stanza")
	}
	if el, err = d.Next(); err != nil || el.Local != "presence" {
		t.Fatalf("got %v, %v", el, err)
	}
	d.Idle()
	if d.buf != nil {
		t.Fatal("Idle kept the buffer")
	}
	if n := d.footprint(); n >= 1024 {
		t.Errorf("idle decoder holds %d bytes, want < 1024", n)
	}
	if el, err = d.Next(); err != nil || el.Local != "iq" {
		t.Fatalf("after Idle got %v, %v", el, err)
	}
	if _, err = d.Next(); err != io.EOF {
		t.Fatalf("got %v, want EOF", err)
	}
}

// onceReader returns its data and then drops it, like a socket.
type onceReader struct{ data []byte }

func (r *onceReader) Read(p []byte) (int, error) {
	n := copy(p, r.data)
	r.data = r.data[n:]
	if len(r.data) == 0 {
		r.data = nil
	}
	return n, nil
}

func TestIdleMemory(t *testing.T) {
	// Not parallel: it measures the heap.
	const n = 2000
	hdr := "<?xml version='1.0'?><stream:stream to='example.com' xmlns='jabber:client' " +
		"xmlns:stream='http://etherx.jabber.org/streams' xml:lang='en' version='1.0'>"
	ds := make([]*Decoder, n)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	for i := range ds {
		d := NewDecoder(&onceReader{data: []byte(hdr + chatStanza(i))}, Limits{})
		if _, err := d.Next(); err != nil {
			t.Fatal(err)
		}
		d.Idle()
		ds[i] = d
	}
	runtime.GC()
	runtime.ReadMemStats(&m1)
	// Everything reachable from an idle decoder: the struct, its reader
	// (24 bytes here) and what it keeps of the header.
	per := (int64(m1.HeapAlloc) - int64(m0.HeapAlloc)) / n
	t.Logf("%d bytes per idle decoder", per)
	if per >= 1024 {
		t.Errorf("an idle decoder holds %d bytes, want < 1024", per)
	}
	runtime.KeepAlive(ds)
}

func TestStanzaStringsIndependentOfBuffer(t *testing.T) {
	t.Parallel()
	// Returned trees must not alias the read buffer, which is reused.
	d := NewDecoder(&chunkReader{data: []byte(testHeader + "<a x='1'>one</a><b x='2'>two</b>"), n: 4096}, Limits{})
	a, err := d.Next()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Next(); err != nil {
		t.Fatal(err)
	}
	for i := range d.buf {
		d.buf[i] = '#'
	}
	if a.Text != "one" || a.Attr("x") != "1" || a.Local != "a" {
		t.Fatalf("stanza changed with the buffer: %s", dump(a))
	}
}

func TestSlabsDoNotAlias(t *testing.T) {
	t.Parallel()
	// Appending to one element's Attrs or Children must not overwrite a
	// sibling's (they share slabs).
	_, els, err := decodeAll(testHeader+"<m a='1'><x b='2'/><y c='3'/><z><w/></z></m>", 4096, Limits{})
	if err != io.EOF || len(els) != 1 {
		t.Fatalf("got %d, %v", len(els), err)
	}
	m := els[0]
	before := dump(m)
	x := m.Children[0]
	x.SetAttr("new", "v")
	m.SetAttr("other", "v")
	z := m.Children[2]
	z.Append(New("u", "extra"))
	m.Children[0].Attrs = x.Attrs[:1]
	z.Children = z.Children[:1]
	m.Attrs = m.Attrs[:1]
	if after := dump(m); after != before {
		t.Errorf("siblings changed:\n%s\n%s", before, after)
	}
}

func TestSetLimits(t *testing.T) {
	t.Parallel()
	d := NewDecoder(strings.NewReader(testHeader+"<a>"+strings.Repeat("x", 100)+"</a><b>"+strings.Repeat("x", 100)+"</b>"), Limits{MaxStanza: 1000})
	if _, err := d.Next(); err != nil {
		t.Fatal(err)
	}
	d.SetLimits(Limits{MaxStanza: 50})
	if _, err := d.Next(); condition(err) != condPolicyViolation {
		t.Fatalf("got %v, want policy-violation", err)
	}
	if got := DefaultLimits(); got != (Limits{256 << 10, 32, 64, 256}) {
		t.Errorf("DefaultLimits = %+v", got)
	}
	if got := (Limits{MaxStanza: 1 << 40}).withDefaults(); got.MaxStanza != 1<<30 {
		t.Errorf("MaxStanza not capped: %d", got.MaxStanza)
	}
	if got := (Limits{MaxDepth: 5}).withDefaults(); got != (Limits{256 << 10, 5, 64, 256}) {
		t.Errorf("withDefaults = %+v", got)
	}
}

func chatStanza(i int) string {
	return fmt.Sprintf("<message to='romeo@example.net' from='juliet@example.com/balcony%d' type='chat' id='m%08d' xml:lang='en'>"+
		"<body>Wherefore art thou Romeo? Deny thy father &amp; refuse thy name, msg %d</body>"+
		"<active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/>"+
		"<origin-id xmlns='urn:xmpp:sid:0' id='%08x-5c1b-4cd4'/></message>", i%10, i, i, uint32(i)*2654435761)
}

func TestAllocsPerStanza(t *testing.T) {
	// Not parallel: AllocsPerRun wants a quiet process.
	in := testHeader + strings.Repeat(chatStanza(1), 200)
	d := NewDecoder(&chunkReader{data: []byte(in), n: 4096}, Limits{})
	if _, err := d.Next(); err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := d.Next(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 6 {
		t.Errorf("%v allocations per chat stanza, want <= 6", allocs)
	}
}

func TestNeedsDecode(t *testing.T) {
	t.Parallel()
	naive := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if attrSpecial[s[i]] {
				return true
			}
		}
		return false
	}
	for n := 1; n <= 17; n++ {
		for pos := range n {
			for c := range 256 {
				b := []byte(strings.Repeat("a", n))
				b[pos] = byte(c)
				// Bytes below 0x20 other than tab, LF and CR never get
				// here (validChars rejects them): flagging them is fine.
				allowed := c >= 0x20 || c == '\t' || c == '\n' || c == '\r'
				if got, want := needsDecode(string(b)), naive(string(b)); got != want && (want || allowed) {
					t.Fatalf("needsDecode(%q) = %v, want %v", b, got, want)
				}
			}
		}
	}
	// Mixed bytes, including high bytes next to specials (borrows).
	seed := uint32(1)
	for range 100000 {
		b := make([]byte, 1+seed%20)
		for i := range b {
			seed = seed*1664525 + 1013904223
			switch seed >> 29 {
			case 0:
				b[i] = "&<\t\n\r"[seed%5]
			case 1:
				b[i] = byte(seed >> 8)
			default:
				b[i] = byte(0x20 + (seed>>8)%0x60)
			}
		}
		for i, c := range b {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				b[i] = 'x'
			}
		}
		if got, want := needsDecode(string(b)), naive(string(b)); got != want {
			t.Fatalf("needsDecode(%q) = %v, want %v", b, got, want)
		}
	}
}

// DropHeader frees the header's attributes; namespaces the header
// declared (default and prefixes) keep resolving, and the stream's end is
// still recognized by its name.
func TestDropHeader(t *testing.T) {
	t.Parallel()
	in := `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' xmlns:x='urn:x' to='example.org' version='1.0'>` +
		`<message id='1'><x:y/></message><stream:error><bad-format xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>`
	d := NewDecoder(strings.NewReader(in), Limits{})
	h, err := d.Header()
	if err != nil {
		t.Fatal(err)
	}
	if h.Attr("to") != "example.org" {
		t.Fatalf("to = %q", h.Attr("to"))
	}
	d.DropHeader()
	if h, err := d.Header(); err != nil || h.DefaultNS != NSClient || len(h.Attrs) != 0 {
		t.Fatalf("Header after DropHeader: %+v, %v", h, err)
	}
	el, err := d.Next()
	if err != nil {
		t.Fatal(err)
	}
	if el.Space != NSClient || el.Children[0].Space != "urn:x" {
		t.Fatalf("message: {%s}%s, child {%s}", el.Space, el.Local, el.Children[0].Space)
	}
	el, err = d.Next()
	if err != nil || el.Space != NSStream || el.Local != "error" {
		t.Fatalf("stream error: %v, %v", el, err)
	}
	if _, err := d.Next(); err != ErrStreamClosed {
		t.Fatalf("end: %v, want ErrStreamClosed", err)
	}
}

// The root of a decoded stanza has room for the attributes the server
// stamps ('from', 'to') without copying, and adding them never touches
// the children's attributes, which share the same slab.
func TestRootSpareAttrs(t *testing.T) {
	t.Parallel()
	in := testHeader + `<message to='a@b' id='1'><x xmlns='urn:x' a='1' b='2'/><y xmlns='urn:y' c='3'/></message>`
	d := NewDecoder(strings.NewReader(in), Limits{})
	el, err := d.Next()
	if err != nil {
		t.Fatal(err)
	}
	first := &el.Attrs[0]
	el.SetAttr("from", "me@b/r")
	if &el.Attrs[0] != first {
		t.Error("SetAttr(from) on a decoded root copied its attributes")
	}
	el.SetAttr("type", "chat")   // the second spare slot
	el.SetAttr("xml:lang", "en") // beyond the spare room: a copy
	el.SetAttr("id", "2")
	x, y := el.Children[0], el.Children[1]
	if x.Attr("a") != "1" || x.Attr("b") != "2" || len(x.Attrs) != 2 || y.Attr("c") != "3" || len(y.Attrs) != 1 {
		t.Fatalf("children's attributes changed: %v %v", x.Attrs, y.Attrs)
	}
	if el.Attr("to") != "a@b" || el.Attr("from") != "me@b/r" || el.Attr("type") != "chat" || el.Attr("id") != "2" {
		t.Fatalf("root attributes: %v", el.Attrs)
	}
}
