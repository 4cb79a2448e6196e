// Package contact publishes the addresses at which people can reach the
// server's operators (XEP-0157 version 1.1.1): an extended service
// discovery form (XEP-0128) of type http://jabber.org/network/serverinfo
// in the server's disco#info.
//
// Public servers need these: other operators look up abuse-addresses when
// spam arrives from a domain, and users look for support and status pages.
package contact

import (
	"errors"
	"fmt"
	"net/url"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/xmpp/xml"
)

const nsData = "jabber:x:data"

// FormType is the FORM_TYPE of the XEP-0157 form (registered by XEP-0128).
const FormType = "http://jabber.org/network/serverinfo"

// Feature is the contact addresses feature.
var Feature = server.Feature{
	Name:     "contact",
	Doc:      "Publishes the server operators' contact addresses (abuse, admin, support, ...) in service discovery.",
	XEPs:     []server.XEP{{N: 157, Name: "Contact Addresses for XMPP Services", Version: "1.1.1", Status: server.Complete}},
	Defaults: Config{},
	Setup:    setup,
}

// Config is the [contact] table. Each list holds URIs, e.g.
// "mailto:abuse@example.org", "xmpp:admin@example.org" or
// "https://example.org/support".
type Config struct {
	Abuse    []string `toml:"abuse" help:"Addresses for reports of abusive traffic (spam, harassment) coming from this server, e.g. mailto:abuse@example.org."`
	Admin    []string `toml:"admin" help:"Addresses of the server administrators, e.g. xmpp:admin@example.org."`
	Feedback []string `toml:"feedback" help:"Addresses for user feedback."`
	Sales    []string `toml:"sales" help:"Addresses for sales and marketing."`
	Security []string `toml:"security" help:"Addresses for reporting security issues."`
	Status   []string `toml:"status" help:"Addresses where the service status is published, e.g. https://status.example.org."`
	Support  []string `toml:"support" help:"Addresses for user support."`
}

// fields pairs each option with its XEP-0157 form field, in the order of
// the XEP's registry.
func (c Config) fields() []struct {
	key, field string
	uris       []string
} {
	return []struct {
		key, field string
		uris       []string
	}{
		{"abuse", "abuse-addresses", c.Abuse},
		{"admin", "admin-addresses", c.Admin},
		{"feedback", "feedback-addresses", c.Feedback},
		{"sales", "sales-addresses", c.Sales},
		{"security", "security-addresses", c.Security},
		{"status", "status-addresses", c.Status},
		{"support", "support-addresses", c.Support},
	}
}

// Validate checks that every address is a URI with a scheme (XEP-0157 §3:
// values are URIs, and status-addresses MUST be).
func (c Config) Validate() error {
	var errs []error
	for _, f := range c.fields() {
		for _, u := range f.uris {
			if msg := checkURI(u); msg != "" {
				// The key without an index, so the loader finds its line.
				errs = append(errs, &config.FieldError{Key: f.key, Msg: msg})
			}
		}
	}
	return errors.Join(errs...)
}

func checkURI(s string) string {
	u, err := url.Parse(s)
	switch {
	case err != nil:
		return fmt.Sprintf("%q is not a valid URI: %v", s, err)
	case u.Scheme == "" || (u.Opaque == "" && u.Host == "" && u.Path == ""):
		return fmt.Sprintf("%q is not a URI with a scheme; write e.g. \"mailto:abuse@example.org\", \"xmpp:admin@example.org\" or \"https://example.org/support\"", s)
	}
	return ""
}

func setup(s *server.Setup, cfg any) error {
	c, ok := cfg.(Config)
	if !ok {
		return fmt.Errorf("contact: config is %T, want contact.Config", cfg)
	}
	if err := c.Validate(); err != nil {
		return fmt.Errorf("contact: %w", err)
	}
	form := c.form()
	if form == nil {
		return nil
	}
	// The same addresses serve every host; each answer gets its own copy
	// so that no caller can change the shared form.
	s.Disco().ServerForm(func(string) *xml.Element { return form.Copy() })
	return nil
}

// form renders the XEP-0157 form, or nil when no address is configured.
func (c Config) form() *xml.Element {
	x := xml.New(nsData, "x").SetAttr("type", "result")
	x.Append(field("FORM_TYPE", "hidden", FormType))
	n := 0
	for _, f := range c.fields() {
		if len(f.uris) == 0 {
			continue
		}
		x.Append(field(f.field, "", f.uris...))
		n++
	}
	if n == 0 {
		return nil
	}
	return x
}

func field(v, typ string, values ...string) *xml.Element {
	f := xml.New(nsData, "field").SetAttr("var", v).SetAttr("type", typ)
	for _, val := range values {
		f.AppendText(nsData, "value", val)
	}
	return f
}
