package xml_test

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"stoa.im/stoa/internal/xmpp/xml"
)

// A session reads the header, then stanzas until the stream ends. A
// *xml.Error carries the stream error condition to send before closing.
func ExampleDecoder() {
	conn := strings.NewReader(`<?xml version='1.0'?>` +
		`<stream:stream to='example.com' version='1.0' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>` +
		`<message to='romeo@example.net' type='chat'><body>hi &amp; bye</body></message>` +
		`<presence/><!-- not allowed -->`)

	lim := xml.DefaultLimits()
	lim.MaxStanza = 10_000 // before authentication
	d := xml.NewDecoder(conn, lim)
	h, err := d.Header()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("to:", h.Attr("to"), "ns:", h.DefaultNS)
	for {
		el, err := d.Next()
		var xe *xml.Error
		switch {
		case errors.As(err, &xe):
			fmt.Println("send <stream:error> with", xe.Condition, "-", xe.Text)
			return
		case errors.Is(err, xml.ErrStreamClosed), errors.Is(err, io.EOF):
			fmt.Println("closed")
			return
		case err != nil:
			fmt.Println(err)
			return
		}
		fmt.Printf("%s %q\n", el.Local, el.ChildText(xml.NSClient, "body"))
		if d.Buffered() == 0 {
			d.Idle() // about to wait for the peer: release the read buffer
		}
	}
	// Output:
	// to: example.com ns: jabber:client
	// message "hi & bye"
	// presence ""
	// send <stream:error> with restricted-xml - comments are not allowed
}

func ExampleElement_AppendTo() {
	out := xml.AppendStreamHeader(nil, xml.NSClient, []xml.Attr{{Local: "from", Value: "example.com"}, {Local: "version", Value: "1.0"}})
	features := xml.New(xml.NSStream, "features").Append(xml.New("urn:ietf:params:xml:ns:xmpp-tls", "starttls"))
	out = features.AppendTo(out, xml.NSClient)
	msg := xml.New(xml.NSClient, "message").SetAttr("to", "juliet@example.com").AppendText(xml.NSClient, "body", "<3")
	out = msg.AppendTo(out, xml.NSClient)
	out = append(out, xml.StreamClose...)
	fmt.Println(string(out))
	// Output:
	// <?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='example.com' version='1.0'><stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features><message to='juliet@example.com'><body>&lt;3</body></message></stream:stream>
}
