package register

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"stoa.im/stoa/internal/config"
	"stoa.im/stoa/internal/policy"
	"stoa.im/stoa/internal/xmpp/jid"
)

// Registration modes.
const (
	ModeClosed   = "closed"
	ModeInvite   = "invite"
	ModeApproval = "approval"
	ModeOpen     = "open"
)

// CAPTCHA kinds.
const (
	CaptchaNone     = "none"
	CaptchaHashcash = "hashcash"
	CaptchaImage    = "image"
	CaptchaBoth     = "both"
)

// Notification modes.
const (
	NotifyEach   = "each"
	NotifyDigest = "digest"
	NotifyOff    = "off"
)

// Config is the [register] table.
type Config struct {
	Mode string `toml:"mode" enum:"closed,invite,approval,open" help:"Who may create an account: closed (nobody; admins create accounts with 'stoa user add'), invite (only with an invitation), approval (anyone, but the new account stays restricted until an admin approves it), open (anyone). Password change and account deletion work in every mode."`
	// Hosts overrides the mode and CAPTCHA per host.
	Hosts             []HostConfig   `toml:"hosts" help:"Per-host overrides, one [[register.hosts]] table per host: host (required), and any of mode, captcha, hashcash_bits, reserved (added to the reserved names). Keys left out take the values above."`
	Captcha           CaptchaConfig  `toml:"captcha" help:"The CAPTCHA asked for in-band registration (XEP-0158), served by stoa itself: no third party sees the users."`
	Throttle          ThrottleConfig `toml:"throttle" help:"Limits on accounts created and on refused attempts, per address, per network and in total. Each limit allows max events in any window of period; max = 0 turns it off. The state survives restarts."`
	Names             NamesConfig    `toml:"names" help:"Which names may be registered."`
	Notify            NotifyConfig   `toml:"notify" help:"How the admins hear about new accounts."`
	NewAccounts       RestrictConfig `toml:"new_accounts" help:"New accounts are restricted (account state restricted, set by registration), against spam from fresh sign-ups: for a while after sign-up, and in approval mode until an admin approves the account. A restricted account may message fewer people outside its roster and send fewer subscription requests per hour: see [limits.unsolicited] restricted_messages_per_hour and restricted_subscriptions_per_hour."`
	PasswordMinLength int            `toml:"password_min_length" min:"1" max:"1024" help:"Shortest password accepted at sign-up and for in-band password changes, in characters."`
	// LogRetention bounds the registration log.
	LogRetention config.Duration `toml:"log_retention" min:"0s" help:"How long the registration log (who signed up, when, from which address, how, with which invitation) is kept; 0 keeps it forever. Keep it at least as long as the longest throttle period: the throttles count sign-ups from the log."`
}

// HostConfig overrides Config for one host.
type HostConfig struct {
	Host         string   `toml:"host" help:"The host (one of [server] hosts)."`
	Mode         string   `toml:"mode" help:"closed, invite, approval or open; empty keeps the global mode."`
	Captcha      string   `toml:"captcha" help:"none, hashcash, image or both; empty keeps the global setting."`
	HashcashBits int      `toml:"hashcash_bits" min:"0" max:"32" help:"Hashcash difficulty for this host; 0 keeps the global value."`
	Reserved     []string `toml:"reserved" help:"More reserved names and patterns for this host."`
}

// CaptchaConfig is [register.captcha].
type CaptchaConfig struct {
	Kind         string          `toml:"kind" enum:"none,hashcash,image,both" help:"Challenges offered with in-band registration: hashcash (the client's CPU solves a SHA-256 puzzle, invisible to people on a desktop), image (distorted characters, served with XEP-0231), both (the client answers either one) or none. Invited sign-ups are never asked."`
	HashcashBits int             `toml:"hashcash_bits" min:"8" max:"32" help:"Hashcash difficulty in bits: solving takes about 2^bits SHA-256 hashes (20 bits: about a second in a desktop client). Raise it as computers get faster."`
	ImageLength  int             `toml:"image_length" min:"4" max:"10" help:"Characters in the image challenge."`
	Expiry       config.Duration `toml:"expiry" min:"30s" help:"Time to answer a challenge."`
	MaxPending   int             `toml:"max_pending" min:"100" help:"Challenges kept waiting for an answer; when full, the oldest is dropped."`
}

