package limits

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/policy"
	"stoa.im/stoa/internal/xmpp/jid"
)

// Config is the [limits] table.
type Config struct {
	ExemptNetworks []string          `toml:"exempt_networks" help:"Networks (CIDR, e.g. \"192.0.2.0/24\", or single addresses) whose connections no limit of this feature applies to. Loopback is listed by default for local tools and benchmarks; remove it if a proxy (a Tor onion service, a web gateway) connects from loopback on behalf of many users."`
	ExemptAdmins   bool              `toml:"exempt_admins" help:"Server administrators ([server] admins) are exempt from bandwidth, stanza-rate and unsolicited-traffic limits."`
	Connections    ConnectionsConfig `toml:"connections" help:"Concurrent connections per address and network, and sessions per account."`
	Bandwidth      BandwidthConfig   `toml:"bandwidth" help:"Bytes per second per connection, by connection kind, read and written, with bursts."`
	Stanzas        StanzasConfig     `toml:"stanzas" help:"Stanzas per second per session and per account, by kind (message, presence, iq)."`
	Unsolicited    UnsolicitedConfig `toml:"unsolicited" help:"Messages and subscription requests to addresses outside the sender's roster, per account per hour."`
}

// ConnectionsConfig is the [limits.connections] table.
type ConnectionsConfig struct {
	PerIP              int `toml:"per_ip" min:"0" help:"Open client connections from one IP address; more are refused with policy-violation. 0: no limit."`
	PerPrefix          int `toml:"per_prefix" min:"0" help:"Open client connections from one network: an IPv4 /24 or an IPv6 /64. 0: no limit."`
	PerIPv6Site        int `toml:"per_ipv6_48" min:"0" help:"Open client connections from one IPv6 /48 (a site: what one customer usually gets). 0: no limit."`
	SessionsPerAccount int `toml:"sessions_per_account" min:"0" help:"Resources one account may have bound at once; binding one more is refused with resource-constraint. 0: no limit."`
}

// BandwidthConfig is the [limits.bandwidth] table.
type BandwidthConfig struct {
	C2S        RateConfig `toml:"c2s" help:"Client connections."`
	S2SIn      RateConfig `toml:"s2s_in" help:"Server connections other servers open to this one."`
	S2SOut     RateConfig `toml:"s2s_out" help:"Server connections this server opens."`
	PerAccount bool       `toml:"per_account" help:"Also hold all client connections of one account together to the c2s rates (several resources share one budget), on top of each connection's own."`
	Unlimited  []string   `toml:"unlimited" help:"Bare JIDs (client connections, e.g. a bridge's account) and domains (server connections) that bandwidth limits do not apply to."`
}

// RateConfig is the bandwidth of one connection kind.
type RateConfig struct {
	Rate       string          `toml:"rate" help:"Bytes per second the server reads from one connection on average, e.g. \"3kb/s\" (kb = 1000 bytes, KiB = 1024). Beyond it the server stops reading and TCP slows the sender down; nothing is lost. \"0\": no limit."`
	Burst      config.Duration `toml:"burst" help:"A connection that was quiet may send this many seconds' worth of the rate at once (rate 3kb/s with burst 2s: 6000 bytes); a quiet connection earns its burst back at the rate."`
	WriteRate  string          `toml:"write_rate" help:"Bytes per second the server writes to one connection on average; stanzas wait in the connection's queue (a client that lets it fill is disconnected, see c2s.max_queue). \"0\": no limit."`
	WriteBurst config.Duration `toml:"write_burst" help:"Burst of write_rate, in seconds' worth of it."`
}

// StanzasConfig is the [limits.stanzas] table.
type StanzasConfig struct {
	Action   string          `toml:"action" enum:"delay,refuse" help:"Over a limit: delay stops reading from the client until the stanza is within the rate (the client is slowed down, nothing is lost); refuse answers the stanza with a policy-violation error that says so."`
	MaxDelay config.Duration `toml:"max_delay" min:"0s" help:"With action = \"delay\", a stanza that would have to wait longer than this (the account's other sessions used its budget) is refused instead."`
	Session  KindRates       `toml:"session" help:"Limits of each session."`
	Account  KindRates       `toml:"account" help:"Limits of all of an account's sessions together."`
}

