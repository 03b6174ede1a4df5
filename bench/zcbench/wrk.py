"""Running wrk and reading its numbers.

A small Lua `done` hook prints exact totals (requests, bytes, duration in µs, error counts) on one
line, so nothing is parsed from wrk's rounded human output ("1.23GB read").
"""
import re
import subprocess

LUA_DONE = r'''
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "ZCBENCH requests=%d bytes=%d duration_us=%d connect=%d read=%d write=%d status=%d timeout=%d p50_us=%d p99_us=%d\n",
    summary.requests, summary.bytes, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
'''

_LINE = re.compile(r"^ZCBENCH (.*)$", re.M)


def command(url, threads, connections, duration_s, script_path, timeout_s=30, host_header=None):
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration_s))}s", f"--timeout={timeout_s}s",
           "-s", script_path]
    if host_header:
        cmd += ["-H", f"Host: {host_header}"]
    return cmd + [url]


def parse(output):
    """The totals dict from wrk's output; raises ValueError when the hook line is missing."""
    m = _LINE.search(output)
    if not m:
        raise ValueError("wrk printed no ZCBENCH summary line: " + output.strip()[-300:])
    fields = dict(kv.split("=", 1) for kv in m.group(1).split())
    r = {k: int(v) for k, v in fields.items()}
    r["duration_s"] = r.pop("duration_us") / 1e6
    r["errors"] = r["connect"] + r["read"] + r["write"] + r["status"] + r["timeout"]
    return r


def describe_errors(r):
    parts = [f"{k}={r[k]}" for k in ("connect", "read", "write", "status", "timeout") if r.get(k)]
    return ("wrk errors " + " ".join(parts)) if parts else ""


def run(cmd, wall_timeout_s):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=wall_timeout_s)
    if p.returncode != 0:
        raise RuntimeError(f"wrk exited {p.returncode}: {(p.stderr + p.stdout).strip()[-300:]}")
    return parse(p.stdout)