// Limit is one throttle: at most Max events in any window of Period.
type Limit struct {
	Max    int             `toml:"max" min:"0" help:"Events allowed per window; 0: no limit."`
	Period config.Duration `toml:"period" min:"1s" help:"Length of the sliding window."`
}

// ThrottleConfig is [register.throttle].
type ThrottleConfig struct {
	IP     Limit `toml:"ip" help:"Accounts created from one address."`
	IPv424 Limit `toml:"ipv4_24" help:"Accounts created from one IPv4 /24 network."`
	IPv648 Limit `toml:"ipv6_48" help:"Accounts created from one IPv6 /48 network (a site)."`
	IPv664 Limit `toml:"ipv6_64" help:"Accounts created from one IPv6 /64 network (one subscriber)."`
	Global Limit `toml:"global" help:"Accounts created on this server in total, from anywhere."`
	// Refused attempts are counted apart: a refusal never uses the budget
	// of accounts, but a flood of refused attempts is throttled.
	RefusedIP  Limit    `toml:"refused_ip" help:"Refused attempts (name taken or reserved, wrong CAPTCHA, bad invitation, ...) from one address before its attempts are refused outright. Refusals never use the accounts budget."`
	RefusedNet Limit    `toml:"refused_net" help:"Refused attempts from one network (IPv4 /24, IPv6 /48 and /64)."`
	Exempt     []string `toml:"exempt" help:"Addresses or networks (CIDR) the throttles do not apply to, e.g. a trusted reverse proxy that registers on behalf of users it vetted. Empty by default: loopback is not exempt."`
}

// NamesConfig is [register.names].
type NamesConfig struct {
	Reserved        []string        `toml:"reserved" help:"More names nobody may register, or glob patterns with * and ? (e.g. \"*admin*\", \"stoa-?\"). Compared after folding look-alikes, so \"adm1n\" matches \"admin\"."`
	DefaultReserved bool            `toml:"default_reserved" help:"Also reserve the usual official-looking names: admin, administrator, root, abuse, postmaster, hostmaster, webmaster, xmpp, support, security, info, noreply."`
	TombstoneExpiry config.Duration `toml:"tombstone_expiry" min:"0s" help:"After this long a deleted account's name may be registered again; 0 (the default) means never, so nobody can pose as a former user to their contacts."`
	MaxLength       int             `toml:"max_length" min:"1" max:"1023" help:"Longest name accepted, in bytes."`
}

// NotifyConfig is [register.notify].
type NotifyConfig struct {
	Mode     string          `toml:"mode" enum:"each,digest,off" help:"each: a message to every watcher for each new account (address, IP, method, invitation); digest: one summary per interval; off."`
	Watchers []string        `toml:"watchers" help:"Bare JIDs told about new accounts; empty means the configured admins ([server] admins)."`
	Interval config.Duration `toml:"interval" min:"1m" help:"How often the digest is sent (digest mode)."`
}

// RestrictConfig is [register.new_accounts].
type RestrictConfig struct {
	Period config.Duration `toml:"period" min:"0s" help:"How long after sign-up an account stays restricted; 0 turns the restriction off (approval mode still restricts until approval, and for what remains of the period after it)."`
}

// Defaults are the [register] defaults.
var Defaults = Config{
	Mode: ModeClosed,
	Captcha: CaptchaConfig{
		Kind:         CaptchaBoth,
		HashcashBits: 20,
		ImageLength:  6,
		Expiry:       config.Duration(10 * time.Minute),
		MaxPending:   10000,
	},
	Throttle: ThrottleConfig{
		IP:         Limit{Max: 3, Period: config.Duration(24 * time.Hour)},
		IPv424:     Limit{Max: 10, Period: config.Duration(24 * time.Hour)},
		IPv648:     Limit{Max: 10, Period: config.Duration(24 * time.Hour)},
		IPv664:     Limit{Max: 3, Period: config.Duration(24 * time.Hour)},
		Global:     Limit{Max: 100, Period: config.Duration(time.Hour)},
		RefusedIP:  Limit{Max: 20, Period: config.Duration(time.Hour)},
		RefusedNet: Limit{Max: 60, Period: config.Duration(time.Hour)},
	},
	Names: NamesConfig{
		DefaultReserved: true,
		MaxLength:       64,
	},
	Notify: NotifyConfig{
		Mode:     NotifyEach,
		Interval: config.Duration(time.Hour),
	},
	NewAccounts: RestrictConfig{
		Period: config.Duration(72 * time.Hour),
	},
	PasswordMinLength: 8,
	LogRetention:      config.Duration(0),
}

