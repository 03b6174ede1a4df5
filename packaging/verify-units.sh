#!/usr/bin/env bash
# Checks the systemd units with `systemd-analyze verify` (any warning fails too), then prints the unit's
# `systemd-analyze security` exposure (offline: no running systemd needed, so it works in a container).
#   packaging/verify-units.sh            units from the repo, against a stub /usr/bin/zcproxy
#   packaging/verify-units.sh ROOT       units as installed in an extracted package tree (see test-deb.sh)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
command -v systemd-analyze >/dev/null || { echo "verify-units: systemd-analyze not found (apt-get install systemd)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ $# -ge 1 ]; then
  root=$1
  [ -f "$root/lib/systemd/system/zcproxy.service" ] || { echo "verify-units: $root has no lib/systemd/system/zcproxy.service" >&2; exit 1; }
  cp "$root/usr/share/doc/zcproxy/examples/zcproxy.socket" "$root/lib/systemd/system/zcproxy.socket"
else
  root=$work/root
  mkdir -p "$root/usr/bin" "$root/lib/systemd/system"
  printf '#!/bin/sh\n' > "$root/usr/bin/zcproxy"   # verify checks that ExecStart= names an executable
  chmod 755 "$root/usr/bin/zcproxy"
  cp "$repo/ZcProxy.service" "$root/lib/systemd/system/zcproxy.service"
  cp "$repo/packaging/zcproxy.socket" "$root/lib/systemd/system/zcproxy.socket"
fi
# ExecReload= needs /bin/kill, and the default dependencies need the standard targets: take the host's.
mkdir -p "$root/bin"
[ -x "$root/bin/kill" ] || cp /bin/kill "$root/bin/kill"
for target in /lib/systemd/system/*.target; do
  [ -e "$root/lib/systemd/system/$(basename "$target")" ] || cp "$target" "$root/lib/systemd/system/"
done

if ! systemd-analyze verify --root="$root" zcproxy.service zcproxy.socket 2>"$work/verify.err" || [ -s "$work/verify.err" ]; then
  cat "$work/verify.err" >&2
  echo "verify-units: FAILED" >&2
  exit 1
fi
echo "verify-units: systemd-analyze verify: zcproxy.service and zcproxy.socket OK"

if systemd-analyze security --offline=true --root="$root" zcproxy.service >"$work/security.txt" 2>&1; then
  grep -E "^✗" "$work/security.txt" | sed 's/^/  /' | cut -c1-150 || true
  grep -E "Overall exposure level" "$work/security.txt" | sed 's/^→ /verify-units: /'
else
  echo "verify-units: systemd-analyze security not available here:" >&2
  head -3 "$work/security.txt" >&2
fi
