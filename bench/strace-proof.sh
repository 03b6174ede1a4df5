#!/usr/bin/env bash
# The zero-copy proof by hand, for operators: the real zcproxy process with strace attached while bodies pass.
#   bench/strace-proof.sh [--zcproxy DLL] [--mib N]
# Starts a python origin and zcproxy (ports from the OS, 127.0.0.1 only), then for each case attaches
#   strace -f -C -yy -e trace=<I/O calls> -o FILE -p <zcproxy pid>
# (-C = the -c summary table plus the per-call lines, whose return values are byte counts), fetches with curl,
# stops strace with SIGINT and prints the summary table, the bytes per syscall (to the client socket and in all)
# and the zcproxy_body_bytes_total response counters before/after. Cases:
#   splice    N MiB (default 256) through an uncached route: the forwarder splices upstream -> pipe -> client
#   sendfile  a 300000-byte cache hit (below DirectIoThreshold 4MiB): sendfile from the entry file
#   sendfile  an 8 MiB cache hit (above the threshold) right after its fill: in the page cache, so sendfile
#             (Cache.DirectIo "residency", the default)
#   directio  the same 8 MiB hit after posix_fadvise(DONTNEED) on its entry file: opened with O_DIRECT, read with pread64
# Everything started here is stopped by PID on exit.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
dll="$repo/src/ZcProxy/bin/Release/net10.0/zcproxy.dll"
mib=256
while (($#)); do
  case "$1" in
    --zcproxy) dll="$2"; shift 2 ;;
    --mib) mib="$2"; shift 2 ;;
    *) echo "usage: $0 [--zcproxy DLL] [--mib N]" >&2; exit 2 ;;
  esac
done

