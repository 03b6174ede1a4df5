"""The cache pollution benchmark (issue 14): does the hot set survive a stream of large cold objects?

Each target runs inside its own cgroup v1 memory cgroup (/sys/fs/cgroup/memory), whose limit is the target's
resident memory after start plus a page-cache budget, so the page cache its cache files may occupy is the same for
every target. The cache is primed with a hot set of small objects and a cold set of large ones (several times the
budget); then, for the timed phase, one wrk requests random hot objects continuously (latency measured) while a
second wrk streams the large cold objects alongside. Measured per target:
  hot p50/p99       the hot wrk's latency percentiles
  disk read         read_bytes of /proc/PID/io over the target's process tree (bytes fetched from the block device)
  excess read       disk read minus the cold bytes delivered (cold objects cannot be in memory: every cold byte is
                    read from disk once at best; what is read beyond that is the hot set being re-read)
  hot resident      share of the hot set's cache-file pages in the page cache when the timed phase starts (after the
                    priming) and at its end (cachestat(2))
  limit hits        the cgroup's memory.failcnt over the timed phase: charges that found the limit reached (reclaim)
  CPU-s/GB, GB/s    the target's CPU per GB delivered (hot + cold), and the delivered throughput
Then cold hits through ZcProxy against the device, paired per entry file: `dd iflag=direct bs=1M` of the file and one
GET of its object, each right after posix_fadvise(DONTNEED) of the file, in alternating order; the goal is on the
median of the pairs' ratios (cold_hit_vs_dd). `--cold-only` runs just that part (the cold set primed, no hot set).

    bench/pollution.sh            # the real run (minutes; the lead runs it on a quiet machine)
    bench/pollution.sh --smoke    # about a minute: tiny sets, short phases; proves the harness, measures nothing
    bench/pollution.sh --cold-only  # the cold hits against dd only (a minute or two)
    bench/pollution.sh --reduced --only zc-residency --during 'perf record -p $TARGET_PID ... -- sleep 5'
"""
import argparse
import ctypes
import glob
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

from . import configs, metrics, procstat, wrk
from .services import Service, free_ports, remember_work_dir, forget_pids

CGROUP_ROOT = "/sys/fs/cgroup/memory"
MiB = 1 << 20

# (name, kind, setting): ZcProxy's three Cache.DirectIo modes and nginx's two cache configurations.
TARGETS = [
    ("zc-residency", "zcproxy", "residency"),
    ("zc-threshold", "zcproxy", "threshold"),
    ("zc-directio-off", "zcproxy", "off"),
    ("nginx-cache", "nginx", "cache"),
    ("nginx-cache-aio", "nginx", "cache-aio"),
]

SCALES = {
    # hot count x size, cold count x size, page-cache budget, timed phase
    "full": dict(hot=2000, hot_size=64 * 1024, cold=48, cold_size=64 * MiB, budget=512 * MiB, seconds=60),
    # diagnosis on a busy machine: the full run's shapes (64 KiB hot, 64 MiB cold, cold set 3x the budget), a quarter of the bytes
    "reduced": dict(hot=1000, hot_size=64 * 1024, cold=12, cold_size=64 * MiB, budget=256 * MiB, seconds=10),
    "smoke": dict(hot=200, hot_size=64 * 1024, cold=6, cold_size=16 * MiB, budget=32 * MiB, seconds=3),
}

HOT_LUA = """
math.randomseed(%d)
request = function()
  return wrk.format("GET", string.format("/hot/%%d.bin", math.random(0, %d)))
end
"""

COLD_LUA = """
local i = 0
request = function()
  i = (i %% %d) + 1
  return wrk.format("GET", string.format("/cold/%%d.bin", i - 1))
end
"""


