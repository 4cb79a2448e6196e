// Package version answers software version queries addressed to the
// server (XEP-0092 version 1.1) with the name "stoa" and the running
// version, and advertises jabber:iq:version.
//
// The operating system is left out unless show_os is set: XEP-0092 §5
// says revealing it may help attackers, and clients rarely need it.
package version

import (
	"context"
	"fmt"
	"runtime"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/xmpp/xml"
)

// NS is the XEP-0092 namespace.
const NS = "jabber:iq:version"

// Feature is the software version feature.
var Feature = server.Feature{
	Name:     "version",
	Doc:      "Tells clients which server software and version runs here (and, if enabled, the operating system).",
	XEPs:     []server.XEP{{N: 92, Name: "Software Version", Version: "1.1", Status: server.Complete}},
	Defaults: Config{Answer: true},
	Setup:    setup,
}

// Config is the [version] table.
type Config struct {
	Answer bool `toml:"answer" help:"Answer software version queries; false makes the server reply service-unavailable and stop advertising jabber:iq:version."`
	ShowOS bool `toml:"show_os" help:"Include the operating system (e.g. linux) in the answer."`
}

func setup(s *server.Setup, cfg any) error {
	c, ok := cfg.(Config)
	if !ok {
		return fmt.Errorf("version: config is %T, want version.Config", cfg)
	}
	if !c.Answer {
		// Unregistered, the query gets service-unavailable from the core
		// (XEP-0092 §3: an entity that does not support the protocol).
		return nil
	}
	s.Disco().ServerFeature(NS)
	srv := s.Server()
	s.HandleIQ(server.ToServer, "get", NS, "query", func(context.Context, *server.Stanza) (*xml.Element, error) {
		q := xml.New(NS, "query").
			AppendText(NS, "name", "stoa").
			AppendText(NS, "version", srv.Version())
		if c.ShowOS {
			q.AppendText(NS, "os", runtime.GOOS)
		}
		return q, nil
	})
	return nil
}
