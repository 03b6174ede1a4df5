#!/usr/bin/env bash
# Does the unit's SystemCallFilter= (@system-service minus @privileged) cover what the proxy really calls?
# Traces the packaged binary (strace -f -c) through start, a proxied request, a SIGHUP reload and a SIGTERM
# drain, then lists any syscall outside the filter. Not in CI (needs strace and ~15 s); run after build-deb.sh:
#   packaging/check-syscalls.sh packaging/out/zcproxy_0.1.0_amd64.deb
set -euo pipefail
deb=${1:?usage: check-syscalls.sh PACKAGE.deb}
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
dpkg-deb -x "$deb" "$work/x"
cat > "$work/zcproxy.json" <<JSON
{ "Listen": [ { "Url": "http://127.0.0.1:0" } ], "Admin": { "Url": "http://127.0.0.1:0" },
  "Cache": { "Path": "$work/cache", "MaxSize": "1GiB" },
  "ReverseProxy": { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "/{**rest}" } } },
                    "Clusters": { "c": { "Destinations": { "d": { "Address": "http://127.0.0.1:1/" } } } } } }
JSON
strace -f -qq -c -o "$work/strace.txt" "$work/x/usr/bin/zcproxy" --config "$work/zcproxy.json" >"$work/out.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do grep -q "proxy listening on" "$work/out.log" && break; sleep 0.1; done
url=$(sed -n 's/.*proxy listening on \(http:\/\/[^ ]*\).*/\1/p' "$work/out.log" | head -1)
[ -n "$url" ] || { cat "$work/out.log" >&2; exit 1; }
curl -s -o /dev/null "$url/x" || true
child=$(pgrep -P "$pid" | head -1)
kill -HUP "$child"
for _ in $(seq 1 100); do grep -q "configuration reloaded" "$work/out.log" && break; sleep 0.1; done
kill -TERM "$child"
wait "$pid" || true
pid=
systemd-analyze syscall-filter > "$work/groups.txt" 2>/dev/null
python3 - "$work/groups.txt" "$work/strace.txt" <<'PY'
import sys
groups, current = {}, None
for line in open(sys.argv[1]):
    if line.startswith('@'):
        current = line.split()[0]; groups[current] = []
    elif current and line.strip() and not line.strip().startswith('#'):
        groups[current].append(line.split()[0])
def expand(group):
    out = set()
    for item in groups.get(group, []):
        out |= expand(item) if item.startswith('@') else {item}
    return out
allowed = expand('@system-service') - expand('@privileged')
used = sorted({p[-1] for p in (l.split() for l in open(sys.argv[2])) if len(p) >= 5 and p[0][0].isdigit() and p[-1] != 'total'})
outside = [s for s in used if s not in allowed]
print(f"check-syscalls: {len(used)} syscalls used; outside @system-service minus @privileged: {outside or 'none'}")
sys.exit(1 if outside else 0)
PY
