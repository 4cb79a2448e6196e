// Package time answers entity time queries addressed to the server
// (XEP-0202 version 2.0) and advertises urn:xmpp:time.
//
// The server always answers in UTC: its local time zone says something
// about where it runs and helps no client. The obsolete jabber:iq:time
// (XEP-0090) is not supported.
package time

import (
	"context"
	gotime "time"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/xmpp/xml"
)

// NS is the XEP-0202 namespace.
const NS = "urn:xmpp:time"

// Feature is the entity time feature.
var Feature = server.Feature{
	Name: "time",
	Doc:  "Tells clients the server's current time (in UTC), so they can spot a wrong local clock.",
	XEPs: []server.XEP{{N: 202, Name: "Entity Time", Version: "2.0", Status: server.Complete}},
	Setup: func(s *server.Setup, _ any) error {
		s.Disco().ServerFeature(NS)
		s.HandleIQ(server.ToServer, "get", NS, "time", func(context.Context, *server.Stanza) (*xml.Element, error) {
			return answer(gotime.Now()), nil
		})
		return nil
	},
}

// answer renders now as XEP-0202 §3: a zero offset and the UTC time in the
// XEP-0082 DateTime profile.
func answer(now gotime.Time) *xml.Element {
	return xml.New(NS, "time").
		AppendText(NS, "tzo", "+00:00").
		AppendText(NS, "utc", now.UTC().Format("2006-01-02T15:04:05.000Z"))
}
