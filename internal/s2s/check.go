package s2s

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Level is how serious a finding of a check is.
type Level string

// Levels of findings.
const (
	OK      Level = "ok"
	Warning Level = "warning"
	Problem Level = "error"
)

// Finding is one line of `stoa check dns` or `stoa check certs`.
type Finding struct {
	Host  string
	Level Level
	Text  string
}

func (f Finding) String() string { return f.Host + ": " + string(f.Level) + ": " + f.Text }

// Failed reports whether any finding is an error.
func Failed(fs []Finding) bool {
	return slices.ContainsFunc(fs, func(f Finding) bool { return f.Level == Problem })
}

// DNSCheck says what the DNS records of the hosted domains should lead to.
type DNSCheck struct {
	Hosts []string
	// Ports the listeners use: s2s STARTTLS and direct TLS, c2s STARTTLS
	// and direct TLS (empty: not listening).
	S2S, S2STLS, C2S, C2STLS []string
}

// portsOf returns the ports of host:port addresses.
func portsOf(addrs []string) []uint16 {
	var out []uint16
	for _, a := range addrs {
		if _, p, err := net.SplitHostPort(a); err == nil {
			if n, err := strconv.ParseUint(p, 10, 16); err == nil {
				out = append(out, uint16(n))
			}
		}
	}
	return out
}

// CheckDNS checks each host's SRV records (RFC 6120 §3.2, XEP-0368) and
// the addresses they point to, against the configured listeners.
func CheckDNS(ctx context.Context, res Resolver, c DNSCheck) []Finding {
	if res == nil {
		res = net.DefaultResolver
	}
	var out []Finding
	for _, host := range c.Hosts {
		add := func(l Level, format string, args ...any) {
			out = append(out, Finding{Host: host, Level: l, Text: fmt.Sprintf(format, args...)})
		}
		type svc struct {
			name     string
			ports    []uint16
			fallback uint16 // the port used without SRV records; 0: none
			what     string
		}
		for _, s := range []svc{
			{"xmpp-server", portsOf(c.S2S), 5269, "other servers (STARTTLS)"},
			{"xmpps-server", portsOf(c.S2STLS), 0, "other servers (direct TLS, XEP-0368)"},
			{"xmpp-client", portsOf(c.C2S), 5222, "clients (STARTTLS)"},
			{"xmpps-client", portsOf(c.C2STLS), 0, "clients (direct TLS, XEP-0368)"},
		} {
			rec := "_" + s.name + "._tcp." + host
			_, srvs, err := res.LookupSRV(ctx, s.name, "tcp", host)
			var de *net.DNSError
			switch {
			case err != nil && !(errors.As(err, &de) && de.IsNotFound):
				add(Problem, "looking up %s failed: %v", rec, err)
				continue
			case len(srvs) == 1 && (srvs[0].Target == "." || srvs[0].Target == ""):
				if len(s.ports) > 0 {
					add(Warning, "%s says the service is not offered (target \".\"), but stoa listens for %s on port %s", rec, s.what, joinPorts(s.ports))
				} else {
					add(OK, "%s says the service is not offered, and stoa does not listen for it", rec)
				}
				continue
			case len(srvs) == 0:
				switch {
				case len(s.ports) == 0:
					add(OK, "no %s record, and stoa does not listen for %s", rec, s.what)
				case s.fallback == 0:
					add(Warning, "no %s record: %s will not find the listener on port %s; publish e.g. \"%s 3600 IN SRV 0 5 %d %s.\"", rec, s.what, joinPorts(s.ports), rec, s.ports[0], host)
				default:
					addrs, err := res.LookupNetIP(ctx, "ip", host)
					if err != nil || len(addrs) == 0 {
						add(Problem, "no %s record and no address for %s: %s cannot reach this server", rec, host, s.what)
					} else if !slices.Contains(s.ports, s.fallback) {
						add(Problem, "no %s record: %s connect to %s:%d, but stoa listens on port %s; publish \"%s 3600 IN SRV 0 5 %d %s.\"", rec, s.what, host, s.fallback, joinPorts(s.ports), rec, s.ports[0], host)
					} else {
						add(Warning, "no %s record; %s fall back to %s:%d (%s), which works; an SRV record is still recommended", rec, s.what, host, s.fallback, joinAddrs(addrs))
					}
				}
				continue
			}
			for _, r := range srvs {
				target := strings.TrimSuffix(r.Target, ".")
				addrs, err := res.LookupNetIP(ctx, "ip", target)
				switch {
				case err != nil || len(addrs) == 0:
					add(Problem, "%s points to %s:%d, which has no address", rec, target, r.Port)
				case len(s.ports) > 0 && !slices.Contains(s.ports, r.Port):
					add(Problem, "%s points to %s:%d, but stoa listens for %s on port %s", rec, target, r.Port, s.what, joinPorts(s.ports))
				case len(s.ports) == 0:
					add(Warning, "%s points to %s:%d, but stoa does not listen for %s", rec, target, r.Port, s.what)
				default:
					add(OK, "%s → %s:%d (%s)", rec, target, r.Port, joinAddrs(addrs))
				}
			}
		}
	}
	return out
}

