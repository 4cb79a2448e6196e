package main

import (
	"fmt"
	"time"

	"stoa.im/stoa/internal/app"
	"stoa.im/stoa/internal/s2s"
)

func runCheckDNS(c *call) error {
	fs := c.flags()
	path := fs.String("c", "", "configuration `FILE` (required)")
	if _, err := c.parse(fs, 0, 0); err != nil {
		return err
	}
	if *path == "" {
		return usageError{"the configuration file is required: stoa check dns -c /etc/stoa/stoa.toml"}
	}
	f, err := loadConfig(c, *path)
	if err != nil {
		return err
	}
	findings, err := app.CheckDNS(c.ctx, f, nil)
	if err != nil {
		return err
	}
	return printFindings(c, findings)
}

func runCheckCerts(c *call) error {
	fs := c.flags()
	path := fs.String("c", "", "configuration `FILE` (required)")
	if _, err := c.parse(fs, 0, 0); err != nil {
		return err
	}
	if *path == "" {
		return usageError{"the configuration file is required: stoa check certs -c /etc/stoa/stoa.toml"}
	}
	f, err := loadConfig(c, *path)
	if err != nil {
		return err
	}
	findings, err := app.CheckCerts(f, time.Now())
	if err != nil {
		return err
	}
	return printFindings(c, findings)
}

// printFindings prints one line per finding; any error makes the exit
// status 1.
func printFindings(c *call, findings []s2s.Finding) error {
	for _, f := range findings {
		fmt.Fprintln(c.stdout, f.String())
	}
	if s2s.Failed(findings) {
		return exitError{1}
	}
	return nil
}