// KindRates are limits by stanza kind.
type KindRates struct {
	Message  EventRate `toml:"message" help:"Messages."`
	Presence EventRate `toml:"presence" help:"Presence stanzas (broadcasts, directed presence, room joins, subscriptions)."`
	IQ       EventRate `toml:"iq" help:"IQ requests (get and set; results and errors are answers and not counted)."`
}

// EventRate is a stanza rate with a burst.
type EventRate struct {
	Rate  string `toml:"rate" help:"Average rate: a number per second, minute, hour or day, e.g. \"5/s\", \"120/min\". \"0\": no limit."`
	Burst int    `toml:"burst" min:"1" help:"Stanzas that may come at once after a quiet period; a quiet sender earns them back at the rate."`
}

// UnsolicitedConfig is the [limits.unsolicited] table.
type UnsolicitedConfig struct {
	Messages                int `toml:"messages_per_hour" min:"0" help:"Addresses outside its roster an account may start messaging per hour (each new stranger costs one; further messages to the same address within the hour, and replies to people who wrote first, are free). Over it, messages are refused with policy-violation. 0: no limit."`
	Subscriptions           int `toml:"subscriptions_per_hour" min:"0" help:"Presence subscription requests an account may send per hour (one per address per hour; answering a request is free). 0: no limit."`
	RestrictedMessages      int `toml:"restricted_messages_per_hour" min:"0" help:"messages_per_hour for restricted accounts (see stoa account restrict; new accounts may be restricted by registration). 0: no limit."`
	RestrictedSubscriptions int `toml:"restricted_subscriptions_per_hour" min:"0" help:"subscriptions_per_hour for restricted accounts. 0: no limit."`
}

// Defaults are the [limits] defaults: generous enough for busy human
// users and their clients' bursts at login, tight enough to stop floods.
var Defaults = Config{
	ExemptNetworks: []string{"127.0.0.0/8", "::1/128"},
	ExemptAdmins:   true,
	Connections: ConnectionsConfig{
		PerIP: 32, PerPrefix: 256, PerIPv6Site: 1024, SessionsPerAccount: 10,
	},
	Bandwidth: BandwidthConfig{
		C2S:    RateConfig{Rate: "10kb/s", Burst: config.Duration(2 * time.Second), WriteRate: "0", WriteBurst: config.Duration(2 * time.Second)},
		S2SIn:  RateConfig{Rate: "30kb/s", Burst: config.Duration(3 * time.Second), WriteRate: "0", WriteBurst: config.Duration(3 * time.Second)},
		S2SOut: RateConfig{Rate: "0", Burst: config.Duration(3 * time.Second), WriteRate: "0", WriteBurst: config.Duration(3 * time.Second)},
	},
	Stanzas: StanzasConfig{
		Action:   "delay",
		MaxDelay: config.Duration(10 * time.Second),
		Session: KindRates{
			Message:  EventRate{Rate: "5/s", Burst: 50},
			Presence: EventRate{Rate: "2/s", Burst: 100},
			IQ:       EventRate{Rate: "10/s", Burst: 200},
		},
		Account: KindRates{
			Message:  EventRate{Rate: "10/s", Burst: 100},
			Presence: EventRate{Rate: "4/s", Burst: 200},
			IQ:       EventRate{Rate: "20/s", Burst: 400},
		},
	},
	Unsolicited: UnsolicitedConfig{
		Messages: 30, Subscriptions: 20, RestrictedMessages: 5, RestrictedSubscriptions: 3,
	},
}

// Validate checks the rates, networks and JIDs.
func (c Config) Validate() error {
	_, err := c.parse()
	return err
}

// parsed is the configuration in the form the feature uses.
type parsed struct {
	Config
	exempt    []netip.Prefix
	unlimited map[string]bool
	bandwidth map[string][2]policy.ByteRate // kind -> read, write
	session   [3]eventRate                  // by kindIndex
	account   [3]eventRate
}

// eventRate is a parsed EventRate; perSecond 0 means no limit.
type eventRate struct {
	perSecond float64
	burst     float64
}

