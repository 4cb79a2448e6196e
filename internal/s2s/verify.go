package s2s

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// OIDs of the RFC 6120/6125 otherName identifiers.
var (
	oidSAN      = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidXmppAddr = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 5}
	oidDNSSRV   = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 8, 7}
)

// certStatus is the verdict on a peer's certificate for one domain.
type certStatus struct {
	leaf     *x509.Certificate
	chainErr error // nil: the chain leads to a trusted root and is in date
	nameErr  error // nil: the certificate names the domain (RFC 6125)
}

// valid reports whether the certificate is valid for the domain.
func (c certStatus) valid() bool { return c.leaf != nil && c.chainErr == nil && c.nameErr == nil }

// problem says in words what is wrong, Prosody style ("is self-signed",
// "has expired", "is not trusted", "is not valid for this name").
func (c certStatus) problem() string {
	if c.leaf == nil {
		return "no certificate was presented"
	}
	var parts []string
	if c.chainErr != nil {
		var inv x509.CertificateInvalidError
		var ua x509.UnknownAuthorityError
		switch {
		case errors.As(c.chainErr, &inv) && inv.Reason == x509.Expired:
			parts = append(parts, "the certificate has expired or is not yet valid")
		case errors.As(c.chainErr, &ua) && isSelfSigned(c.leaf):
			parts = append(parts, "the certificate is self-signed")
		case errors.As(c.chainErr, &ua):
			parts = append(parts, "the certificate is not signed by a trusted authority")
		default:
			parts = append(parts, "the certificate chain is not valid: "+c.chainErr.Error())
		}
	}
	if c.nameErr != nil {
		parts = append(parts, c.nameErr.Error())
	}
	return strings.Join(parts, "; ")
}

// fingerprint is the SHA-256 of the leaf certificate, hex with colons.
func (c certStatus) fingerprint() string {
	if c.leaf == nil {
		return ""
	}
	sum := sha256.Sum256(c.leaf.Raw)
	h := strings.ToUpper(hex.EncodeToString(sum[:]))
	var b strings.Builder
	for i := 0; i < len(h); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(h[i : i+2])
	}
	return b.String()
}

func isSelfSigned(c *x509.Certificate) bool {
	return bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) == nil
}

// verifyCert checks a peer's chain (leaf first) against roots and the
// domain's identity. Server certificates serve as client certificates on
// s2s, so any extended key usage is accepted.
func verifyCert(chain []*x509.Certificate, roots *x509.CertPool, domain string, now time.Time) certStatus {
	if len(chain) == 0 {
		return certStatus{}
	}
	st := certStatus{leaf: chain[0]}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, st.chainErr = chain[0].Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	st.nameErr = verifyName(chain[0], domain)
	return st
}

// verifyName checks the certificate's identifiers for an XMPP server
// domain (RFC 6125 §6 with RFC 6120 §13.7.1.2): DNS-ID (with a wildcard
// in the left-most label), SRV-ID _xmpp-server.domain, or XmppAddr.
func verifyName(c *x509.Certificate, domain string) error {
	if domain == "" {
		return errors.New("the peer did not say which domain it is")
	}
	if c.VerifyHostname(domain) == nil {
		return nil
	}
	xmpp, srv := otherNames(c)
	for _, x := range xmpp {
		if strings.EqualFold(x, domain) {
			return nil
		}
	}
	for _, s := range srv {
		if strings.EqualFold(s, "_xmpp-server."+domain) || strings.EqualFold(s, "_xmpps-server."+domain) {
			return nil
		}
	}
	names := append(append(slicesClone(c.DNSNames), xmpp...), srv...)
	if len(names) == 0 {
		return fmt.Errorf("the certificate is not valid for %s (it names no domain)", domain)
	}
	if len(names) > 5 {
		names = append(names[:5], "...")
	}
	return fmt.Errorf("the certificate is not valid for %s (it is for %s)", domain, strings.Join(names, ", "))
}

func slicesClone(s []string) []string { return append([]string(nil), s...) }

// otherNames extracts the XmppAddr and SRVName otherName entries of the
// subject alternative names.
func otherNames(c *x509.Certificate) (xmpp, srv []string) {
	for _, ext := range c.Extensions {
		if !ext.Id.Equal(oidSAN) {
			continue
		}
		var seq asn1.RawValue
		if rest, err := asn1.Unmarshal(ext.Value, &seq); err != nil || len(rest) > 0 || !seq.IsCompound {
			return
		}
		b := seq.Bytes
		for len(b) > 0 {
			var gn asn1.RawValue
			var err error
			if b, err = asn1.Unmarshal(b, &gn); err != nil {
				return
			}
			if gn.Class != asn1.ClassContextSpecific || gn.Tag != 0 {
				continue // not an otherName
			}
			var oid asn1.ObjectIdentifier
			rest, err := asn1.Unmarshal(gn.Bytes, &oid)
			if err != nil {
				continue
			}
			var explicit asn1.RawValue
			if _, err := asn1.Unmarshal(rest, &explicit); err != nil {
				continue
			}
			var s string
			switch {
			case oid.Equal(oidXmppAddr):
				if _, err := asn1.UnmarshalWithParams(explicit.Bytes, &s, "utf8"); err == nil {
					xmpp = append(xmpp, s)
				}
			case oid.Equal(oidDNSSRV):
				if _, err := asn1.UnmarshalWithParams(explicit.Bytes, &s, "ia5"); err == nil {
					srv = append(srv, s)
				}
			}
		}
	}
	return
}

// loadRoots returns the system's trusted roots plus the CAs in caFile.
func loadRoots(caFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile == "" {
		return pool, nil
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("s2s: reading ca_file: %w", err)
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("s2s: ca_file %s holds no PEM certificate", caFile)
	}
	return pool, nil
}
