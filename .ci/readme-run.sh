#!/usr/bin/env bash
# Proves the README's run command: clones this checkout (its HEAD) into a temp dir, runs the command exactly as the
# README's "Set up" section writes it, at the clone's root, in the background; polls (bounded) until
# `curl http://127.0.0.1:8080/` gets a 200 from the demo route; then stops the process by its id and cleans up.
# The demo config listens on fixed ports (8080 proxy, 9901 admin, 8081/8082 demo origins): if one is busy this
# fails saying so, rather than testing something else that answers there.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
fail() { echo "readme-run: FAIL: $*" >&2; exit 1; }

# The command as the README has it: the first indented `dotnet run` line.
command=$(sed -n 's/^    \(dotnet run .*\)$/\1/p' "$repo/README.md" | head -1)
[ -n "$command" ] || fail "no indented 'dotnet run ...' line in README.md"

for port in 8080 9901 8081 8082; do
  # A connection that succeeds means something listens there (bash's /dev/tcp: no extra tool).
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "port $port on 127.0.0.1 is already in use; the demo config needs 8080, 9901, 8081 and 8082 free"
  fi
done

work=$(mktemp -d)
pid=
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

git clone --quiet "$repo" "$work/clone"
echo "readme-run: cloned $(git -C "$work/clone" rev-parse --short HEAD) into $work/clone; running: $command"
# setsid: the command gets a process group of its own (pgid = $pid), so `dotnet run` and the program it starts are
# stopped together, and nothing else.
(cd "$work/clone" && exec setsid bash -c "exec $command") >"$work/run.log" 2>&1 </dev/null &
pid=$!

# Bounded: the clone is built from scratch first (restore + Release build), which takes minutes on a busy 2-core box.
deadline=$((SECONDS + 600))
status=
while [ $SECONDS -lt $deadline ]; do
  if ! kill -0 "$pid" 2>/dev/null; then
    rc=0; wait "$pid" || rc=$?
    pid=
    tail -20 "$work/run.log" >&2
    fail "'$command' exited ($rc) before the demo route answered"
  fi
  status=$(curl -s -o "$work/body" -w '%{http_code}' --max-time 5 http://127.0.0.1:8080/ || true)
  [ "$status" = 200 ] && break
  sleep 1
done
if [ "$status" != 200 ]; then
  tail -20 "$work/run.log" >&2
  fail "http://127.0.0.1:8080/ did not answer 200 within 600 s (last status '$status')"
fi
grep -q "Hello from demo origin" "$work/body" || fail "http://127.0.0.1:8080/ answered 200 but not from a demo origin: $(head -c 200 "$work/body")"
echo "readme-run: GET http://127.0.0.1:8080/ -> 200: $(head -1 "$work/body")"

kill -TERM -- "-$pid"
rc=0
for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then fail "'$command' still running 30 s after SIGTERM"; fi
wait "$pid" || rc=$?
pid=
echo "readme-run: OK (stopped by SIGTERM, exit $rc)"
