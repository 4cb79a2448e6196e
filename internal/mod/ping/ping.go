// Package ping answers XMPP pings addressed to the server (XEP-0199
// version 2.0.1, §4.2 client-to-server pings) and advertises urn:xmpp:ping.
//
// Pinging idle clients is not done here: the c2s layer does it, since it
// owns the connection and its timers.
package ping

import (
	"context"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/xmpp/xml"
)

// NS is the XEP-0199 namespace.
const NS = "urn:xmpp:ping"

// Feature is the ping feature.
var Feature = server.Feature{
	Name: "ping",
	Doc:  "Answers XMPP pings sent to the server, so clients can check that their connection is alive.",
	XEPs: []server.XEP{{N: 199, Name: "XMPP Ping", Version: "2.0.1", Status: server.Complete}},
	Setup: func(s *server.Setup, _ any) error {
		s.Disco().ServerFeature(NS)
		s.HandleIQ(server.ToServer, "get", NS, "ping", pong)
		return nil
	},
}

// pong answers with an empty result (XEP-0199 §4.2).
func pong(context.Context, *server.Stanza) (*xml.Element, error) { return nil, nil }
