-- Prosody 0.12 configuration for bench/compare.sh (loopback only). The
-- compare script replaces @DIR@, @PORT@, @CERT@ and @KEY@. mod_limits
-- (traffic limits) and registration throttles are off, like stoa's and
-- ejabberd's here; credentials are stored as SCRAM-SHA-256 keys
-- (internal_hashed with password_hash = "SHA-256").
pidfile = "@DIR@/prosody.pid"
data_path = "@DIR@/data"
log = { warn = "@DIR@/prosody.log" }
network_backend = "epoll"
interfaces = { "127.0.0.1" }
c2s_ports = { @PORT@ }
c2s_direct_tls_ports = {}
s2s_ports = {}
network_settings = { tcp_backlog = 4096 }
certificates = "@DIR@"
c2s_require_encryption = true
authentication = "internal_hashed"
password_hash = "SHA-256"
allow_registration = true
min_seconds_between_registrations = 0
registration_throttle_max = nil
allow_unencrypted_plain_auth = false
modules_enabled = {
	"roster"; "saslauth"; "tls"; "disco"; "carbons"; "blocklist";
	"version"; "uptime"; "time"; "ping"; "register"; "csi_simple";
}
modules_disabled = { "s2s"; "s2s_auth_certs" }
ssl = { certificate = "@CERT@"; key = "@KEY@" }
VirtualHost "bench.local"
