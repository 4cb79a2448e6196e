#!/usr/bin/env bash
# bench/compare.sh: stoa, ejabberd 23.01 and Prosody 0.12 side by side on
# this machine, in one run, with the same workload (docs/benchmarks.md).
#
#   sudo bash bench/compare.sh            # everything, about 15-20 minutes
#   SERVERS="stoa prosody" USERS=500 bash bench/compare.sh
#
# It installs ejabberd, prosody and tsung from Debian if missing, builds
# stoa and stoa-bench, runs a private instance of each server on loopback
# (TLS on, SCRAM-SHA-256 keys stored, shapers, bans and traffic limits
# off), and for each server: creates the accounts and their rosters, then
# restarts the server so that memory is measured from a fresh process, and
# runs the scenarios (login storm, idle hold, chat at a fixed rate,
# presence fan-out, chat saturation). Then tsung runs one chat scenario
# against each (PLAIN: tsung has no SCRAM) as a cross-check. Results go to
# $OUT: one JSON per server, tsung summaries, the servers' logs and
# report.md with the ratios. Not part of `make test`.
#
# Settings (environment):
#   SERVERS       servers to run, in order; stoa first (default "stoa ejabberd prosody")
#   USERS         accounts and sessions (default 1000); CONTACTS roster size (10)
#   MSG_RATE      chat messages per second per user in the fixed-rate phase (1)
#   LOGIN_CONC    logins in flight (50); MECH SASL mechanism (SCRAM-SHA-256)
#   SETTLE        idle wait before reading RSS (20s)
#   SCENARIOS     the measured run's scenarios (default login,idle,chat,presence,saturation)
#   TSUNG         1 to run the tsung cross-check (default 1); TSUNG_USERS (500)
#   ROUNDS        interleaved rounds after the measured runs (default 3): each
#                 round restarts every server in turn for a login storm and the
#                 fixed-rate chat; logins/s and CPU per login and per message
#                 are then the median over the measured run and the rounds, so
#                 that the host's speed drifting between servers cancels out
#   CAPACITY      if > 0, afterwards hold this many idle stoa sessions (bounded by
#                 the open-files limit) from several 127.0.0.x addresses
#   PROFILE       1 to record pprof CPU and heap profiles of stoa during chat
#   WORK          scratch directory (default /tmp/stoa-compare); OUT results directory
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=${REPO:-$(cd "$here/.." && pwd)} # REPO: the source tree to build (when this script is a copy)
SERVERS=${SERVERS:-"stoa ejabberd prosody"}
USERS=${USERS:-1000}
CONTACTS=${CONTACTS:-10}
MSG_RATE=${MSG_RATE:-1}
LOGIN_CONC=${LOGIN_CONC:-50}
MECH=${MECH:-SCRAM-SHA-256}
SETTLE=${SETTLE:-20s}
SCENARIOS=${SCENARIOS:-login,idle,chat,presence,saturation}
TSUNG=${TSUNG:-1}
TSUNG_USERS=${TSUNG_USERS:-500}
ROUNDS=${ROUNDS:-3}
CAPACITY=${CAPACITY:-0}
PROFILE=${PROFILE:-0}
WORK=${WORK:-/tmp/stoa-compare}
OUT=${OUT:-$WORK/out-$(date +%Y%m%d-%H%M%S)}
DOMAIN=bench.local
declare -A PORT=([stoa]=25222 [ejabberd]=25223 [prosody]=25224)
METRICS_PORT=25280

log() { printf '%s compare: %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "$*"; exit 1; }

# --- tools ------------------------------------------------------------------
need=()
command -v ejabberdctl >/dev/null || need+=(ejabberd)
command -v prosody >/dev/null || need+=(prosody)
[ "$TSUNG" = 1 ] && ! command -v tsung >/dev/null && need+=(tsung)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
	[ "$(id -u)" = 0 ] || die "install ${need[*]} (apt-get install ${need[*]}) or run as root"
	log "installing ${need[*]} from Debian"
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ "$(id -u)" = 0 ] || die "run as root: the peers run as their own system users (prosody, ejabberd)"

