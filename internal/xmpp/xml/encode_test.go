package xml

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestAppendTo(t *testing.T) {
	t.Parallel()
	msg := func() *Element {
		m := New(NSClient, "message").SetAttr("to", "a@b").SetAttr("type", "chat")
		m.SetAttrNS(NSXML, "lang", "en")
		return m.AppendText(NSClient, "body", "hi")
	}
	tests := []struct {
		name      string
		el        *Element
		defaultNS string
		want      string
	}{
		{"in default namespace", msg(), NSClient,
			`<message to='a@b' type='chat' xml:lang='en'><body>hi</body></message>`},
		{"no default namespace", msg(), "",
			`<message xmlns='jabber:client' to='a@b' type='chat' xml:lang='en'><body>hi</body></message>`},
		{"other default namespace", msg(), NSServer,
			`<message xmlns='jabber:client' to='a@b' type='chat' xml:lang='en'><body>hi</body></message>`},
		{"child namespaces",
			New(NSClient, "iq").Append(New("jabber:iq:roster", "query").Append(New("jabber:iq:roster", "item").SetAttr("jid", "x@y"))),
			NSClient, `<iq><query xmlns='jabber:iq:roster'><item jid='x@y'/></query></iq>`},
		{"child in no namespace", New(NSClient, "a").Append(New("", "b").Append(New("", "c"))), NSClient,
			`<a><b xmlns=''><c/></b></a>`},
		{"stream features",
			New(NSStream, "features").Append(New("urn:ietf:params:xml:ns:xmpp-tls", "starttls").Append(New("urn:ietf:params:xml:ns:xmpp-tls", "required"))),
			NSClient, `<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>`},
		{"stream error keeps the default namespace for children",
			New(NSStream, "error").Append(New(NSClient, "x")),
			NSClient, `<stream:error><x/></stream:error>`},
		{"xml namespace element", New(NSClient, "a").Append(New(NSXML, "b")), NSClient, `<a><xml:b/></a>`},
		{"namespaced attributes",
			&Element{Space: NSClient, Local: "a", Attrs: []Attr{{"urn:a", "x", "1"}, {"urn:b", "y", "2"}, {"urn:a", "z", "3"}, {"", "w", "4"}}},
			NSClient, `<a xmlns:p1='urn:a' p1:x='1' xmlns:p2='urn:b' p2:y='2' p1:z='3' w='4'/>`},
		{"xmlns attributes are not written",
			&Element{Space: NSClient, Local: "a", Attrs: []Attr{{"", "xmlns", "urn:x"}, {nsXMLNS, "p", "urn:y"}, {"", "b", "1"}}},
			NSClient, `<a b='1'/>`},
		{"text escapes", New(NSClient, "body").AppendText(NSClient, "x", "a&b<c>d\"e'f\r\ng\th"), NSClient,
			"<body><x>a&amp;b&lt;c&gt;d\"e'f&#xD;\ng\th</x></body>"},
		{"attribute escapes", New(NSClient, "a").SetAttr("v", "a&b<c>d\"e'f\r\ng\th"), NSClient,
			`<a v='a&amp;b&lt;c&gt;d&quot;e&apos;f&#xD;&#xA;g&#x9;h'/>`},
		{"unrepresentable characters replaced", New(NSClient, "a").SetAttr("v", "x\x00y\xff").AppendText(NSClient, "b", "\x01\uffff\xc3(ok é"), NSClient,
			"<a v='x\uFFFDy\uFFFD'><b>\uFFFD\uFFFD\uFFFD(ok é</b></a>"},
		{"mixed content", &Element{Space: NSClient, Local: "p", Children: []*Element{{Text: "a<"}, New(NSClient, "b"), {Text: " c"}}}, NSClient,
			`<p>a&lt;<b/> c</p>`},
		{"text node alone", &Element{Text: "x&y"}, NSClient, `x&amp;y`},
		{"text before children", &Element{Space: NSClient, Local: "p", Text: "t", Children: []*Element{New(NSClient, "b"), nil}}, NSClient,
			`<p>t<b/></p>`},
		{"empty", New(NSClient, "presence"), NSClient, `<presence/>`},
		{"empty text", &Element{Space: NSClient, Local: "body", Text: ""}, NSClient, `<body/>`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			prefix := []byte("prefix:")
			got := string(tc.el.AppendTo(prefix, tc.defaultNS))
			if got != "prefix:"+tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, "prefix:"+tc.want)
			}
		})
	}
}

