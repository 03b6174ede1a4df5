"""bench/run.sh's python side: plan, start servers, verify, time interleaved runs, report."""
import argparse
import datetime
import hashlib
import os
import platform
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from . import ceilings, metrics, plan, procstat, report, services, sink, stats, syscalls, targets, uploader, verify, wrk

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO_DIR = os.path.dirname(BENCH_DIR)
DEFAULT_DLL = os.path.join(REPO_DIR, "src/ZcProxy/bin/Release/net10.0/zcproxy.dll")


def parse_args(argv):
    p = argparse.ArgumentParser(prog="bench/run.sh", description=__doc__)
    p.add_argument("--quick", action="store_true", help="fewer workloads, 2 s runs (about 6-8 min)")
    p.add_argument("--only", default="", help="comma-separated targets/workloads/case-id globs, "
                                              "e.g. zc-on,zc-off,16m or 'nginx-*/1k-*'")
    p.add_argument("--reps", type=int, default=3, help="repetitions per case (medians of these)")
    p.add_argument("--duration", type=int, default=None, help="seconds per timed run (5, quick: 2)")
    p.add_argument("--warmup", type=int, default=3,
                   help="seconds of untimed wrk per case before the timed runs (JIT tier-up, pools, page cache)")
    p.add_argument("--strace", action="store_true", help="strace -f -c each target for a few seconds")
    p.add_argument("--strace-seconds", type=float, default=3)
    p.add_argument("--no-iperf", action="store_true", help="skip the iperf3 loopback ceiling")
    p.add_argument("--zcproxy", default=DEFAULT_DLL, help="the zcproxy.dll to run")
    p.add_argument("--out", default=None, help="results directory (default bench/results/<UTC time>)")
    p.add_argument("--list", action="store_true", help="print the selected cases and exit")
    a = p.parse_args(argv)
    if a.duration is None:
        a.duration = 2 if a.quick else 5
    a.duration = max(1, round(a.duration))  # wrk takes whole seconds
    if a.reps < 1:
        p.error("--reps must be >= 1")
    return a


