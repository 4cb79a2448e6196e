// Package form reads and writes XEP-0004 data forms (jabber:x:data,
// version 2.13.1): the forms ad-hoc commands (XEP-0050), registration and
// service discovery extensions (XEP-0128) carry. It knows nothing of the
// server.
//
// Building a form:
//
//	f := form.New(form.TypeForm, "Adding a User")
//	f.Hidden("FORM_TYPE", "http://jabber.org/protocol/admin")
//	f.Add(form.Field{Var: "accountjid", Type: form.JIDSingle, Label: "The address of the account", Required: true})
//	el := f.Element()
//
// Reading a submission:
//
//	sub, err := form.Parse(el) // or form.Find(parent)
//	jid := sub.Value("accountjid")
//	if missing := sub.Missing(f); len(missing) > 0 { ... }
package form

import (
	"errors"
	"fmt"
	"strings"

	"stoa.im/stoa/internal/xmpp/xml"
)

// NS is the data forms namespace.
const NS = "jabber:x:data"

// Type is the type of a form (XEP-0004 §3.1).
type Type string

// Form types.
const (
	TypeForm   Type = "form"
	TypeSubmit Type = "submit"
	TypeCancel Type = "cancel"
	TypeResult Type = "result"
)

// FieldType is the type of a field (XEP-0004 §3.3).
type FieldType string

// Field types. The zero value means "not given": text-single in a form,
// inferred from context in a submission.
const (
	Boolean     FieldType = "boolean"
	Fixed       FieldType = "fixed"
	Hidden      FieldType = "hidden"
	JIDMulti    FieldType = "jid-multi"
	JIDSingle   FieldType = "jid-single"
	ListMulti   FieldType = "list-multi"
	ListSingle  FieldType = "list-single"
	TextMulti   FieldType = "text-multi"
	TextPrivate FieldType = "text-private"
	TextSingle  FieldType = "text-single"
)

// Option is one choice of a list field.
type Option struct {
	Label, Value string
}

// Field is one field of a form.
type Field struct {
	Var      string
	Type     FieldType
	Label    string
	Desc     string
	Required bool
	Values   []string
	Options  []Option
}

// Value returns the field's first value, or "".
func (f *Field) Value() string {
	if f == nil || len(f.Values) == 0 {
		return ""
	}
	return f.Values[0]
}

// Form is a data form.
type Form struct {
	Type         Type
	Title        string
	Instructions []string
	Fields       []Field
	// Reported and Items make a table (XEP-0004 §3.4), in result forms.
	Reported []Field
	Items    [][]Field
}

// New returns an empty form of type t with a title ("" for none).
func New(t Type, title string) *Form { return &Form{Type: t, Title: title} }

// Add appends fields and returns f.
func (f *Form) Add(fields ...Field) *Form {
	f.Fields = append(f.Fields, fields...)
	return f
}

// Hidden appends a hidden field (usually FORM_TYPE) and returns f.
func (f *Form) Hidden(name, value string) *Form {
	return f.Add(Field{Var: name, Type: Hidden, Values: []string{value}})
}

// Instruct appends an instructions line and returns f.
func (f *Form) Instruct(text string) *Form {
	f.Instructions = append(f.Instructions, text)
	return f
}

// Field returns the field named name, or nil.
func (f *Form) Field(name string) *Field {
	if f == nil {
		return nil
	}
	for i := range f.Fields {
		if f.Fields[i].Var == name {
			return &f.Fields[i]
		}
	}
	return nil
}

// Value returns the first value of field name, or "" when absent.
func (f *Form) Value(name string) string { return f.Field(name).Value() }

// Values returns every value of field name (nil when absent).
func (f *Form) Values(name string) []string {
	if fl := f.Field(name); fl != nil {
		return fl.Values
	}
	return nil
}

// Has reports whether field name is present.
func (f *Form) Has(name string) bool { return f.Field(name) != nil }

// Bool returns a boolean field's value: "1" and "true" are true, "0",
// "false" and an absent or empty field are false (XEP-0004 §3.3); any
// other value is an error.
func (f *Form) Bool(name string) (bool, error) {
	switch v := strings.TrimSpace(f.Value(name)); v {
	case "1", "true":
		return true, nil
	case "", "0", "false":
		return false, nil
	default:
		return false, fmt.Errorf("field %s: %q is not a boolean (use true or false)", name, v)
	}
}

// FormType returns the value of the hidden FORM_TYPE field, or "".
func (f *Form) FormType() string { return f.Value("FORM_TYPE") }

// Missing returns the vars of the fields template marks required that f
// does not fill with a non-blank value, in template order.
func (f *Form) Missing(template *Form) []string {
	var out []string
	for _, t := range template.Fields {
		if !t.Required {
			continue
		}
		filled := false
		for _, v := range f.Values(t.Var) {
			if strings.TrimSpace(v) != "" {
				filled = true
				break
			}
		}
		if !filled {
			out = append(out, t.Var)
		}
	}
	return out
}