func TestAppendStreamHeader(t *testing.T) {
	t.Parallel()
	got := string(AppendStreamHeader(nil, NSClient, []Attr{{"", "from", "example.com"}, {"", "id", "a'b"}, {"", "version", "1.0"}, {NSXML, "lang", "en"}}))
	want := `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='example.com' id='a&apos;b' version='1.0' xml:lang='en'>`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	// What we write, we read.
	d := NewDecoder(strings.NewReader(got+"<presence/>"+StreamClose), Limits{})
	h, err := d.Header()
	if err != nil || h.DefaultNS != NSClient || h.Attr("id") != "a'b" || len(h.Attrs) != 4 {
		t.Fatalf("read back %+v, %v", h, err)
	}
	if _, err := d.Next(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Next(); err != ErrStreamClosed {
		t.Fatalf("got %v, want ErrStreamClosed", err)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestWriteToAndString(t *testing.T) {
	t.Parallel()
	el := New(NSClient, "presence").SetAttr("type", "unavailable")
	var buf bytes.Buffer
	n, err := el.WriteTo(&buf)
	want := `<presence xmlns='jabber:client' type='unavailable'/>`
	if err != nil || n != int64(len(want)) || buf.String() != want {
		t.Errorf("WriteTo: %d, %v, %q", n, err, buf.String())
	}
	if el.String() != want {
		t.Errorf("String: %q", el.String())
	}
	if _, err := el.WriteTo(failWriter{}); err == nil || !strings.Contains(err.Error(), "broken pipe") {
		t.Errorf("WriteTo to a failing writer: %v", err)
	}
}

// roundTripCorpus holds stanzas (inside testHeader) for round-trip and
// differential tests.
var roundTripCorpus = []string{
	"<message to='a@b' id=\"1\"><body>hi</body></message>",
	"<presence/>",
	"<iq type='get' id='1'><query xmlns='jabber:iq:roster'><item jid='x@y'/></query></iq>",
	"<message xmlns:a='urn:a'><a:x a:k='1' k='2'><a:y/><z/></a:x></message>",
	"<message b='1' xmlns:p='urn:p' a='2' p:c='3'/>",
	"<message><x xmlns=''><y/></x></message>",
	"<message xmlns:p='urn:1'><p:a><p:b xmlns:p='urn:2'/><p:c/></p:a></message>",
	"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>",
	"<stream:error><not-well-formed xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams' xml:lang='en'>bad &amp; worse</text></stream:error>",
	"<message xml:lang='en'><body xml:lang='de'>x</body></message>",
	"<x a='1' p:a='2' xmlns:p='urn:p'/>",
	"<body a='&lt;&gt;&amp;&quot;&apos;'>&lt;&gt;&amp;&quot;&apos;</body>",
	"<body a='&#65;&#x42;&#10;&#x9;&#13;'>&#65;&#x1F600;&#13;&#10;</body>",
	"<body>a<![CDATA[<b> & ]] ]>]]>c</body>",
	`<body a="it's > 1" b='say "hi"'>1 > 0</body>`,
	"<message><body>  </body><x>\n</x></message>",
	"<p>hello <b>big</b> world<i/>\n  </p>",
	"<message>\n  <body>x</body>\n  <thread>t</thread>\n</message>",
	"<p><b/>a&amp;<![CDATA[b]]>c<i/></p>",
	"<body a='x\r\ny\tz'>a\r\nb\rc</body>",
	"<message><héllo 名前='値'>ünïcödé 日本</héllo></message>",
	"<origin-id xmlns='urn:xmpp:sid:0' id='x' _a.b-c9='1'/>",
	"<message id=''/>",
	"<xml:a/>",
	"<a xmlns:s='http://etherx.jabber.org/streams' s:x='1'><s:b/></a>",
	"<a xmlns:p='urn:p' p:x='1'><b xmlns:q='urn:p' q:y='2' xmlns:r='urn:r' r:x='3'/></a>",
	chatStanza(1),
	chatStanza(2),
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	for _, in := range roundTripCorpus {
		for _, defaultNS := range []string{NSClient, ""} {
			_, els, err := decodeAll(testHeader+in+StreamClose, 4096, Limits{})
			if err != ErrStreamClosed || len(els) != 1 {
				t.Errorf("%s: got %d stanzas, %v", in, len(els), err)
				continue
			}
			out := AppendStreamHeader(nil, NSClient, nil)
			out = els[0].AppendTo(out, defaultNS)
			out = append(out, StreamClose...)
			_, els2, err := decodeAll(string(out), 4096, Limits{})
			if err != ErrStreamClosed || len(els2) != 1 {
				t.Errorf("%s: reparse of %s: got %d stanzas, %v", in, out, len(els2), err)
				continue
			}
			if a, b := dump(els[0]), dump(els2[0]); a != b {
				t.Errorf("round trip of %s via %s:\n%s\n%s", in, out, a, b)
			}
		}
	}
}
