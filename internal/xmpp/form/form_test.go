package form

import (
	"fmt"
	"strings"
	"testing"

	"stoa.im/stoa/internal/xmpp/xml"
)

func parseXML(t *testing.T, s string) *xml.Element {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"+s), xml.DefaultLimits())
	if _, err := d.Header(); err != nil {
		t.Fatal(err)
	}
	el, err := d.Next()
	if err != nil {
		t.Fatal(err)
	}
	return el
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	f := New(TypeForm, "Adding a user").Hidden("FORM_TYPE", "urn:example").Instruct("Fill it in.")
	f.Add(
		Field{Var: "jid", Type: JIDSingle, Label: "Address", Desc: "user@domain", Required: true},
		Field{Var: "n", Type: ListSingle, Values: []string{"25"}, Options: []Option{{"25", "25"}, {"None", "none"}}},
		Field{Type: Fixed, Values: []string{"a note"}},
	)
	f.Reported = []Field{{Var: "jid", Label: "Address"}}
	f.Items = [][]Field{{{Var: "jid", Values: []string{"a@b"}}}, {{Var: "jid", Values: []string{"c@d"}}}}
	el := f.Element()
	back, err := Parse(parseXML(t, el.String()))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprintf("%+v", back) != fmt.Sprintf("%+v", f) {
		t.Errorf("round trip:\n got %+v\nwant %+v\nxml %s", back, f, el)
	}
	if back.FormType() != "urn:example" || back.Value("n") != "25" || !back.Has("jid") || back.Has("nope") {
		t.Errorf("accessors: %+v", back)
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, xml, want string }{
		{"not a form", `<x xmlns='urn:other' type='form'/>`, "not a jabber:x:data"},
		{"bad type", `<x xmlns='jabber:x:data' type='maybe'/>`, "unknown form type"},
		{"field without var", `<x xmlns='jabber:x:data' type='submit'><field><value>1</value></field></x>`, "has no var"},
		{"too many fields", `<x xmlns='jabber:x:data' type='submit'>` + strings.Repeat(`<field var='a'/>`, 300) + `</x>`, "more than 256 fields"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(parseXML(t, tc.xml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestFindMissingBool(t *testing.T) {
	t.Parallel()
	parent := parseXML(t, `<command xmlns='http://jabber.org/protocol/commands'><note>x</note>
		<x xmlns='jabber:x:data' type='submit'><field var='a'><value> </value></field><field var='b'><value>true</value></field>
		<field var='c'><value>0</value></field><field var='d'><value>yes</value></field></x></command>`)
	f, err := Find(parent)
	if err != nil || f == nil {
		t.Fatalf("Find: %v, %v", f, err)
	}
	tmpl := New(TypeForm, "").Add(Field{Var: "a", Required: true}, Field{Var: "b", Required: true}, Field{Var: "e", Required: true}, Field{Var: "c"})
	if got := fmt.Sprint(f.Missing(tmpl)); got != "[a e]" {
		t.Errorf("Missing = %s", got)
	}
	for name, want := range map[string]bool{"b": true, "c": false, "absent": false} {
		if got, err := f.Bool(name); err != nil || got != want {
			t.Errorf("Bool(%s) = %v, %v", name, got, err)
		}
	}
	if _, err := f.Bool("d"); err == nil {
		t.Error("Bool(yes) is not an error")
	}
	if f, err := Find(parseXML(t, `<command xmlns='http://jabber.org/protocol/commands'/>`)); f != nil || err != nil {
		t.Errorf("Find without a form: %v, %v", f, err)
	}
}
