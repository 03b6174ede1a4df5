#!/usr/bin/env python3
"""Memory and fds per idle keep-alive client connection of ZcProxy (the issue's "memory per idle connection").

    python3 bench/idleconns.py [--zcproxy DLL] [--counts 5000,10000] [--env K=V ...] [--http1 kestrel|own] [--gcdump DIR]

Starts an nginx origin (1 worker) and zcproxy (ports from the OS, 127.0.0.1 only). For each count it opens that
many client connections, sends one proxied GET of 1 KiB on each and reads the answer (so every connection has served
a request and sits idle in keep-alive), waits for the proxy's RSS to settle, and prints VmRSS and open fds against the
empty state, per connection; then closes them all and prints RSS again. With --gcdump, also the live objects per
connection by type (dotnet-gcdump at 0 connections and at each count, diffed). Everything started here is stopped by PID.
"""
import argparse
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE))
from perreq import wait_http, wrk  # noqa: E402
import urllib.request  # noqa: E402
from zcbench import configs  # noqa: E402
from zcbench.services import free_ports  # noqa: E402


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def settled_rss(pid, seconds=3.0):
    """RSS once it stops moving (the GC and the loops finish their work): bounded."""
    last, end = rss_kib(pid), time.time() + 30
    while time.time() < end:
        time.sleep(seconds / 3)
        now = rss_kib(pid)
        if abs(now - last) < 256:
            return now
        last = now
    return last


def managed_after_gc(port, admin):
    """Managed heap right after a GC (sum of the runtime's last-collection heap sizes) and the GC count: a short wrk
    burst on its own connections allocates enough to make the GC run, so the connections' objects are what stays."""
    def read():
        text = urllib.request.urlopen(f"{admin}/metrics", timeout=5).read().decode()
        size = sum(float(v) for v in re.findall(r"^system_runtime_dotnet_gc_last_collection_heap_size\{[^}]*\}\s+(\S+)", text, re.M))
        gcs = sum(int(float(v)) for v in re.findall(r"^system_runtime_dotnet_gc_collections\{[^}]*\}\s+(\S+)", text, re.M))
        return size, gcs
    _, before = read()
    for _ in range(10):
        wrk(f"http://127.0.0.1:{port}/body", 4, 2)
        size, after = read()
        if after >= before + 3:
            return size
    raise SystemExit("the GC did not run during the wrk bursts")


def gcdump_tool():
    found = shutil.which("dotnet-gcdump") or os.path.expanduser("~/.dotnet/tools/dotnet-gcdump")
    if not os.path.exists(found):
        raise SystemExit("--gcdump needs dotnet-gcdump (dotnet tool install -g dotnet-gcdump)")
    return found


def gcdump_types(pid, directory, count):
    """Live objects by type (bytes, count) from a gcdump of the process (the dump itself runs a full GC)."""
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"idle-{count}.gcdump")
    subprocess.run([gcdump_tool(), "collect", "-p", str(pid), "-o", path], check=True, stdout=subprocess.DEVNULL)
    report = subprocess.run([gcdump_tool(), "report", path], check=True, capture_output=True, text=True).stdout
    types = {}
    for line in report.splitlines():
        m = re.match(r"^\s*([\d,]+)\s+([\d,]+)\s+(.+?)\s*$", line)
        if m:
            # The report's first column is the size of one object of the type (an average for arrays), not the total.
            each, n, name = int(m.group(1).replace(",", "")), int(m.group(2).replace(",", "")), m.group(3)
            size = each * n
            name = re.sub(r"\s+\(Bytes > \S+\)|\s+\[[^\]]*\]$", "", name)
            old = types.get(name, (0, 0))
            types[name] = (old[0] + size, old[1] + n)
    return types


def print_per_connection(base, now, count):
    """Types whose live bytes grew by at least 8 bytes per connection, largest first."""
    rows = []
    for name, (size, n) in now.items():
        b_size, b_n = base.get(name, (0, 0))
        if size - b_size >= 8 * count:
            rows.append(((size - b_size) / count, (n - b_n) / count, name))
    rows.sort(reverse=True)
    total = sum(s for s, _, _ in rows)
    print(f"  live objects per connection by type (gcdump diff, types >= 8 B each; sum {total:.0f} B):")
    for size, n, name in rows:
        print(f"    {size:8.0f} B  {n:6.2f} objects  {name}")