// Element renders the form as an <x xmlns='jabber:x:data'/> element.
func (f *Form) Element() *xml.Element {
	x := xml.New(NS, "x").SetAttr("type", string(f.Type))
	if f.Title != "" {
		x.AppendText(NS, "title", f.Title)
	}
	for _, in := range f.Instructions {
		x.AppendText(NS, "instructions", in)
	}
	for i := range f.Fields {
		x.Append(fieldElement(&f.Fields[i]))
	}
	if len(f.Reported) > 0 {
		r := xml.New(NS, "reported")
		for i := range f.Reported {
			r.Append(fieldElement(&f.Reported[i]))
		}
		x.Append(r)
	}
	for _, item := range f.Items {
		it := xml.New(NS, "item")
		for i := range item {
			it.Append(fieldElement(&item[i]))
		}
		x.Append(it)
	}
	return x
}

func fieldElement(fl *Field) *xml.Element {
	el := xml.New(NS, "field")
	el.SetAttr("var", fl.Var).SetAttr("type", string(fl.Type)).SetAttr("label", fl.Label)
	if fl.Desc != "" {
		el.AppendText(NS, "desc", fl.Desc)
	}
	if fl.Required {
		el.Append(xml.New(NS, "required"))
	}
	for _, v := range fl.Values {
		el.AppendText(NS, "value", v)
	}
	for _, o := range fl.Options {
		op := xml.New(NS, "option").SetAttr("label", o.Label)
		op.AppendText(NS, "value", o.Value)
		el.Append(op)
	}
	return el
}

// Limits bound what Parse accepts, so that a peer cannot make the server
// hold huge forms in memory (the stream parser bounds the stanza size too).
const (
	maxFields = 256
	maxValues = 10000
)

// ErrNotForm is returned by Parse for an element that is not a data form.
var ErrNotForm = errors.New("form: not a jabber:x:data <x/> element")

// Parse reads an <x xmlns='jabber:x:data'/> element.
func Parse(el *xml.Element) (*Form, error) {
	if el == nil || el.Space != NS || el.Local != "x" {
		return nil, ErrNotForm
	}
	f := &Form{Type: Type(el.Attr("type"))}
	switch f.Type {
	case TypeForm, TypeSubmit, TypeCancel, TypeResult:
	default:
		return nil, fmt.Errorf("form: unknown form type %q", el.Attr("type"))
	}
	values := 0
	for _, c := range el.Elements() {
		if c.Space != NS {
			continue
		}
		switch c.Local {
		case "title":
			f.Title = c.AllText()
		case "instructions":
			f.Instructions = append(f.Instructions, c.AllText())
		case "field":
			fl, err := parseField(c, &values)
			if err != nil {
				return nil, err
			}
			f.Fields = append(f.Fields, fl)
		case "reported":
			for _, rc := range c.Elements() {
				if rc.Space == NS && rc.Local == "field" {
					fl, err := parseField(rc, &values)
					if err != nil {
						return nil, err
					}
					f.Reported = append(f.Reported, fl)
				}
			}
		case "item":
			var item []Field
			for _, ic := range c.Elements() {
				if ic.Space == NS && ic.Local == "field" {
					fl, err := parseField(ic, &values)
					if err != nil {
						return nil, err
					}
					item = append(item, fl)
				}
			}
			f.Items = append(f.Items, item)
		}
		if len(f.Fields)+len(f.Reported)+len(f.Items) > maxFields {
			return nil, fmt.Errorf("form: more than %d fields", maxFields)
		}
	}
	return f, nil
}

func parseField(el *xml.Element, values *int) (Field, error) {
	fl := Field{Var: el.Attr("var"), Type: FieldType(el.Attr("type")), Label: el.Attr("label")}
	for _, c := range el.Elements() {
		if c.Space != NS {
			continue
		}
		switch c.Local {
		case "desc":
			fl.Desc = c.AllText()
		case "required":
			fl.Required = true
		case "value":
			fl.Values = append(fl.Values, c.AllText())
			*values++
		case "option":
			fl.Options = append(fl.Options, Option{Label: c.Attr("label"), Value: c.ChildText(NS, "value")})
			*values++
		}
	}
	if *values > maxValues {
		return Field{}, fmt.Errorf("form: more than %d values", maxValues)
	}
	if fl.Var == "" && fl.Type != Fixed {
		return Field{}, fmt.Errorf("form: a %s field has no var", cmpType(fl.Type))
	}
	return fl, nil
}

func cmpType(t FieldType) string {
	if t == "" {
		return string(TextSingle)
	}
	return string(t)
}

// Find returns the first data form among parent's children, or nil (and
// no error) when there is none.
func Find(parent *xml.Element) (*Form, error) {
	if parent == nil {
		return nil, nil
	}
	for _, c := range parent.Elements() {
		if c.Space == NS && c.Local == "x" {
			return Parse(c)
		}
	}
	return nil, nil
}
