package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"

	"stoa.im/stoa/internal/app"
	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/server"
)

func runCheckConfig(c *call) error {
	fs := c.flags()
	path := fs.String("c", "", "configuration `FILE` to check (required)")
	if _, err := c.parse(fs, 0, 0); err != nil {
		return err
	}
	if *path == "" {
		return usageError{"the configuration file is required: stoa check config -c /etc/stoa/stoa.toml"}
	}
	if _, err := loadConfig(c, *path); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "ok")
	return nil
}

func runConfigDescribe(c *call) error {
	if _, err := c.parse(c.flags(), 0, 0); err != nil {
		return err
	}
	_, err := io.WriteString(c.stdout, config.Describe(app.Sections()))
	return err
}

func runConfigDocs(c *call) error {
	if _, err := c.parse(c.flags(), 0, 0); err != nil {
		return err
	}
	_, err := io.WriteString(c.stdout, config.Markdown(app.Sections()))
	return err
}

func runVersion(c *call) error {
	if _, err := c.parse(c.flags(), 0, 0); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "stoa %s (%s, %s/%s)\n", c.version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}

func runFeatures(c *call) error {
	fs := c.flags()
	hooks := fs.Bool("hooks", false, "also print the hooks of each pipeline stage in execution order")
	markdown := fs.Bool("markdown", false, "print docs/features.md (the feature and XEP table) instead")
	if _, err := c.parse(fs, 0, 0); err != nil {
		return err
	}
	srv, closeSrv, err := app.Inspect(c.ctx, c.version)
	if err != nil {
		return err
	}
	defer closeSrv()
	if *markdown {
		_, err := io.WriteString(c.stdout, app.FeaturesMarkdown(srv.Features()))
		return err
	}
	printFeatures(c.stdout, srv.Features())
	if *hooks {
		printHooks(c.stdout, srv.Hooks())
	}
	return nil
}

func printFeatures(w io.Writer, features []server.Feature) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FEATURE\tSPECIFICATION\tVERSION\tSTATUS")
	for _, f := range features {
		if len(f.XEPs) == 0 {
			fmt.Fprintf(tw, "%s\t-\t\t\n", f.Name)
		}
		for i, x := range f.XEPs {
			name := f.Name
			if i > 0 {
				name = ""
			}
			spec := x.Name
			if x.N > 0 {
				spec = strings.TrimSpace(fmt.Sprintf("XEP-%04d %s", x.N, x.Name))
			}
			status := string(x.Status)
			if x.Note != "" {
				status += " (" + x.Note + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", name, spec, x.Version, status)
		}
	}
	_ = tw.Flush()
}

func printHooks(w io.Writer, hooks []server.HookInfo) {
	fmt.Fprint(w, "\nHooks by stage, in execution order (higher priority first; ties in feature order):\n")
	for _, st := range server.Stages {
		fmt.Fprintf(w, "\n%s:\n", st)
		n := 0
		for _, h := range hooks {
			if h.Stage != st {
				continue
			}
			n++
			fmt.Fprintf(w, "  %2d. %-20s %5d %s\n", n, h.Feature, h.Priority, band(h.Priority))
		}
		if n == 0 {
			fmt.Fprintln(w, "  (none)")
		}
	}
}

// band names the priority band a priority belongs to.
func band(p server.Priority) string {
	switch {
	case p >= server.PrioPolicy:
		return "(policy)"
	case p >= server.PrioFeature:
		return "(feature)"
	case p >= server.PrioObserve:
		return "(observe)"
	case p > server.PrioFallback:
		return ""
	}
	return "(fallback)"
}