def log(msg):
    print(f"[pollution {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def make_files(files_dir, scale):
    rnd = random.Random(14)
    for sub, count, size in (("hot", scale["hot"], scale["hot_size"]), ("cold", scale["cold"], scale["cold_size"])):
        os.makedirs(os.path.join(files_dir, sub), exist_ok=True)
        for i in range(count):
            path = os.path.join(files_dir, sub, f"{i}.bin")
            if os.path.exists(path) and os.path.getsize(path) == size:
                continue
            with open(path, "wb") as f:
                block = rnd.randbytes(min(size, MiB))
                for off in range(0, size, len(block)):
                    f.write(block[: min(len(block), size - off)])


class MemoryCgroup:
    """A cgroup v1 memory cgroup: a process started through it is moved in before it execs."""

    def __init__(self, name):
        self.path = os.path.join(CGROUP_ROOT, name)
        os.makedirs(self.path, exist_ok=True)

    def wrap(self, cmd):
        return ["sh", "-c", f'echo $$ > {self.path}/cgroup.procs && exec "$@"', "sh"] + cmd

    def limit(self, nbytes):
        with open(os.path.join(self.path, "memory.limit_in_bytes"), "w") as f:
            f.write(str(nbytes))

    def failcnt(self):
        """How often the cgroup's usage hit its limit (each time the kernel had to reclaim to charge a page)."""
        with open(os.path.join(self.path, "memory.failcnt")) as f:
            return int(f.read())

    def remove(self):
        try:
            with open(os.path.join(self.path, "memory.force_empty"), "w") as f:
                f.write("0")
        except OSError:
            pass
        try:
            os.rmdir(self.path)
        except OSError as e:
            log(f"could not remove {self.path}: {e}")


def tree_rss_bytes(root):
    total = 0
    for pid in procstat.tree_pids(root, procstat.all_stats()):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def tree_read_bytes(root):
    total = 0
    for pid in procstat.tree_pids(root, procstat.all_stats()):
        try:
            with open(f"/proc/{pid}/io") as f:
                total += int(dict(line.split(": ") for line in f.read().splitlines())["read_bytes"])
        except (OSError, KeyError, ValueError):
            pass
    return total


_libc = ctypes.CDLL(None, use_errno=True)
_SYS_CACHESTAT = 451  # x86_64 and arm64


class _Range(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _Stat(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in ("cache", "dirty", "writeback", "evicted", "recently_evicted")]


def cached_pages(path):
    """(cached, total) pages of a file, from cachestat(2)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        st = _Stat()
        if _libc.syscall(_SYS_CACHESTAT, fd, ctypes.byref(_Range(0, 0)), ctypes.byref(st), 0) != 0:
            raise OSError(ctypes.get_errno(), "cachestat")
        return st.cache, (size + 4095) // 4096
    finally:
        os.close(fd)


def hot_resident_share(cache_dir, max_hot_file):
    cached = total = 0
    for path in glob.glob(os.path.join(cache_dir, "**", "*"), recursive=True):
        if os.path.isfile(path) and os.path.getsize(path) <= max_hot_file:
            c, t = cached_pages(path)
            cached, total = cached + c, total + t
    return cached / total if total else 0.0


def get(url, timeout=120):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        size = 0
        while chunk := r.read(MiB):
            size += len(chunk)
        return r.headers.get("X-Cache-Status", ""), size


def prime(port, scale, hot=True):
    """Every object fetched until it is a HIT: all fills done before the timed phase (the cold set only: hot=False)."""
    base = f"http://127.0.0.1:{port}"
    paths = [(f"/hot/{i}.bin", scale["hot_size"]) for i in range(scale["hot"] if hot else 0)]
    paths += [(f"/cold/{i}.bin", scale["cold_size"]) for i in range(scale["cold"])]
    for path, size in paths:
        # A fill is committed (renamed into place) a moment after the client has the last byte, so a request right
        # behind it can still miss: ask again with a growing pause, bounded (about 10 s per object).
        for attempt in range(25):
            status, got = get(base + path)
            if got != size:
                raise RuntimeError(f"{path}: {got} bytes, expected {size}")
            if status == "HIT":
                break
            time.sleep(min(0.02 * (attempt + 1), 0.5))
        else:
            raise RuntimeError(f"{path} never answered X-Cache-Status: HIT")


def start_target(name, kind, setting, work_dir, origin_port, dll, scale, max_size_bytes):
    run_dir = os.path.join(work_dir, name)
    os.makedirs(run_dir, exist_ok=True)
    cache_dir = os.path.join(run_dir, "cache")
    cgroup = MemoryCgroup(f"zcpollution-{os.getpid()}-{name}")
    admin = None
    if kind == "zcproxy":
        port, admin = free_ports(2)
        os.makedirs(cache_dir, exist_ok=True)
        text = configs.zcproxy(port, admin, origin_port, True, cache_dir, direct_io=setting,
                               max_size=str(max_size_bytes))
        conf = os.path.join(run_dir, "zcproxy.json")
        open(conf, "w").write(text)
        env = dict(os.environ, DOTNET_CLI_TELEMETRY_OPTOUT="1", DOTNET_NOLOGO="1")
        svc = Service(name, cgroup.wrap(["dotnet", dll, "--config", conf]), os.path.join(run_dir, "server.log"),
                      [port, admin], cwd=run_dir, env=env)
    else:
        port = free_ports(1)[0]
        text = configs.nginx_proxy(port, origin_port, run_dir, setting, max_size=f"{max_size_bytes // MiB}m")
        conf = os.path.join(run_dir, "nginx.conf")
        open(conf, "w").write(text)
        svc = Service(name, cgroup.wrap(["nginx", "-e", f"{run_dir}/error.log", "-p", run_dir, "-c", conf]),
                      os.path.join(run_dir, "server.log"), [port])
    svc.start()
    return svc, port, admin, cgroup, cache_dir


def run_wrk(port, lua_text, connections, seconds, work_dir, tag):
    script = os.path.join(work_dir, f"{tag}.lua")
    with open(script, "w") as f:
        f.write(lua_text + wrk.LUA_DONE)
    cmd = wrk.command(f"http://127.0.0.1:{port}", 1, connections, seconds, script, timeout_s=60)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def measure(name, kind, setting, args, scale, work_dir, origin_port):
    max_size = (scale["hot"] * scale["hot_size"] + scale["cold"] * scale["cold_size"]) * 2
    svc, port, admin, cgroup, cache_dir = start_target(name, kind, setting, work_dir, origin_port, args.zcproxy,
                                                       scale, max_size)
    try:
        # The limit: what the target holds itself once started, plus the page-cache budget (the same for all).
        cgroup.limit(tree_rss_bytes(svc.pid) + scale["budget"])
        if args.cold_only:
            prime(port, scale, hot=False)
            return dict(target=name, cold_hit=cold_hit_vs_dd(port, admin, cache_dir, scale))
        prime(port, scale)
        resident0 = hot_resident_share(cache_dir, scale["hot_size"] + MiB)
        failcnt0 = cgroup.failcnt()
        read0, cpu0 = tree_read_bytes(svc.pid), procstat.tree_cpu_seconds(svc.pid)
        hot = run_wrk(port, HOT_LUA % (14, scale["hot"] - 1), 8, scale["seconds"], work_dir, f"{name}-hot")
        cold = run_wrk(port, COLD_LUA % scale["cold"], 2, scale["seconds"], work_dir, f"{name}-cold")
        if args.during:
            # A diagnosis command (perf, memcg stats) alongside the timed phase: it gets the target's PID and cgroup.
            env = dict(os.environ, TARGET=name, TARGET_PID=str(svc.pid), TARGET_CGROUP=cgroup.path)
            subprocess.run(["sh", "-c", args.during], env=env, timeout=scale["seconds"] + 120, check=False)
        outs = [p.communicate(timeout=scale["seconds"] + 120)[0] for p in (hot, cold)]
        read1, cpu1 = tree_read_bytes(svc.pid), procstat.tree_cpu_seconds(svc.pid)
        failcnt1 = cgroup.failcnt()
        h, c = wrk.parse(outs[0]), wrk.parse(outs[1])
        delivered = h["bytes"] + c["bytes"]
        seconds = max(h["duration_s"], c["duration_s"])
        row = dict(target=name, hot_rps=h["requests"] / h["duration_s"], p50_ms=h["p50_us"] / 1000,
                   p99_ms=h["p99_us"] / 1000, disk_mib=(read1 - read0) / MiB,
                   excess_mib=max(0, read1 - read0 - c["bytes"]) / MiB, cold_mib=c["bytes"] / MiB,
                   hot_resident=hot_resident_share(cache_dir, scale["hot_size"] + MiB), hot_resident_start=resident0,
                   failcnt=failcnt1 - failcnt0,
                   cpu_s_gb=(cpu1 - cpu0) / (delivered / 1e9) if delivered else float("nan"),
                   gbps=delivered / 1e9 / seconds, errors=h["errors"] + c["errors"])
        if kind == "zcproxy" and setting == "residency":
            row["cold_hit"] = cold_hit_vs_dd(port, admin, cache_dir, scale)
        return row
    finally:
        svc.stop()
        cgroup.remove()


def cold_hit_vs_dd(port, admin, cache_dir, scale):
    """Cold hits against the device, paired per entry file: for each large entry, `dd iflag=direct bs=1M` of its file
    and one GET of its object through ZcProxy (one connection), each right after dropping the file from the page cache
    with posix_fadvise(DONTNEED), in alternating order (dd first for even pairs, the hit first for odd ones), so both
    read the same blocks within the same second and the device's spread over the minutes cancels out of each pair's
    ratio. dd's time is its own (from its report: no fork/exec), the hit's from the request to its last body byte.
    Returns a list of pairs: dict(hit_gbps, dd_gbps, client_cpu_share, mechanism)."""
    entries = cold_entry_files(cache_dir, scale)
    pairs = []
    for k, (i, path) in enumerate(sorted(entries.items())):
        def hit():
            drop_from_page_cache(path)
            before = metrics.scrape(admin) or {}
            size, seconds, cpu = fetch_body(port, f"/cold/{i}.bin")
            after = metrics.scrape(admin) or {}
            grew = {m: after.get(m, 0) - before.get(m, 0) for m in after}
            return size / 1e9 / seconds, cpu / seconds, max(grew, key=grew.get) if grew else "?"

        def device():
            drop_from_page_cache(path)
            return dd_gbps(path)

        if k % 2:
            (hit_gbps, share, mechanism), dd = hit(), device()
        else:
            dd, (hit_gbps, share, mechanism) = device(), hit()
        pairs.append(dict(hit_gbps=hit_gbps, dd_gbps=dd, client_cpu_share=share, mechanism=mechanism))
    return pairs


def cold_entry_files(cache_dir, scale):
    """{cold object number: its entry file}: the entry's header holds the request path (its cache key)."""
    found = {}
    for path in glob.glob(os.path.join(cache_dir, "**", "*"), recursive=True):
        if not os.path.isfile(path) or os.path.getsize(path) < scale["cold_size"]:
            continue
        with open(path, "rb") as f:
            head = f.read(64 * 1024)
        for i in range(scale["cold"]):
            if f"/cold/{i}.bin".encode() in head:
                found[i] = path
                break
    return found


_BODY_BUFFER = bytearray(4 * MiB)


def fetch_body(port, path):
    """One GET on a fresh connection, its body read with recv_into a reused 4 MiB buffer: the kernel's copy and
    nothing in Python per byte (urllib's read(1 MiB) made a bytes object per read and could not keep up with a cold
    hit on a busy 2-core machine). Returns (body bytes, seconds from the request to the last byte, this thread's CPU
    seconds meanwhile: the client's share of a core, which says whether the client was the limit)."""
    view = memoryview(_BODY_BUFFER)
    with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
        t0, c0 = time.monotonic(), time.thread_time()
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            n = s.recv_into(view)
            if n == 0:
                raise RuntimeError(f"{path}: connection closed in the response head")
            head += bytes(view[:n])
        head, _, body = head.partition(b"\r\n\r\n")
        fields = {k.strip().lower(): v.strip() for k, _, v in
                  (line.partition(b":") for line in head.split(b"\r\n")[1:])}
        if not head.startswith(b"HTTP/1.1 200") or fields.get(b"x-cache-status") != b"HIT":
            raise RuntimeError(f"{path}: not a 200 HIT: {head[:200]!r}")
        length, got = int(fields[b"content-length"]), len(body)
        while got < length:
            n = s.recv_into(view)
            if n == 0:
                raise RuntimeError(f"{path}: {got} of {length} body bytes")
            got += n
        return got, time.monotonic() - t0, time.thread_time() - c0


def drop_from_page_cache(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


_DD_SECONDS = re.compile(r"copied, ([0-9.]+) s")


def dd_gbps(path):
    """GB/s of `dd iflag=direct bs=1M` of one file, by dd's own clock (its report), so that its start-up is not
    counted against it."""
    out = subprocess.run(["dd", f"if={path}", "of=/dev/null", "bs=1M", "iflag=direct"], check=True,
                         capture_output=True, text=True).stderr
    return os.path.getsize(path) / 1e9 / float(_DD_SECONDS.search(out).group(1))


def median(values):
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def cold_hit_table(target, pairs):
    """The cold-hit rows from cold_hit_vs_dd's pairs, medians (min-max): the goal is on the pairs whose hit went by
    O_DIRECT (zcproxy_body_bytes_total); hits that went by sendfile (re-admitted: an entry hit cold the 2nd time within
    60 s while the memory has room, docs/direct-io.md) read through the page cache and get a row of their own; the
    client's CPU share of one core while it read says whether the client was the limit."""
    def cell(values, digits=2):
        return f"{median(values):.{digits}f} | {min(values):.{digits}f}–{max(values):.{digits}f}" if values else "– | –"
    direct = [p for p in pairs if p["mechanism"] == "directio"]
    other = [p for p in pairs if p["mechanism"] != "directio"]
    lines = ["", f"Cold hits, {len(pairs)} pairs: for each cold entry file, `dd iflag=direct bs=1M` of it and one GET of "
                 "its object through ZcProxy (1 connection), each right after `posix_fadvise(DONTNEED)` of the file, in "
                 "alternating order; ratios within each pair.", "",
             "| cold hits (entries dropped from the page cache) | median | range |", "|---|---|---|",
             f"| ZcProxy {target}, {len(direct)} hits by O_DIRECT, GB/s | {cell([p['hit_gbps'] for p in direct])} |",
             f"| `dd iflag=direct bs=1M` of the same files, GB/s | {cell([p['dd_gbps'] for p in direct])} |",
             f"| ratio O_DIRECT hit / dd, paired (goal >= 0.9) | {cell([p['hit_gbps'] / p['dd_gbps'] for p in direct])} |"]
    if other:
        by = ", ".join(sorted({p["mechanism"] for p in other}))
        lines.append(f"| {len(other)} hits by {by} (re-admitted), ratio to dd, paired | "
                     f"{cell([p['hit_gbps'] / p['dd_gbps'] for p in other])} |")
    lines.append(f"| client CPU while reading, share of one core | {cell([p['client_cpu_share'] for p in pairs])} |")
    return lines


def table(rows, scale, header):
    lines = [header, "",
             f"Hot set {scale['hot']} x {scale['hot_size'] // 1024} KiB, cold set {scale['cold']} x "
             f"{scale['cold_size'] // MiB} MiB, page-cache budget {scale['budget'] // MiB} MiB per target "
             f"(cgroup v1 memory limit = the target's RSS after start + budget), {scale['seconds']} s timed, "
             "hot: wrk 8 connections random objects, cold: wrk 2 connections in turn.", "",
             "| target | hot p50 ms | hot p99 ms | hot req/s | disk read MiB | excess read MiB | cold MiB served "
             "| hot resident at start / end | limit hits | CPU-s/GB | GB/s | errors |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "failed" in r:
            lines.append(f"| {r['target']} | not measured: {r['failed']} ||||||||||| ")
            continue
        if "p50_ms" not in r:
            continue  # --cold-only: no timed phase
        lines.append(f"| {r['target']} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | {r['hot_rps']:.0f} | "
                     f"{r['disk_mib']:.0f} | {r['excess_mib']:.0f} | {r['cold_mib']:.0f} | "
                     f"{100 * r['hot_resident_start']:.0f} / {100 * r['hot_resident']:.0f} % | {r['failcnt']} | "
                     f"{r['cpu_s_gb']:.3f} | {r['gbps']:.2f} | {r['errors']} |")
    for r in rows:
        if r.get("cold_hit"):
            lines += cold_hit_table(r["target"], r["cold_hit"])
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(prog="bench/pollution.sh", description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sets and 3 s phases (about a minute): harness check")
    ap.add_argument("--reduced", action="store_true",
                    help="1000 x 64 KiB hot, 12 x 64 MiB cold, 256 MiB budget, 10 s: diagnosis runs on a busy machine")
    ap.add_argument("--seconds", type=int, help="timed phase per target")
    ap.add_argument("--during", help="shell command run alongside each timed phase, with $TARGET, $TARGET_PID "
                                     "and $TARGET_CGROUP set (perf record, memory.stat snapshots)")
    ap.add_argument("--only", help="comma-separated target names")
    ap.add_argument("--cold-only", action="store_true",
                    help="only the cold hits against dd (zc-residency: the cold set primed, no hot set, no timed phase)")
    ap.add_argument("--zcproxy", required=True, help="zcproxy.dll to run")
    ap.add_argument("--out", help="directory for table.md (default bench/results/pollution-<UTC time>)")
    args = ap.parse_args(argv)
    if not os.access(os.path.join(CGROUP_ROOT, "cgroup.procs"), os.W_OK):
        sys.exit(f"pollution: {CGROUP_ROOT} is not a writable cgroup v1 memory hierarchy (run as root)")
    scale = dict(SCALES["smoke" if args.smoke else "reduced" if args.reduced else "full"])
    if args.seconds:
        scale["seconds"] = args.seconds
    chosen = [t for t in TARGETS if not args.only or t[0] in args.only.split(",")]
    if args.cold_only:
        chosen = [t for t in chosen if t[0] == "zc-residency"]
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out_dir = args.out or os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results",
                                       f"pollution-{started}")
    os.makedirs(out_dir, exist_ok=True)
    work_dir = tempfile.mkdtemp(prefix="zcbench-pollution-")  # /tmp/zcbench-*: run.sh's trap removes it too
    remember_work_dir(work_dir)
    origin = None
    rows = []
    try:
        files_dir = os.path.join(work_dir, "files")
        log(f"making files in {files_dir}")
        make_files(files_dir, scale)
        origin_port = free_ports(1)[0]
        origin_dir = os.path.join(work_dir, "origin")
        os.makedirs(origin_dir)
        conf = os.path.join(origin_dir, "nginx.conf")
        open(conf, "w").write(configs.nginx_origin(origin_port, origin_dir, files_dir))
        origin = Service("origin", ["nginx", "-e", f"{origin_dir}/error.log", "-p", origin_dir, "-c", conf],
                         os.path.join(origin_dir, "server.log"), [origin_port]).start()
        for name, kind, setting in chosen:
            log(f"{name}: start, prime, {scale['seconds']} s timed")
            try:
                rows.append(measure(name, kind, setting, args, scale, work_dir, origin_port))
            except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as e:
                rows.append(dict(target=name, failed=str(e)[:200]))
            shutil.rmtree(os.path.join(work_dir, name), ignore_errors=True)
    finally:
        if origin:
            origin.stop()
        shutil.rmtree(work_dir, ignore_errors=True)
        forget_pids()
    with open("/proc/loadavg") as f:
        load = " ".join(f.read().split()[:3])
    header = (f"# Cache pollution benchmark ({'smoke: proves the harness, measures nothing' if args.smoke else 'reduced' if args.reduced else 'full'})"
              f"\n\n{started}, load average at the end {load}, zcproxy {args.zcproxy}")
    text = table(rows, scale, header)
    with open(os.path.join(out_dir, "table.md"), "w") as f:
        f.write(text)
    print(text)
    log(f"written {out_dir}/table.md")
    return 1 if any("failed" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
