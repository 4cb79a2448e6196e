package web

import (
	"slices"
	"strings"
)

// app is a chat client the pages suggest.
type app struct {
	Name      string
	URL       string   // the project's own page (no store tracking links)
	Platforms []string // platform keys (see platformOf)
	Invites   bool     // opens xmpp: invitation links (XEP-0401/0379)
}

// apps are the suggested clients, free software with active maintainers.
var apps = []app{
	{Name: "Conversations", URL: "https://conversations.im/", Platforms: []string{"android"}, Invites: true},
	{Name: "Cheogram", URL: "https://cheogram.com/", Platforms: []string{"android"}, Invites: true},
	{Name: "Monal", URL: "https://monal-im.org/", Platforms: []string{"ios", "macos"}, Invites: true},
	{Name: "Siskin IM", URL: "https://siskin.im/", Platforms: []string{"ios"}, Invites: true},
	{Name: "Beagle IM", URL: "https://beagle.im/", Platforms: []string{"macos"}},
	{Name: "Gajim", URL: "https://gajim.org/", Platforms: []string{"windows", "linux"}},
	{Name: "Dino", URL: "https://dino.im/", Platforms: []string{"linux"}},
}

var platforms = []string{"android", "ios", "macos", "windows", "linux"}

// platformOf guesses the visitor's platform from the User-Agent; "" when
// unknown. Order matters: Android user agents say Linux, iPhones say
// "like Mac OS X".
func platformOf(ua string) string {
	switch {
	case strings.Contains(ua, "Android"):
		return "android"
	case strings.Contains(ua, "iPhone"), strings.Contains(ua, "iPad"), strings.Contains(ua, "iPod"):
		return "ios"
	case strings.Contains(ua, "Macintosh"), strings.Contains(ua, "Mac OS X"):
		return "macos"
	case strings.Contains(ua, "Windows"):
		return "windows"
	case strings.Contains(ua, "Linux"), strings.Contains(ua, "X11"), strings.Contains(ua, "CrOS"):
		return "linux"
	}
	return ""
}

// appGroup is a platform and its apps, for the templates.
type appGroup struct {
	Platform string // key, for the platform.* messages
	Apps     []app
}

// appsFor returns the visitor's platform first (when known), then the
// others.
func appsFor(ua string) (mine *appGroup, others []appGroup) {
	p := platformOf(ua)
	for _, pl := range platforms {
		g := appGroup{Platform: pl}
		for _, a := range apps {
			if slices.Contains(a.Platforms, pl) {
				g.Apps = append(g.Apps, a)
			}
		}
		if pl == p {
			mine = &g
			continue
		}
		others = append(others, g)
	}
	return mine, others
}