func joinPorts(ps []uint16) string {
	var s []string
	for _, p := range ps {
		s = append(s, strconv.Itoa(int(p)))
	}
	return strings.Join(s, ", ")
}

func joinAddrs[T fmt.Stringer](as []T) string {
	var s []string
	for _, a := range as {
		s = append(s, a.String())
	}
	return strings.Join(s, ", ")
}

// CheckCerts checks the certificate served for each host: chain (against
// roots: the system's plus [s2s] ca_file), name (RFC 6125), validity
// period and key usages other servers look at.
func CheckCerts(hosts []string, certFor func(string) *tls.Certificate, roots *x509.CertPool, now time.Time) []Finding {
	var out []Finding
	for _, host := range hosts {
		add := func(l Level, format string, args ...any) {
			out = append(out, Finding{Host: host, Level: l, Text: fmt.Sprintf(format, args...)})
		}
		tc := certFor(host)
		if tc == nil || len(tc.Certificate) == 0 {
			add(Problem, "no certificate is configured")
			continue
		}
		var chain []*x509.Certificate
		for _, der := range tc.Certificate {
			c, err := x509.ParseCertificate(der)
			if err != nil {
				add(Problem, "the certificate chain does not parse: %v", err)
				break
			}
			chain = append(chain, c)
		}
		if len(chain) == 0 {
			continue
		}
		leaf := chain[0]
		st := verifyCert(chain, roots, host, now)
		ok := true
		if st.chainErr != nil {
			ok = false
			add(Problem, "%s: other servers will refuse it (or fall back to dialback); use a certificate from a public CA (e.g. Let's Encrypt) with its intermediates in the file", st.problem())
		}
		if st.nameErr != nil {
			ok = false
			add(Problem, "%s; add %s to the certificate's names", st.nameErr.Error(), host)
		}
		if left := leaf.NotAfter.Sub(now); left > 0 && left < 14*24*time.Hour {
			add(Warning, "the certificate expires on %s (in %d days): renew it, then send SIGHUP", leaf.NotAfter.UTC().Format("2006-01-02"), int(left.Hours()/24))
		}
		if len(leaf.ExtKeyUsage) > 0 {
			if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
				ok = false
				add(Problem, "the certificate is not for TLS servers (no serverAuth extended key usage)")
			}
			if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
				add(Warning, "the certificate has no clientAuth extended key usage: servers that check it will not accept it on connections stoa makes (they fall back to dialback or refuse)")
			}
		}
		if ok {
			add(OK, "valid for %s until %s, issued by %s (SHA-256 %s)", host, leaf.NotAfter.UTC().Format("2006-01-02"), leaf.Issuer.CommonName, st.fingerprint())
		}
	}
	return out
}

// Roots returns the trusted roots for a configuration: the system's plus
// ca_file.
func Roots(cfg Config) (*x509.CertPool, error) { return loadRoots(cfg.CAFile) }