var (
	modes        = []string{ModeClosed, ModeInvite, ModeApproval, ModeOpen}
	captchaKinds = []string{CaptchaNone, CaptchaHashcash, CaptchaImage, CaptchaBoth}
)

// Validate checks what tags cannot: per-host entries, exempt networks,
// watchers and reserved names.
func (c Config) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, h := range c.Hosts {
		key := fmt.Sprintf("hosts[%d]", i)
		j, err := jid.Parse(h.Host)
		if err != nil || !j.IsDomain() {
			errs = append(errs, &config.FieldError{Key: key + ".host", Msg: fmt.Sprintf("%q is not a domain name", h.Host)})
			continue
		}
		if seen[j.Domain()] {
			errs = append(errs, &config.FieldError{Key: key + ".host", Msg: fmt.Sprintf("%q is listed twice", h.Host)})
		}
		seen[j.Domain()] = true
		if h.Mode != "" && !slices.Contains(modes, h.Mode) {
			errs = append(errs, &config.FieldError{Key: key + ".mode", Msg: fmt.Sprintf("%q is not one of %s", h.Mode, strings.Join(modes, ", "))})
		}
		if h.Captcha != "" && !slices.Contains(captchaKinds, h.Captcha) {
			errs = append(errs, &config.FieldError{Key: key + ".captcha", Msg: fmt.Sprintf("%q is not one of %s", h.Captcha, strings.Join(captchaKinds, ", "))})
		}
		if h.HashcashBits != 0 && h.HashcashBits < 8 {
			errs = append(errs, &config.FieldError{Key: key + ".hashcash_bits", Msg: "must be 0 (keep the global value) or between 8 and 32"})
		}
		if _, err := policy.NewReservedNames(h.Reserved); err != nil {
			errs = append(errs, &config.FieldError{Key: key + ".reserved", Msg: err.Error()})
		}
	}
	if _, err := parseNets(c.Throttle.Exempt); err != nil {
		errs = append(errs, &config.FieldError{Key: "throttle.exempt", Msg: err.Error()})
	}
	for i, w := range c.Notify.Watchers {
		j, err := jid.Parse(w)
		if err != nil || j.Local() == "" || j.Resource() != "" {
			errs = append(errs, &config.FieldError{Key: fmt.Sprintf("notify.watchers[%d]", i), Msg: fmt.Sprintf("%q is not a bare JID (expected user@domain)", w)})
		}
	}
	if _, err := policy.NewReservedNames(c.Names.Reserved); err != nil {
		errs = append(errs, &config.FieldError{Key: "names.reserved", Msg: err.Error()})
	}
	return errors.Join(errs...)
}

// parseNets parses addresses and CIDR networks.
func parseNets(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a network like 192.0.2.0/24", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// hostPolicy is the resolved configuration of one host.
type hostPolicy struct {
	mode         string
	captcha      string
	hashcashBits int
	reserved     *policy.ReservedNames
}

// resolve builds the per-host policies for hosts.
func (c Config) resolve(hosts []string) (map[string]*hostPolicy, error) {
	base := c.Names.Reserved
	if c.Names.DefaultReserved {
		base = append(policy.DefaultReservedNames(), base...)
	}
	out := make(map[string]*hostPolicy, len(hosts))
	for _, h := range hosts {
		hp := &hostPolicy{mode: c.Mode, captcha: c.Captcha.Kind, hashcashBits: c.Captcha.HashcashBits}
		names := slices.Clone(base)
		for _, o := range c.Hosts {
			j, err := jid.Parse(o.Host)
			if err != nil || j.Domain() != h {
				continue
			}
			if o.Mode != "" {
				hp.mode = o.Mode
			}
			if o.Captcha != "" {
				hp.captcha = o.Captcha
			}
			if o.HashcashBits != 0 {
				hp.hashcashBits = o.HashcashBits
			}
			names = append(names, o.Reserved...)
		}
		r, err := policy.NewReservedNames(names)
		if err != nil {
			return nil, fmt.Errorf("reserved names of %s: %w", h, err)
		}
		hp.reserved = r
		out[h] = hp
	}
	for _, o := range c.Hosts {
		j, err := jid.Parse(o.Host)
		if err == nil && out[j.Domain()] == nil {
			return nil, fmt.Errorf("[[register.hosts]] names %q, which is not one of the served hosts %v", o.Host, hosts)
		}
	}
	return out, nil
}
