#!/usr/bin/env bash
# One command for the ZcProxy bench: installs what it needs (Debian), builds zcproxy if missing,
# then runs the python harness (python3 stdlib only). Everything listens on 127.0.0.1, ports from the OS.
#   bench/run.sh [--quick] [--only CASES] [--reps N] [--duration S] [--strace] [--zcproxy DLL] [--list]
#   bench/run.sh ws [--seconds S] [--connections N] [--message BYTES] [--zcproxy DLL]   (WebSocket echo row)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

need=()
for tool in nginx:nginx haproxy:haproxy wrk:wrk strace:strace iperf3:iperf3; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
# nginx's stream module (TCP mode rows) is a separate Debian package.
[[ -f /usr/lib/nginx/modules/ngx_stream_module.so ]] || need+=(libnginx-mod-stream)
if ((${#need[@]})); then
  echo "installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 && apt-get install -y -q "${need[@]}" >&2
fi

dll="$repo/src/ZcProxy/bin/Release/net10.0/zcproxy.dll"
if [[ " $* " != *" --zcproxy "* && ! -f "$dll" ]]; then
  echo "building zcproxy (Release)" >&2
  (cd "$repo" && dotnet build -c Release -nologo -v q) >&2
fi

# The harness stops every server it started (by PID) on exit, error or Ctrl-C, and empties the PID
# file when done; if python itself is killed, this trap stops the PIDs it left listed there.
pidfile="$(mktemp /tmp/zcbench-pids.XXXXXX)"
cleanup() {
  local line
  while read -r line; do
    case "$line" in
      dir:/tmp/zcbench-*) rm -rf -- "${line#dir:}" ;;
      [0-9]*) kill -TERM "$line" 2>/dev/null || true ;;
    esac
  done < "$pidfile"
  rm -f "$pidfile"
}
trap cleanup EXIT
cd "$here"
if [[ "${1:-}" == ws ]]; then
  shift
  ZCBENCH_PIDFILE="$pidfile" python3 -m zcbench.wsecho "$@"
else
  ZCBENCH_PIDFILE="$pidfile" python3 -m zcbench "$@"
fi