def log(msg):
    print(f"[{datetime.datetime.now(datetime.timezone.utc):%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def make_files(files_dir, sizes):
    """Random bodies (seeded, so reruns serve the same bytes) and their sha256."""
    os.makedirs(files_dir, exist_ok=True)
    rng = random.Random(20261130)
    digests = {}
    for size in sizes:
        n = plan.SIZES[size]
        h = hashlib.sha256()
        with open(os.path.join(files_dir, f"{size}.bin"), "wb") as f:
            left = n
            while left:
                chunk = rng.randbytes(min(left, 1 << 20))
                f.write(chunk)
                h.update(chunk)
                left -= len(chunk)
        digests[size] = h.hexdigest()
    os.chmod(files_dir, 0o755)
    return digests


def _cmd_out(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        return (p.stdout + p.stderr).strip().splitlines()[0]
    except Exception:
        return "?"


def machine_lines(args, started, dll):
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
    commit = _cmd_out(["git", "-C", REPO_DIR, "log", "-1", "--format=%h %s"])
    dirty = _cmd_out(["git", "-C", REPO_DIR, "status", "--porcelain", "--untracked-files=no"])
    return [
        f"# ZcProxy bench, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"- mode: {'quick' if args.quick else 'full'}; {args.duration:g} s per timed run (uploads of 64 MiB and more: "
        f"at least {plan.workload('up256m-c2').run_seconds} s); "
        f"{args.reps} repetitions, interleaved across targets; values are median (min–max)",
        f"- machine: {os.cpu_count()} CPUs ({cpu}), {mem_gib:.0f} GiB, Linux {platform.release()}; "
        "client (wrk), proxy and origin share these CPUs",
        f"- load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        f"- zcproxy: {dll} (repo at {commit}{', uncommitted changes' if dirty not in ('', '?') else ''})",
        f"- {_cmd_out(['nginx', '-v'])}; {_cmd_out(['haproxy', '-v'])}; {_cmd_out(['wrk', '-v'])}; "
        f"dotnet {_cmd_out(['dotnet', '--version'])}",
        "- CPU-s/GB: CPU seconds (user+system, whole process tree, from /proc) the proxy spent per "
        "1e9 body bytes delivered; CPU µs/req the same per request; the origin row shows the origin's own CPU",
    ]


# The upload origin's service name (sink.py): POST /upload of every HTTP proxy goes there; its CPU is a run's origin CPU.
UPLOAD_ORIGIN = "upload-origin"


class Bench:
    def __init__(self, args):
        self.args = args
        self.services = {}
        self.ports = {}
        self.failed = {}      # target name -> why it could not start
        self.case_status = {}  # case id -> "ok" or why not timed
        self.runs = []
        self.failed_runs = []
        self._verified = {}   # (target, size) -> None or why the response was wrong
        self.lua_path = None
        self.files_dir = None  # the bench's files (bodies served, and the upload client's bodies)
        self.post_notes = {}  # (target, size) -> what the check after timing found

    def stop_all(self):
        for name, svc in reversed(list(self.services.items())):
            try:
                svc.stop()
            except Exception as e:
                log(f"stopping {name}: {e}")

    def start(self, needed, work_dir, files_dir, uploads=False):
        """uploads: start the upload origin (sink.py) too; the HTTP proxies send POST /upload there."""
        self.files_dir = files_dir
        origin_svc, origin_port = targets.build(plan.TARGETS_BY_NAME["origin"], work_dir, None, None, files_dir)
        self.services["origin"] = origin_svc.start()
        self.ports["origin"] = origin_port
        upload_port = None
        if uploads:
            upload_port = services.free_ports(1)[0]
            run_dir = os.path.join(work_dir, UPLOAD_ORIGIN)
            os.makedirs(run_dir, exist_ok=True)
            self.services[UPLOAD_ORIGIN] = services.Service(UPLOAD_ORIGIN, sink.command(upload_port),
                                                           os.path.join(run_dir, "server.log"), [upload_port]).start()
            self.ports[UPLOAD_ORIGIN] = upload_port
        for t in needed:
            if t.name == "origin":
                continue
            try:
                if t.kind == "zcproxy" and not os.path.exists(self.args.zcproxy):
                    raise RuntimeError(f"{self.args.zcproxy} not found (dotnet build -c Release)")
                svc, port = targets.build(t, work_dir, origin_port, self.args.zcproxy, files_dir, upload_port)
                self.services[t.name] = svc
                svc.start()
                self.ports[t.name] = port
                log(f"started {t.name} pid {svc.pid} on 127.0.0.1:{port}")
            except Exception as e:
                self.failed[t.name] = f"failed to start: {e}"
                log(self.failed[t.name])

    def verify(self, cases, digests):
        for c in cases:
            t, size = c.target, c.workload.size
            if t.name in self.failed:
                self.case_status[c.id] = self.failed[t.name]
                continue
            key = (t.name, size)
            if key not in self._verified:
                port, path = self.ports[t.name], f"/{size}.bin"
                if c.workload.upload:
                    why = verify.check_upload(port, plan.SIZES[size])
                elif t.cache:
                    why = verify.check_cache_hit(port, path, digests[size], plan.SIZES[size])
                else:
                    why = verify.check_body(port, path, digests[size], plan.SIZES[size], tls=t.tls)
                self._verified[key] = why
                log(f"verify {t.name} {size}: {why or 'ok'}")
            why = self._verified[key]
            self.case_status[c.id] = "ok" if why is None else f"verification failed: {why}"

    def wrk_cmd(self, c, duration):
        if c.workload.upload:
            # Not wrk: it built each thread's 256 MiB request for seconds inside the timed run (uploader.py).
            return uploader.command(f"http://127.0.0.1:{self.ports[c.target.name]}/upload",
                                    os.path.join(self.files_dir, f"{c.workload.size}.bin"), c.workload.connections,
                                    duration)
        url = f"{'https' if c.target.tls else 'http'}://127.0.0.1:{self.ports[c.target.name]}/{c.workload.size}.bin"
        return wrk.command(url, c.workload.threads, c.workload.connections, duration, self.lua_path)

    def timed_run(self, c, rep):
        svc = self.services[c.target.name]
        run = {"case": c.id, "target": c.target.name, "workload": c.workload.name, "rep": rep}
        if not svc.alive():
            self.case_status[c.id] = f"process exited during the bench: {svc.proc.returncode}"
            return
        procstat.reset_peak_rss(svc.pid)
        mech0 = metrics.scrape(svc.admin_port, direction="request" if c.workload.upload else "response") if svc.admin_port else None
        origin = self.services[UPLOAD_ORIGIN if c.workload.upload else "origin"]
        jit0 = metrics.jit_seconds(svc.admin_port) if svc.admin_port else None
        user0 = procstat.tree_user_seconds(svc.pid)
        cpu0, host0 = procstat.tree_cpu_seconds(svc.pid), procstat.host_cpu()
        origin0, client0 = procstat.tree_cpu_seconds(origin.pid), procstat.children_cpu_seconds()
        seconds = max(self.args.duration, c.workload.run_seconds)
        try:
            r = wrk.run(self.wrk_cmd(c, seconds), wall_timeout_s=seconds + 60)
        except Exception as e:
            run.update(requests=0, bytes=0, duration_s=seconds, cpu_s=0, errors=1, note=str(e)[:200])
            log(f"{c.id} rep {rep}: {e}")
            self.failed_runs.append(run)
            return
        cpu1, host1 = procstat.tree_cpu_seconds(svc.pid), procstat.host_cpu()
        run["user_cpu_s"] = procstat.tree_user_seconds(svc.pid) - user0
        jit1 = metrics.jit_seconds(svc.admin_port) if jit0 is not None else None
        if jit1 is not None:
            run["jit_s"] = jit1 - jit0
        # Where the rest of the machine went: the origin's CPU and wrk's (reaped children of this process).
        run["origin_cpu_s"] = procstat.tree_cpu_seconds(origin.pid) - origin0
        run["client_cpu_s"] = procstat.children_cpu_seconds() - client0
        busy = (host1[0] - host0[0]) / max(1, host1[1] - host0[1]) * 100
        note = wrk.describe_errors(r)
        if r["status"] or r["connect"] or r["timeout"] or not r["requests"]:
            # Error answers (502s are fast) or failed connections would inflate req/s: not a valid run.
            run.update(requests=r["requests"], bytes=r["bytes"], duration_s=r["duration_s"], cpu_s=cpu1 - cpu0,
                       errors=r["errors"], note=f"invalid run: {note or 'no request completed'}")
            log(f"{c.id} rep {rep}: {run['note']}")
            self.failed_runs.append(run)
            return
        if c.workload.upload:
            # An upload's bytes are its request bodies (wrk counts the few response bytes): GB/s and CPU-s/GB per those.
            r["bytes"] = r["requests"] * c.workload.body_bytes
        if svc.admin_port:
            run["mech"] = metrics.delta(mech0, metrics.scrape(svc.admin_port, direction="request" if c.workload.upload else "response"))
            run["mechanisms"] = metrics.encode(run["mech"])
        run.update(requests=r["requests"], bytes=r["bytes"], duration_s=r["duration_s"], cpu_s=cpu1 - cpu0,
                   p99_ms=r.get("p99_us", 0) / 1000,
                   peak_rss_kib=procstat.tree_peak_rss_kib(svc.pid), host_busy_pct=busy,
                   errors=r["errors"], note=note)
        self.runs.append(run)
        d = stats.derive(run)
        log(f"{c.id} rep {rep}: {d['rps']:.0f} req/s {d['gbps']:.2f} GB/s "
            f"{d['cpu_per_gb']:.3f} CPU-s/GB {d['us_per_req']:.1f} µs/req")


def run(args):
    started = datetime.datetime.now(datetime.timezone.utc)
    mode = "quick" if args.quick else "full"
    try:
        cases = plan.select(plan.all_cases(mode), args.only)
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    if args.list:
        for c in cases:
            print(c.id)
        return 0
    if not cases:
        print("no cases selected", file=sys.stderr)
        return 2
    out_dir = args.out or os.path.join(BENCH_DIR, "results", f"{started:%Y-%m-%dT%H%M%SZ}")
    os.makedirs(out_dir, exist_ok=True)
    work_dir = tempfile.mkdtemp(prefix="zcbench-", dir="/tmp")
    os.chmod(work_dir, 0o755)
    services.remember_work_dir(work_dir)
    bench = Bench(args)
    bench.lua_path = os.path.join(work_dir, "done.lua")
    with open(bench.lua_path, "w") as f:
        f.write(wrk.LUA_DONE)

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    for s in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    header = machine_lines(args, started, args.zcproxy)
    iperf = []
    try:
        sizes = sorted({c.workload.size for c in cases}, key=lambda s: plan.SIZES[s])
        log(f"{len(cases)} cases x {args.reps} reps; generating {', '.join(sizes)} in {work_dir}")
        digests = make_files(os.path.join(work_dir, "files"), sizes)
        needed = [t for t in plan.TARGETS if any(c.target == t for c in cases)]
        bench.start(needed, work_dir, os.path.join(work_dir, "files"), uploads=any(c.workload.upload for c in cases))
        bench.verify(cases, digests)
        timed = [c for c in cases if bench.case_status[c.id] == "ok"]
        # Warm-up (JIT, pools, page cache): one untimed run per case. .NET keeps compiling hot methods at
        # their final tier for seconds after start; 1 s per case left that work inside the first timed runs.
        for c in timed:
            try:
                wrk.run(bench.wrk_cmd(c, max(1, args.warmup)), wall_timeout_s=60 + args.warmup)
            except Exception as e:
                log(f"warm-up {c.id}: {e}")
        settle_jit(bench, timed, args.warmup)
        workloads = []
        for c in timed:
            if c.workload not in workloads:
                workloads.append(c.workload)
        for rep in range(1, args.reps + 1):
            if not args.no_iperf:
                try:
                    iperf.append(ceilings.iperf3_gbps(work_dir, max(1, int(args.duration))))
                    log(f"iperf3 rep {rep}: {iperf[-1]:.2f} GB/s")
                except Exception as e:
                    log(f"iperf3: {e}")
            for w in workloads:                 # interleaved: every target once per workload per rep
                group = [c for c in timed if c.workload == w]
                shift = (rep - 1) % len(group)  # rotate who goes first, so no target always follows another
                for c in group[shift:] + group[:shift]:
                    bench.timed_run(c, rep)
        strace_lines = []
        if args.strace:
            strace_lines = trace_all(bench, timed, out_dir)
        post_checks(bench, timed, digests)
        header.append(f"- load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        bench.stop_all()
        for name, svc in bench.services.items():
            if svc.log_path and os.path.exists(svc.log_path):
                shutil.copy(svc.log_path, os.path.join(out_dir, f"{name}.log"))
        for name in os.listdir(work_dir):
            for conf in ("nginx.conf", "haproxy.cfg", "zcproxy.json"):
                p = os.path.join(work_dir, name, conf)
                if os.path.exists(p):
                    shutil.copy(p, os.path.join(out_dir, f"{name}.{conf}"))
        shutil.rmtree(work_dir, ignore_errors=True)
        if not any(svc.alive() for svc in bench.services.values()):
            services.forget_pids()

    return write_report(args, header, cases, bench, iperf, strace_lines, out_dir)


def settle_jit(bench, timed, warmup_s):
    """ZcProxy's runtime recompiles hot methods at tier 1 on a background thread for tens of seconds after start (a
    fresh process serving 16 MiB hits: 0.36 user CPU-s/GB in its first 10 s, 0.03 once compiled; docs/direct-io.md).
    One warm-up run per case left that inside the first timed runs, so the cases of a .NET target are warmed again, a
    pass at a time, while it compiled for more than stats.JIT_SETTLED_S in its last pass, until it has had
    stats.JIT_WARM_MAX_S of warm-up load in all (the JIT of a loaded machine may never fall below the limit). A pass is
    one-second runs with /metrics scrapes between them (stats.settle_pass), so per-connection and per-scrape code
    tiers up here too, not in the timed runs."""
    warmed = {}
    for c in timed:
        if bench.services[c.target.name].admin_port:
            warmed[c.target.name] = warmed.get(c.target.name, 0) + max(1, warmup_s)
    todo = sorted(warmed)
    while todo:
        before = {t: metrics.jit_seconds(bench.services[t].admin_port) for t in todo}
        for c in timed:
            if c.target.name in todo:
                for seconds, scrapes in stats.settle_pass(warmup_s, c.workload.upload):
                    try:
                        wrk.run(bench.wrk_cmd(c, seconds), wall_timeout_s=60 + seconds)
                    except Exception as e:
                        log(f"warm-up {c.id}: {e}")
                    warmed[c.target.name] += seconds
                    for _ in range(scrapes):
                        metrics.scrape(bench.services[c.target.name].admin_port)
        after = {t: metrics.jit_seconds(bench.services[t].admin_port) for t in todo}
        log("JIT in warm-up pass: " + ", ".join(
            f"{t} {after[t] - before[t]:.2f} s" if None not in (after[t], before[t]) else f"{t} ?" for t in todo))
        todo = stats.still_compiling(before, after, warmed)


def post_checks(bench, timed, digests):
    """Cache cases must still hit after the timed runs (an entry evicted or expired mid-run would
    have turned hits into misses); a case that no longer hits says so in its notes."""
    seen = set()
    for c in timed:
        key = (c.target.name, c.workload.size)
        if not c.target.cache or key in seen:
            continue
        seen.add(key)
        size = c.workload.size
        why = verify.check_cache_hit(bench.ports[c.target.name], f"/{size}.bin", digests[size],
                                     plan.SIZES[size], attempts=1)
        if why:
            bench.post_notes[key] = f"after timing: {why}"
            log(f"{c.id}: after timing: {why}")


def trace_all(bench, timed, out_dir):
    """One strace per target, on its largest timed workload."""
    lines = []
    by_target = {}
    for c in timed:
        if c.workload.body_bytes >= by_target.get(c.target.name, c).workload.body_bytes:
            by_target[c.target.name] = c
    for name, c in by_target.items():
        path = os.path.join(out_dir, f"strace-{name}-{c.workload.name}.txt")
        try:
            text = syscalls.trace(bench.services[name].pid, bench.args.strace_seconds, path,
                                  bench.wrk_cmd(c, int(bench.args.strace_seconds) + 5))
            lines.append(f"- {c.id}: {', '.join(syscalls.top_calls(text))} (`{os.path.basename(path)}`)")
        except Exception as e:
            lines.append(f"- {c.id}: strace failed: {e}")
        log(lines[-1])
    return lines


def write_report(args, header, cases, bench, iperf, strace_lines, out_dir):
    runs_by_case = {}
    for r in bench.runs:
        runs_by_case.setdefault(r["case"], []).append(r)
    summaries, groups = [], []
    for c in cases:
        group = c.workload.name + (" cache hits" if c.target.cache else " static files" if c.target.static else "")
        if group not in groups:
            groups.append(group)
        status = bench.case_status.get(c.id, "not run")
        got = runs_by_case.get(c.id, [])
        if status == "ok" and not got:
            status = "every timed run failed: " + "; ".join(
                r["note"] for r in bench.failed_runs if r["case"] == c.id)[:200]
        s = stats.summarize(c.id, c.target.name, c.workload.name, got, status, group)
        bad = [r["note"] for r in bench.failed_runs if r["case"] == c.id]
        extra = [f"{len(bad)} of {len(bad) + len(got)} runs not counted ({bad[0][:80]})" if bad and got else "",
                 bench.post_notes.get((c.target.name, c.workload.size), "")]
        s.notes = "; ".join(x for x in [s.notes] + extra if x)
        summaries.append(s)
    ok_ids = {s.case_id for s in summaries if s.status == "ok"}
    ratios = []
    for spec in stats.ratio_specs(ok_ids):
        sp = stats.paired_ratio(runs_by_case, spec)
        ratios.append((spec, sp, stats.goal_met(spec.goal, sp.median if sp else None)))
    if iperf:
        sp = stats.Spread.of(iperf)
        header = header + [f"- iperf3 loopback ceiling (one stream): {report.fmt_spread(sp, 'gbps')} GB/s"]
    extra = []
    if strace_lines:
        extra.append(("Syscalls that can carry body bytes (strace -f -c, most frequent first: name calls)", strace_lines))
    md = report.markdown(header, groups, summaries, ratios, extra)
    files = {"table.md": md, "runs.tsv": report.runs_tsv(bench.runs + bench.failed_runs),
             "summary.tsv": report.summary_tsv(summaries), "ratios.tsv": report.ratios_tsv(ratios)}
    for name, text in files.items():
        with open(os.path.join(out_dir, name), "w") as f:
            f.write(text)
    if not args.only:  # a partial run does not replace the published table
        with open(os.path.join(BENCH_DIR, "latest.md"), "w") as f:
            f.write(md)
    print(md)
    log(f"results in {out_dir}")
    return 0


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except KeyboardInterrupt as e:
        log(f"interrupted ({e}); servers stopped")
        return 130
