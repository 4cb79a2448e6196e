package web

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"stoa.im/stoa/internal/config"
)

// Config is the [http] table.
type Config struct {
	Listen         string    `toml:"listen" help:"Address of the public web listener: sign-up, invitation pages, password-reset links. Empty turns it off. Keep it on loopback behind a reverse proxy that adds TLS, or set tls = true."`
	TLS            bool      `toml:"tls" help:"Serve HTTPS on listen with the [tls] certificates (chosen by SNI) instead of plain HTTP."`
	PublicURL      string    `toml:"public_url" help:"The address people open, e.g. \"https://chat.example.org\" (a path prefix is allowed). Used in invitation links. Empty: built from listen, which is only right for local tests."`
	TrustedProxies []string  `toml:"trusted_proxies" help:"Addresses or networks (CIDR) of reverse proxies in front of the web listener. Only requests from them have their X-Forwarded-For and X-Forwarded-Proto believed; every other request is attributed to its own address."`
	SiteName       string    `toml:"site_name" help:"Name shown at the top of the pages; empty: the first host."`
	PoW            PoWConfig `toml:"pow" help:"The proof of work (ALTCHA) the browser solves before a web sign-up: it costs a script CPU time for every attempt, and asks nothing of people."`
}

// PoWConfig is [http.pow].
type PoWConfig struct {
	MaxNumber    int             `toml:"max_number" min:"1000" max:"100000000" help:"Difficulty: the browser tries up to this many SHA-256 hashes, half of them on average (200000 takes well under a second on a phone)."`
	MinSolveTime config.Duration `toml:"min_solve_time" min:"0s" help:"A form sent back sooner than this after it was shown is refused (the page itself waits that long before sending), which slows scripts that fill forms instantly."`
	Expiry       config.Duration `toml:"expiry" min:"1m" help:"Time to fill in a form; a form older than this is refused and shown again with a new challenge."`
}

// Defaults are the [http] defaults.
var Defaults = Config{
	Listen: "127.0.0.1:5281",
	PoW: PoWConfig{
		MaxNumber:    200000,
		MinSolveTime: config.Duration(3 * time.Second),
		Expiry:       config.Duration(30 * time.Minute),
	},
}

// Section is the [http] config section.
var Section = config.Section{
	Name:     "http",
	Help:     "The public web listener: web sign-up, invitation landing pages and password-reset links.",
	Defaults: Defaults,
}

// Validate checks the listen address, the public URL and the proxies.
func (c Config) Validate() error {
	var errs []error
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			errs = append(errs, &config.FieldError{Key: "listen", Msg: fmt.Sprintf("%q is not a host:port address (e.g. \"127.0.0.1:5281\")", c.Listen)})
		}
	}
	if c.PublicURL != "" {
		if _, err := parsePublicURL(c.PublicURL); err != nil {
			errs = append(errs, &config.FieldError{Key: "public_url", Msg: err.Error()})
		}
	}
	if _, err := parseNets(c.TrustedProxies); err != nil {
		errs = append(errs, &config.FieldError{Key: "trusted_proxies", Msg: err.Error()})
	}
	return errors.Join(errs...)
}

func parsePublicURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("%q is not an http(s) URL without query, e.g. \"https://chat.example.org\"", s)
	}
	return u, nil
}

// PublicURLOf returns the base URL of the pages for c, without a
// trailing slash: public_url, or one built from listen; "" when the
// listener is off.
func PublicURLOf(c Config) string {
	if c.Listen == "" {
		return ""
	}
	if c.PublicURL != "" {
		return strings.TrimRight(c.PublicURL, "/")
	}
	scheme := "http"
	if c.TLS {
		scheme = "https"
	}
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return ""
	}
	if a, err := netip.ParseAddr(host); err == nil && a.IsUnspecified() || host == "" {
		host = "localhost"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// parseNets parses addresses and CIDR networks.
func parseNets(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a network like 10.0.0.0/8", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}
