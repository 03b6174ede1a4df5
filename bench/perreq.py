#!/usr/bin/env python3
"""Per-request cost of ZcProxy on one small proxied body, in counts that do not depend on machine load:
system calls (strace -f -c), context switches (/proc/PID/task/*/status), bytes allocated (the runtime's
total-allocated counter on the admin /metrics) per request, plus CPU µs per request (load-sensitive).

    python3 bench/perreq.py [--zcproxy DLL] [--size 1024] [--conns 16] [--seconds 3] [--env K=V ...] [--access-log] [--cache]
        [--http1 kestrel|own] [--no-zero-copy] [--tls]

--tls: the listener is https:// as the bench's zc-tls target (a self-signed P-256 certificate, ZeroCopy off as there
unless --zero-copy-tls); wrk keeps its connections, so handshakes are 16 per run, not per request.

--cache: the route caches (a Cache section in the run directory) and every timed request is a cache hit.

--access-log logs every request to a file as the packaged config does (format main), for the cost of a logged request.
Starts an nginx origin (1 worker) and zcproxy (ports from the OS, 127.0.0.1 only), warms up with wrk, then runs
wrk three times: once untraced (context switches, CPU, allocations), once under perf stat (futex, epoll_wait and
context switches of the event loops apart from the runtime's other threads: strace's slow-down inflates calls made by
time, such as the runtime timers' futex, per request) and once under strace (syscalls); everything started here is
stopped by PID on exit. Prints one line per measure.
"""
import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from zcbench import configs, threadcounts, tls  # noqa: E402
from zcbench.services import free_ports  # noqa: E402
from zcbench.syscalls import parse_summary  # noqa: E402

DEFAULT_DLL = os.path.join(os.path.dirname(HERE), "src/ZcProxy/bin/Release/net10.0/zcproxy.dll")
ALLOCATED = re.compile(r"^(?:system_runtime_)?dotnet_gc_heap_total_allocated(?:_bytes)?(?:_total)?(?:\{[^}]*\})?\s+(\S+)", re.M)


def wait_http(url, seconds=30):
    end = time.time() + seconds
    context = tls.client_context() if url.startswith("https:") else None
    while time.time() < end:
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as r:
                return r.read()
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"no answer from {url} within {seconds} s")


def wait_hit(url, seconds=30):
    """Asks until the answer is a cache hit (a fill completes after its response)."""
    end = time.time() + seconds
    while time.time() < end:
        with urllib.request.urlopen(url, timeout=5) as r:
            r.read()
            if r.headers.get("X-Cache-Status") == "HIT":
                return
        time.sleep(0.2)
    raise SystemExit(f"{url} never answered X-Cache-Status: HIT")


def metric(admin, pattern):
    text = urllib.request.urlopen(f"{admin}/metrics", timeout=5).read().decode()
    m = pattern.search(text)
    if not m:
        raise SystemExit("no total-allocated metric on /metrics: " + ", ".join(sorted({l.split('{')[0].split(' ')[0] for l in text.splitlines() if 'alloc' in l and not l.startswith('#')})))
    return float(m.group(1))