need=()
for tool in strace curl python3; do command -v "$tool" >/dev/null 2>&1 || need+=("$tool"); done
if ((${#need[@]})); then
  echo "installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 && apt-get install -y -q "${need[@]}" >&2
fi
if [[ ! -f "$dll" ]]; then
  echo "building zcproxy (Release)" >&2
  (cd "$repo" && dotnet build -c Release -nologo -v q) >&2
fi

work="$(mktemp -d /tmp/zcproof.XXXXXX)"
# strace writes its output apart from the config directory: zcproxy watches that with inotify, and every traced
# write into it would wake the watcher up and pollute the trace.
mkdir -p "$work/conf" "$work/files" "$work/trace"
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf -- "$work"
}
trap cleanup EXIT

wait_for_line() { # file regex -> prints the first match of group 1, bounded (20 s)
  local i
  for ((i = 0; i < 200; i++)); do
    if grep -qE "$2" "$1" 2>/dev/null; then grep -oE "$2" "$1" | head -1 | sed -E "s#$2#\\1#"; return 0; fi
    sleep 0.1
  done
  echo "timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; return 1
}

head -c "$((mib << 20))" /dev/urandom > "$work/files/big"
head -c 300000 /dev/urandom > "$work/files/small"
head -c "$((8 << 20))" /dev/urandom > "$work/files/large"

python3 "$here/strace-proof/origin.py" "$work/files" > "$work/origin.log" 2>&1 &
pids+=($!)
origin="$(wait_for_line "$work/origin.log" 'origin listening on (http://[0-9.:]+)')"

cat > "$work/conf/zcproxy.json" <<EOF
{
  "Listen": [ { "Url": "http://127.0.0.1:0" } ],
  "Admin": { "Url": "http://127.0.0.1:0" },
  "ZeroCopy": { "Enabled": true },
  "Cache": { "Path": "$work/cache", "DirectIoThreshold": "4MiB", "MaxSize": "1GiB", "MinFreeDisk": 0 },
  "AccessLog": { "Path": "off" },
  "ReverseProxy": {
    "Routes": {
      "plain": { "ClusterId": "origin", "Match": { "Path": "/plain/{**rest}" } },
      "cached": { "ClusterId": "origin", "Match": { "Path": "/cached/{**rest}" }, "Metadata": { "Cache": "on" } }
    },
    "Clusters": { "origin": { "Destinations": { "o1": { "Address": "$origin" } } } }
  }
}
EOF
dotnet "$dll" --config "$work/conf/zcproxy.json" > "$work/proxy.log" 2>&1 &
proxy_pid=$!
pids+=("$proxy_pid")
proxy="$(wait_for_line "$work/proxy.log" 'proxy listening on (http://[0-9.:]+)')"
admin="$(wait_for_line "$work/proxy.log" 'admin listening on (http://[0-9.:]+)')"
port="${proxy##*:}"
echo "zcproxy pid $proxy_pid: proxy $proxy, admin $admin; origin $origin ($("$(command -v strace)" -V | head -1))"

counters() { curl -fsS "$admin/metrics" | grep -E '^zcproxy_body_bytes_total\{.*direction="response"\}'; }
syscalls=sendfile,splice,read,write,readv,writev,sendmsg,recvmsg,recvfrom,sendto,pread64,openat

counter() { counters | grep "mechanism=\"$1\"" | awk '{ print $2 }'; }

prove() { # mechanism url file: the counter of that mechanism must grow by the file size
  local name="$1" url="$2" file="$3" out="$work/trace/$1.strace" err="$work/trace/$1.err" strace_pid i start size
  echo
  echo "=== $name: GET $url"
  counters > "$work/before"
  start="$(counter "$name")"
  size="$(stat -c %s "$work/files/$file")"
  strace -f -C -yy -e trace="$syscalls" -e signal=none -o "$out" -p "$proxy_pid" 2> "$err" &
  strace_pid=$!
  pids+=("$strace_pid")
  for ((i = 0; i < 200; i++)); do grep -qs attached "$err" && break; sleep 0.1; done
  grep -qs attached "$err" || { echo "strace did not attach:" >&2; cat "$err" >&2; return 1; }
  curl -fsS -o "$work/body" -D "$work/head" -w 'curl: %{http_code}, %{size_download} bytes in %{time_total} s\n' "$proxy$url"
  # The counter is added just after the last syscall returns: wait for it (bounded) so strace has seen that call.
  for ((i = 0; i < 100; i++)); do (($(counter "$name" | cut -d. -f1) >= start + size)) && break; sleep 0.05; done
  kill -INT "$strace_pid"
  wait "$strace_pid" || true
  grep -i '^x-cache-status' "$work/head" || true
  if cmp -s "$work/body" "$work/files/$file"; then echo "body: identical to the origin file (sha256 $(sha256sum < "$work/body" | cut -c1-16)...)"; else echo "body: DIFFERS from the origin file"; fi
  echo "strace -f -C -yy -e trace=$syscalls -p $proxy_pid   (summary)"
  sed -n '/^% time/,$p' "$out"
  echo "bytes by syscall (sum of return values; client socket = local port $port; the rest includes the /metrics polls):"
  python3 "$here/strace-proof/strace_bytes.py" "$out" "$port"
  grep -oE 'openat\(.*\bO_DIRECT\b[^)]*\)' "$out" | sed 's/^/  /' || true
  echo "counters before -> after:"
  counters | paste "$work/before" - | awk '{ printf "  %-72s %12s -> %12s (+%d)\n", $1, $2, $4, $4 - $2 }'
}

prove splice "/plain/big" big
curl -fsS -o /dev/null "$proxy/cached/small"   # MISS: fills the cache (not traced)
prove sendfile "/cached/small" small
curl -fsS -o /dev/null "$proxy/cached/large"   # MISS: the fill leaves the entry in the page cache
prove sendfile "/cached/large" large
entry="$(find "$work/cache" -type f -size +8M | head -1)"
python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd); os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED); os.close(fd)' "$entry"
echo
echo "(posix_fadvise(DONTNEED) on $entry: the entry is cold now)"
prove directio "/cached/large" large
