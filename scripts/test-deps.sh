#!/usr/bin/env bash
# Installs the third-party clients the end-to-end tests drive (clients nobody
# on the stoa team wrote). As root, missing Debian packages are installed;
# otherwise this prints the exact command to run and fails.
set -euo pipefail
# prosody, lua-unbound (Prosody reads /etc/hosts through it) and ejabberd:
# the federation interop tests run private instances of them.
pkgs=(python3-slixmpp python3-aioxmpp go-sendxmpp chromium prosody lua-unbound ejabberd)
missing=()
for p in "${pkgs[@]}"; do
	dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "test deps: all present (${pkgs[*]})"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "test deps: missing ${missing[*]}; install them with:" >&2
	echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
	exit 1
fi
echo "test deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's postinst may start system Prosody/ejabberd services on the ports
# the federation tests give their private instances: stop them.
for svc in prosody ejabberd; do
	case " ${missing[*]} " in *" $svc "*) service "$svc" stop >/dev/null 2>&1 || true ;; esac
done
