#!/usr/bin/env bash
# The cache pollution benchmark (issue 14), one command: ZcProxy's Cache.DirectIo residency / threshold / off
# against nginx proxy_cache (sendfile) and nginx `directio 4m; aio threads;`, each in a cgroup v1 memory cgroup.
#   bench/pollution.sh [--smoke | --reduced | --cold-only] [--seconds N] [--during CMD] [--only zc-residency,nginx-cache] [--zcproxy DLL]
# Needs root (cgroup), nginx, wrk, dd; writes bench/results/pollution-<UTC time>/table.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

need=()
for tool in nginx:nginx wrk:wrk; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if ((${#need[@]})); then
  echo "installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2 && apt-get install -y -q "${need[@]}" >&2
fi

dll="$repo/src/ZcProxy/bin/Release/net10.0/zcproxy.dll"
args=("$@")
if [[ " $* " != *" --zcproxy "* ]]; then
  if [[ ! -f "$dll" ]]; then
    echo "building zcproxy (Release)" >&2
    (cd "$repo" && dotnet build -c Release -nologo -v q) >&2
  fi
  args+=(--zcproxy "$dll")
fi

# As in run.sh: the harness stops what it started by PID; if python itself dies, this trap does.
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
  rmdir /sys/fs/cgroup/memory/zcpollution-* 2>/dev/null || true
}
trap cleanup EXIT
cd "$here"
ZCBENCH_PIDFILE="$pidfile" python3 -m zcbench.pollution "${args[@]}"