func (c Config) parse() (*parsed, error) {
	p := &parsed{Config: c, unlimited: map[string]bool{}, bandwidth: map[string][2]policy.ByteRate{}}
	var errs []error
	fail := func(key, format string, args ...any) {
		errs = append(errs, &config.FieldError{Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	for i, n := range c.ExemptNetworks {
		pr, err := parseNetwork(n)
		if err != nil {
			fail(fmt.Sprintf("exempt_networks[%d]", i), "%q is not a network (e.g. \"192.0.2.0/24\", \"2001:db8::/32\" or one address)", n)
			continue
		}
		p.exempt = append(p.exempt, pr)
	}
	for i, u := range c.Bandwidth.Unlimited {
		j, err := jid.Parse(u)
		if err != nil || j.Resource() != "" {
			fail(fmt.Sprintf("bandwidth.unlimited[%d]", i), "%q is not a bare JID or a domain", u)
			continue
		}
		p.unlimited[j.String()] = true
	}
	for _, k := range []struct {
		name string
		rc   RateConfig
	}{{"c2s", c.Bandwidth.C2S}, {"s2s_in", c.Bandwidth.S2SIn}, {"s2s_out", c.Bandwidth.S2SOut}} {
		r, err := ParseByteRate(k.rc.Rate)
		if err != nil {
			fail("bandwidth."+k.name+".rate", "%v", err)
		}
		w, err := ParseByteRate(k.rc.WriteRate)
		if err != nil {
			fail("bandwidth."+k.name+".write_rate", "%v", err)
		}
		if !r.Unlimited() && k.rc.Burst <= 0 {
			fail("bandwidth."+k.name+".burst", "must be positive when rate is set (e.g. \"2s\")")
		}
		if !w.Unlimited() && k.rc.WriteBurst <= 0 {
			fail("bandwidth."+k.name+".write_burst", "must be positive when write_rate is set (e.g. \"2s\")")
		}
		r.Burst, w.Burst = time.Duration(k.rc.Burst), time.Duration(k.rc.WriteBurst)
		p.bandwidth[k.name] = [2]policy.ByteRate{r, w}
	}
	for _, s := range []struct {
		scope string
		kr    KindRates
		out   *[3]eventRate
	}{{"session", c.Stanzas.Session, &p.session}, {"account", c.Stanzas.Account, &p.account}} {
		for i, k := range []struct {
			name string
			er   EventRate
		}{{"message", s.kr.Message}, {"presence", s.kr.Presence}, {"iq", s.kr.IQ}} {
			r, err := ParseEventRate(k.er.Rate)
			if err != nil {
				fail("stanzas."+s.scope+"."+k.name+".rate", "%v", err)
			}
			s.out[i] = eventRate{perSecond: r, burst: float64(max(1, k.er.Burst))}
		}
	}
	return p, errors.Join(errs...)
}

// parseNetwork reads a CIDR prefix or a single address.
func parseNetwork(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParseByteRate reads a bandwidth such as "3kb/s", "10KiB/s" or
// "1.5MB/s" (units of config.Size, per second); "0" and "" mean no limit.
// The burst is left zero.
func ParseByteRate(s string) (policy.ByteRate, error) {
	t := strings.TrimSpace(s)
	if t == "" || t == "0" {
		return policy.ByteRate{}, nil
	}
	num, ok := strings.CutSuffix(strings.ToLower(t), "/s")
	if !ok {
		return policy.ByteRate{}, fmt.Errorf("%q is not a rate: write bytes per second such as \"3kb/s\" or \"10KiB/s\" (\"0\": no limit)", s)
	}
	n, err := config.ParseSize(strings.TrimSpace(num))
	if err != nil {
		return policy.ByteRate{}, fmt.Errorf("%q is not a rate: write bytes per second such as \"3kb/s\" or \"10KiB/s\" (\"0\": no limit)", s)
	}
	return policy.ByteRate{PerSecond: float64(n)}, nil
}

// ParseEventRate reads a rate such as "5/s", "120/min", "30/h" or "2/d"
// and returns events per second; "0" and "" mean no limit (0).
func ParseEventRate(s string) (float64, error) {
	t := strings.TrimSpace(s)
	if t == "" || t == "0" {
		return 0, nil
	}
	bad := fmt.Errorf("%q is not a rate: write a number per s, min, h or d, such as \"5/s\" or \"120/min\" (\"0\": no limit)", s)
	num, unit, ok := strings.Cut(t, "/")
	if !ok {
		return 0, bad
	}
	n, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
	if err != nil || n < 0 || n > 1e9 {
		return 0, bad
	}
	var per float64
	switch strings.TrimSpace(strings.ToLower(unit)) {
	case "s", "sec", "second":
		per = 1
	case "m", "min", "minute":
		per = 60
	case "h", "hour":
		per = 3600
	case "d", "day":
		per = 86400
	default:
		return 0, bad
	}
	return n / per, nil
}