rm -rf "$WORK/run"
mkdir -p "$WORK/bin" "$WORK/run" "$OUT"
log "building stoa and stoa-bench"
(cd "$repo" && go build -o "$WORK/bin/stoa" ./cmd/stoa && go build -o "$WORK/bin/stoa-bench" ./cmd/stoa-bench)
STOA="$WORK/bin/stoa"
BENCH="$WORK/bin/stoa-bench"

# One certificate (ECDSA P-256) for all three servers.
cert=$WORK/run/cert.pem key=$WORK/run/key.pem
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$key" -out "$cert" \
	-days 30 -subj "/CN=$DOMAIN" -addext "subjectAltName=DNS:$DOMAIN" 2>/dev/null
chmod 644 "$cert" "$key"

# The open-files limit: every session is a socket in the server and one in
# the tool. Raise the soft limit to the hard one (raising the hard one
# needs CAP_SYS_RESOURCE).
ulimit -n "$(ulimit -Hn)" || true
log "open files limit: $(ulimit -n)"

# --- servers ----------------------------------------------------------------
pid=""
dir_of() { echo "$WORK/run/$1"; }

ejctl() {
	local d; d=$(dir_of ejabberd)
	# As the ejabberd user without su: su goes through PAM, which resets
	# the open-files limit to 1024 (an ejabberd pitfall outside systemd).
	setpriv --reuid=ejabberd --regid=ejabberd --init-groups env HOME=/var/lib/ejabberd \
		ejabberdctl --config-dir "$d" --config "$d/ejabberd.yml" --ctl-config "$d/ejabberdctl.cfg" \
		--logs "$d/logs" --spool "$d/spool" --node ejbench@localhost "$@"
}

wait_port() {
	local port=$1 i
	for i in $(seq 1 300); do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
		sleep 0.1
	done
	return 1
}

prepare() { # fresh data directory and configuration
	local s=$1 d; d=$(dir_of "$s")
	rm -rf "$d" && mkdir -p "$d"
	case $s in
	stoa)
		mkdir -p "$d/data"
		sed -e "s#@DIR@#$d/data#; s#@PORT@#${PORT[stoa]}#; s#@CERT@#$cert#; s#@KEY@#$key#" "$here/stoa.toml" >"$d/stoa.toml"
		if [ "$PROFILE" = 1 ]; then
			# The profiler on the metrics listener ([metrics] pprof).
			sed -i -e "s#^\[metrics\]#[metrics]\npprof = true#" -e "0,/^listen = \"\"/s##listen = \"127.0.0.1:$METRICS_PORT\"#" "$d/stoa.toml"
		fi
		;;
	ejabberd)
		mkdir -p "$d/spool" "$d/logs"
		cat "$key" "$cert" >"$d/bench.pem"
		sed -e "s#@DIR@#$d#g; s#@PORT@#${PORT[ejabberd]}#; s#@PEM@#$d/bench.pem#" "$here/ejabberd.yml" >"$d/ejabberd.yml"
		sed -e "s#@DIR@#$d#g" "$here/ejabberdctl.cfg" >"$d/ejabberdctl.cfg"
		cp /etc/ejabberd/inetrc "$d/"
		chown -R ejabberd:ejabberd "$d"
		;;
	prosody)
		mkdir -p "$d/data"
		sed -e "s#@DIR@#$d#g; s#@PORT@#${PORT[prosody]}#; s#@CERT@#$cert#; s#@KEY@#$key#" "$here/prosody.cfg.lua" >"$d/prosody.cfg.lua"
		chown -R prosody:prosody "$d"
		;;
	esac
}