def open_idle(port, count, size):
    """count connections, each with one answered GET; returned open (idle keep-alive)."""
    request = f"GET /body HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    socks, sel = [], selectors.DefaultSelector()
    batch = 500
    for start in range(0, count, batch):
        pending = {}
        for _ in range(min(batch, count - start)):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(request)
            s.setblocking(False)
            pending[s] = b""
            sel.register(s, selectors.EVENT_READ)
            socks.append(s)
        deadline = time.time() + 60
        while pending and time.time() < deadline:
            for key, _ in sel.select(timeout=1):
                s = key.fileobj
                data = s.recv(65536)
                if not data:
                    raise SystemExit("the proxy closed a connection")
                pending[s] += data
                head, sep, body = pending[s].partition(b"\r\n\r\n")
                if sep and len(body) >= size:
                    if not head.startswith(b"HTTP/1.1 200"):
                        raise SystemExit("unexpected answer: " + head.decode(errors="replace"))
                    sel.unregister(s)
                    del pending[s]
        if pending:
            raise SystemExit(f"{len(pending)} answers missing")
    return socks


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zcproxy", default=os.path.join(os.path.dirname(HERE), "src/ZcProxy/bin/Release/net10.0/zcproxy.dll"))
    ap.add_argument("--counts", default="5000,10000")
    ap.add_argument("--env", action="append", default=[], help="K=V for zcproxy's environment")
    ap.add_argument("--http1", choices=["kestrel", "own"], help="ZeroCopy.Http1 (default: ZcProxy's)")
    ap.add_argument("--gcdump", metavar="DIR", help="also write a dotnet-gcdump at 0 connections and at each count "
                    "into DIR and print the live objects per connection by type (needs dotnet-gcdump on PATH or in "
                    "~/.dotnet/tools)")
    a = ap.parse_args()
    size = 1024
    work = tempfile.mkdtemp(prefix="zcidle.")
    files, run = os.path.join(work, "files"), os.path.join(work, "run")
    os.makedirs(files)
    os.makedirs(run)
    with open(os.path.join(files, "body"), "wb") as f:
        f.write(os.urandom(size))
    origin_port, port, admin_port = free_ports(3)
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(configs.nginx_origin(origin_port, run, files, workers=1))
    with open(os.path.join(work, "zcproxy.json"), "w") as f:
        f.write(configs.zcproxy(port, admin_port, origin_port, True, http1=a.http1))
    procs = []
    try:
        procs.append(subprocess.Popen(["nginx", "-c", os.path.join(work, "nginx.conf"), "-p", run],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        env = dict(os.environ, **dict(kv.split("=", 1) for kv in a.env))
        zc = subprocess.Popen(["dotnet", a.zcproxy, "--config", os.path.join(work, "zcproxy.json")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(zc)
        wait_http(f"http://127.0.0.1:{origin_port}/body")
        wait_http(f"http://127.0.0.1:{port}/body")
        # A few hundred requests first, so JIT and pools are warm and the baseline is the steady state.
        for s in open_idle(port, 200, size):
            s.close()
        admin = f"http://127.0.0.1:{admin_port}"
        base_heap = managed_after_gc(port, admin)
        base_rss, base_fds = settled_rss(zc.pid), fds(zc.pid)
        if a.gcdump:
            base_types = gcdump_types(zc.pid, a.gcdump, 0)
        print(f"idle, 0 connections: RSS {base_rss / 1024:.1f} MiB, {base_fds} fds, managed heap after a GC {base_heap / 2**20:.1f} MiB")
        for count in (int(c) for c in a.counts.split(",")):
            socks = open_idle(port, count, size)
            rss, n = settled_rss(zc.pid), fds(zc.pid)
            heap = managed_after_gc(port, admin)
            print(f"{count} idle connections: RSS {rss / 1024:.1f} MiB (+{(rss - base_rss) / count:.2f} KiB per connection), "
                  f"{n} fds ({(n - base_fds) / count:.3f} per connection); managed heap after a GC "
                  f"{heap / 2**20:.1f} MiB (+{(heap - base_heap) / count / 1024:.2f} KiB per connection); "
                  f"RSS after the bursts {rss_kib(zc.pid) / 1024:.1f} MiB")
            if a.gcdump:
                print_per_connection(base_types, gcdump_types(zc.pid, a.gcdump, count), count)
            for s in socks:
                s.close()
            time.sleep(1)
            print(f"  after closing them: RSS {settled_rss(zc.pid) / 1024:.1f} MiB, {fds(zc.pid)} fds")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    main()