def wrk(url, conns, seconds):
    out = subprocess.run(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", url], capture_output=True, text=True, check=True).stdout
    m = re.search(r"(\d+) requests in", out)
    if "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit("wrk saw errors:\n" + out)
    return int(m.group(1))


def ctx_switches(pid):
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Rig:
    """An nginx origin (1 worker) serving one body of `size` bytes and zcproxy in front of it; stopped by PID on exit."""

    def __init__(self, dll, size=1024, env=(), access_log=False, cache=False, http1=None, zero_copy=True, https=False):
        self.dll, self.size, self.env, self.http1 = dll, size, dict(kv.split("=", 1) for kv in env), http1
        self.https = https
        self.zero_copy = zero_copy
        self.access_log, self.cache = access_log, cache
        self.procs = []

    def __enter__(self):
        self.work = tempfile.mkdtemp(prefix="zcperreq.")
        files, run = os.path.join(self.work, "files"), os.path.join(self.work, "run")
        os.makedirs(files)
        os.makedirs(run)
        with open(os.path.join(files, "body"), "wb") as f:
            f.write(os.urandom(self.size))
        origin_port, port, admin_port = free_ports(3)
        with open(os.path.join(self.work, "nginx.conf"), "w") as f:
            f.write(configs.nginx_origin(origin_port, run, files, workers=1))
        with open(os.path.join(self.work, "zcproxy.json"), "w") as f:
            f.write(configs.zcproxy(port, admin_port, origin_port, self.zero_copy,
                                    access_log=os.path.join(self.work, "access.log") if self.access_log else None,
                                    cache_dir=os.path.join(self.work, "cache") if self.cache else None, http1=self.http1,
                                    tls=tls.self_signed(self.work) if self.https else None))
        try:
            self.procs.append(subprocess.Popen(["nginx", "-c", os.path.join(self.work, "nginx.conf"), "-p", run],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            self.zc = subprocess.Popen(["dotnet", self.dll, "--config", os.path.join(self.work, "zcproxy.json")],
                                       env=dict(os.environ, **self.env), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.procs.append(self.zc)
            self.port = port
            self.url = f"{'https' if self.https else 'http'}://127.0.0.1:{port}/body"
            self.admin = f"http://127.0.0.1:{admin_port}"
            wait_http(f"http://127.0.0.1:{origin_port}/body")
            assert len(wait_http(self.url)) == self.size
            if self.cache:
                wait_hit(self.url)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        subprocess.run(["rm", "-rf", self.work])

    def untraced(self, conns, seconds):
        """(requests, context switches/request, CPU µs/request, allocated bytes/request) of one wrk run."""
        pid = self.zc.pid
        cs0, cpu0, al0 = ctx_switches(pid), cpu_seconds(pid), metric(self.admin, ALLOCATED)
        n = wrk(self.url, conns, seconds)
        cs1, cpu1, al1 = ctx_switches(pid), cpu_seconds(pid), metric(self.admin, ALLOCATED)
        per_metrics = metric(self.admin, ALLOCATED) - al1  # the /metrics request itself allocates: subtracted
        return n, (cs1 - cs0) / n, (cpu1 - cpu0) * 1e6 / n, (al1 - al0 - per_metrics) / n

    def counted(self, conns, seconds):
        """One line of wake-ups per request by thread (loops, others) from an untraced wrk run under perf stat, or a
        note that perf is unavailable: strace's count of calls made by time, not by request (the runtime's timers and
        pool workers), grows as strace slows the requests down."""
        out = os.path.join(self.work, "perfstat.txt")
        n, by_name = threadcounts.run([self.zc.pid], seconds, out, lambda: wrk(self.url, conns, seconds))
        return threadcounts.describe(by_name, n, seconds) if by_name else "perf stat unavailable"

    def traced(self, conns, seconds):
        """(requests, syscalls/request, top calls) of one wrk run under strace -f -c (which slows the process)."""
        out = os.path.join(self.work, "strace.txt")
        st = subprocess.Popen(["strace", "-f", "-c", "-o", out, "-p", str(self.zc.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)  # attach to every thread before the load starts
        n = wrk(self.url, conns, seconds)
        st.send_signal(signal.SIGINT)
        st.wait(timeout=60)
        with open(out) as f:
            rows = parse_summary(f.read())
        rows.sort(key=lambda r: -r[1])
        return n, sum(c for _, c, _ in rows) / n, ", ".join(f"{name} {c / n:.2f}" for name, c, _ in rows[:8])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zcproxy", default=DEFAULT_DLL)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--env", action="append", default=[], help="K=V for zcproxy's environment")
    ap.add_argument("--access-log", action="store_true", help="log every request to a file (format main), as the packaged config")
    ap.add_argument("--cache", action="store_true", help="the route caches: every timed request is a hit")
    ap.add_argument("--http1", choices=["kestrel", "own"], help="ZeroCopy.Http1 (default: ZcProxy's)")
    ap.add_argument("--no-zero-copy", action="store_true", help="ZeroCopy.Enabled false: Kestrel's socket transport, YARP's forwarder")
    ap.add_argument("--tls", action="store_true", help="https:// listener as the bench's zc-tls (ZeroCopy off as there)")
    ap.add_argument("--zero-copy-tls", action="store_true", help="with --tls: ZeroCopy.Enabled true (TLS still takes YARP's path)")
    a = ap.parse_args()
    zero_copy = not a.no_zero_copy and (not a.tls or a.zero_copy_tls)
    with Rig(a.zcproxy, a.size, a.env, a.access_log, a.cache, a.http1, zero_copy=zero_copy, https=a.tls) as rig:
        wrk(rig.url, a.conns, a.warmup)  # JIT, pools
        n, cs, cpu, alloc = rig.untraced(a.conns, a.seconds)
        woken = rig.counted(a.conns, a.seconds)
        nt, calls, top = rig.traced(a.conns, a.seconds)
    print(f"requests (untraced, {a.seconds}s, -c{a.conns}, {a.size} B{', cache hits' if a.cache else ''}): {n} ({n / a.seconds:.0f}/s)")
    print(f"syscalls/request: {calls:.2f} ({top}) over {nt} traced requests")
    print(f"context switches/request: {cs:.3f}")
    print(f"untraced by thread, per request (perf stat): {woken}")
    print(f"CPU us/request: {cpu:.1f}")
    print(f"allocated bytes/request: {alloc:.0f}")


if __name__ == "__main__":
    main()