start() {
	local s=$1 d; d=$(dir_of "$s")
	case $s in
	stoa)
		"$STOA" serve -c "$d/stoa.toml" >>"$d/stoa.log" 2>&1 &
		pid=$!
		;;
	ejabberd)
		ejctl start >/dev/null
		ejctl started >/dev/null || die "ejabberd did not start; see $d/logs"
		pid=$(cat "$d/ejabberd.pid")
		;;
	prosody)
		# setpriv, not su or runuser: those go through PAM, which resets the
		# open-files limit to 1024.
		setpriv --reuid=prosody --regid=prosody --init-groups prosody --config "$d/prosody.cfg.lua" -F >>"$d/stdout.log" 2>&1 &
		wait_port "${PORT[$s]}" || die "prosody did not start; see $d"
		pid=$(cat "$d/prosody.pid")
		;;
	esac
	wait_port "${PORT[$s]}" || die "$s does not listen on ${PORT[$s]}"
	log "$s runs as pid $pid (open files: $(awk '/open files/ {print $4}' "/proc/$pid/limits"))"
}

stop() {
	local s=$1
	[ -n "$pid" ] || return 0
	case $s in
	ejabberd) ejctl stop >/dev/null || true; ejctl stopped >/dev/null || true ;;
	*) kill "$pid" 2>/dev/null || true ;;
	esac
	for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null || true
	pid=""
}

current=""
cleanup() { [ -n "$current" ] && stop "$current"; }
trap cleanup EXIT

version_of() {
	case $1 in
	stoa) "$STOA" version | head -1 | sed 's/^stoa //' ;;
	ejabberd) dpkg-query -W -f '${Version}' ejabberd ;;
	prosody) dpkg-query -W -f '${Version}' prosody ;;
	esac
}

cputime() { # CPU seconds (user + system) of a process
	awk '{ split($0, a, ") "); split(a[2], f, " "); printf "%.2f\n", (f[12] + f[13]) / 100 }' "/proc/$1/stat"
}

COMMON=()
common() { # sets COMMON: the flags every run against server $1 shares
	local s=$1
	COMMON=(-server "$s" -server-version "$(version_of "$s")" -addr "127.0.0.1:${PORT[$s]}" -domain "$DOMAIN"
		-users "$USERS" -contacts "$CONTACTS" -mech "$MECH" -keys "$(dir_of "$s")/keys.json")
}

