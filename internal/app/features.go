package app

import (
	"fmt"
	"strings"

	"stoa.im/stoa/internal/c2s"
	"stoa.im/stoa/internal/s2s"
	"stoa.im/stoa/internal/server"
)

// planned lists what the XEP-0479 compliance suites ask of an advanced
// server that stoa does not do yet, so docs/features.md says so plainly.
var planned = []struct{ spec, what string }{
	{"XEP-0045 / XEP-0163 / XEP-0363 / XEP-0206 / RFC 7395", "group chat, PEP, HTTP upload, BOSH, WebSocket"},
	{"PostgreSQL, clustering over NATS", "scaling past one machine"},
}

// FeaturesMarkdown renders docs/features.md from the feature registry.
func FeaturesMarkdown(features []server.Feature) string {
	var b strings.Builder
	b.WriteString("# Features and specifications\n\n")
	b.WriteString("Generated from the feature registry (`internal/mod/all.go`) by\n`go run ./cmd/stoa features --markdown > docs/features.md`; a test keeps it in step.\n\n")
	b.WriteString("| feature | specification | version | status |\n|---|---|---|---|\n")
	row := func(name string, x server.XEP) {
		spec := x.Name
		if x.N > 0 {
			spec = strings.TrimSpace(fmt.Sprintf("XEP-%04d %s", x.N, x.Name))
		}
		status := string(x.Status)
		if x.Note != "" {
			status += ": " + x.Note
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name, spec, x.Version, status)
	}
	for _, x := range c2s.XEPs() {
		row("c2s", x)
	}
	for _, x := range s2s.XEPs() {
		row("s2s", x)
	}
	for _, f := range features {
		for _, x := range f.XEPs {
			row(f.Name, x)
		}
	}
	b.WriteString("\n## Not implemented yet\n\n| specification | what |\n|---|---|\n")
	for _, p := range planned {
		fmt.Fprintf(&b, "| %s | %s |\n", p.spec, p.what)
	}
	return b.String()
}