# --- one server -------------------------------------------------------------
run_server() {
	local s=$1 d
	local -a create
	d=$(dir_of "$s")
	common "$s"
	prepare "$s"
	current=$s
	start "$s"
	case $s in
	stoa) create=(-create stoa -stoa-bin "$STOA" -stoa-config "$d/stoa.toml" -create-concurrency 4) ;;
	*) create=(-create ibr -create-concurrency 16) ;;
	esac
	log "$s: accounts, SCRAM keys and rosters"
	"$BENCH" "${COMMON[@]}" -pid "$pid" "${create[@]}" -scenarios accounts,warmup,rosters -o "$OUT/$s-prepare.json" \
		>"$OUT/$s-prepare.txt" 2> >(tee -a "$OUT/$s.log" >&2)
	stop "$s"
	start "$s"
	if [ "$s" = stoa ] && [ "$PROFILE" = 1 ]; then
		(sleep 40 && curl -s -o "$OUT/stoa-cpu.prof" "http://127.0.0.1:$METRICS_PORT/debug/pprof/profile?seconds=20" &&
			curl -s -o "$OUT/stoa-heap.prof" "http://127.0.0.1:$METRICS_PORT/debug/pprof/heap") &
	fi
	log "$s: measured run"
	"$BENCH" "${COMMON[@]}" -pid "$pid" -login-concurrency "$LOGIN_CONC" -settle "$SETTLE" \
		-msg-rate "$MSG_RATE" -chat-duration 20s -presence-duration 15s -sat-start 1000 -sat-step 5s -sat-half 15s \
		-scenarios "$SCENARIOS" -o "$OUT/$s.json" \
		>"$OUT/$s.txt" 2> >(tee -a "$OUT/$s.log" >&2)
	if [ "$TSUNG" = 1 ]; then
		stop "$s"
		start "$s"
		run_tsung "$s"
	fi
	stop "$s"
	current=""
	mkdir -p "$OUT/$s-server-logs"
	cp -r "$d"/*.log "$d"/logs "$OUT/$s-server-logs/" 2>/dev/null || true
}

run_tsung() {
	local s=$1 t=$WORK/run/tsung-$1 dur=$((TSUNG_USERS / 50)) cpu0 cpu1 t0 t1
	mkdir -p "$t"
	sed -e "s#@PORT@#${PORT[$s]}#; s#@USERS@#$TSUNG_USERS#g; s#@ARRIVAL@#50#; s#@DURATION@#$dur#; s#@WAIT@#$dur#; s#@MSGS@#20#" \
		"$here/tsung-chat.xml" >"$t/chat.xml"
	log "$s: tsung ($TSUNG_USERS users, PLAIN)"
	cpu0=$(cputime "$pid") t0=$(date +%s)
	(cd "$t" && tsung -f "$t/chat.xml" -l "$t/log" start >"$t/tsung.out" 2>&1) || log "$s: tsung exited with an error; see $t"
	cpu1=$(cputime "$pid") t1=$(date +%s)
	local logdir
	logdir=$(find "$t/log" -mindepth 1 -maxdepth 1 -type d | sort | tail -1)
	"$BENCH" tsung -server "$s" -cpu "$(awk -v a="$cpu1" -v b="$cpu0" 'BEGIN { print a - b }')" -wall $((t1 - t0)) "$logdir" >"$OUT/$s-tsung.json"
	cp "$logdir/tsung.log" "$OUT/$s-tsung.log" 2>/dev/null || true
}

run_round() { # round $1: login storm and fixed-rate chat on each server, restarted
	local r=$1 s
	for s in $SERVERS; do
		common "$s"
		current=$s
		start "$s"
		log "$s: round $r of $ROUNDS (login storm, chat at the fixed rate)"
		"$BENCH" "${COMMON[@]}" -pid "$pid" -login-concurrency "$LOGIN_CONC" -msg-rate "$MSG_RATE" -chat-duration 20s \
			-scenarios login,chat -o "$OUT/$s-round$r.json" \
			>"$OUT/$s-round$r.txt" 2> >(tee -a "$OUT/$s.log" >&2) || log "$s: round $r failed"
		stop "$s"
		current=""
	done
}

run_capacity() { # on a fresh stoa with its own data
	prepare stoa
	current=stoa
	start stoa
	log "stoa: capacity, up to $CAPACITY idle sessions"
	# The accounts are created with the request 'stoa user add' sends, on
	# the admin socket (a process per account would take minutes).
	"$BENCH" -server stoa -server-version "$(version_of stoa)" -addr "127.0.0.1:${PORT[stoa]}" -domain $DOMAIN \
		-users "$CAPACITY" -contacts 2 -mech "$MECH" -pid "$pid" -roster=false -src 127.0.0.1-127.0.0.4 \
		-create stoa-socket -stoa-socket "$(dir_of stoa)/data/stoa.sock" -create-concurrency 4 \
		-scenarios accounts,capacity -capacity-batch 2500 -timeout 120s -o "$OUT/stoa-capacity.json" \
		>"$OUT/stoa-capacity.txt" 2> >(tee -a "$OUT/stoa.log" >&2) || log "stoa: the capacity run failed"
	stop stoa
	current=""
}

for s in $SERVERS; do
	run_server "$s"
done
for r in $(seq 1 "$ROUNDS"); do
	run_round "$r"
done
if [ "$CAPACITY" -gt 0 ]; then
	run_capacity
fi

tsung_args=()
for s in $SERVERS; do
	[ -f "$OUT/$s-tsung.json" ] && tsung_args+=(-tsung "$OUT/$s-tsung.json")
done
round_args=()
for r in $(seq 1 "$ROUNDS"); do
	for s in $SERVERS; do
		[ -f "$OUT/$s-round$r.json" ] && round_args+=(-round "$OUT/$s-round$r.json")
	done
done
jsons=()
for s in $SERVERS; do jsons+=("$OUT/$s.json"); done
"$BENCH" report -o "$OUT/report.md" "${tsung_args[@]}" "${round_args[@]}" "${jsons[@]}"
log "results in $OUT (report.md)"
