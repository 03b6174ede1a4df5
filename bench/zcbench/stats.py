"""Per-run derived numbers, medians with min-max, and ratios paired within one harness run."""
import statistics

from . import metrics
from dataclasses import dataclass, field

METRICS = ("rps", "gbps", "cpu_per_gb", "us_per_req", "p99_ms")
SIZE_ORDER = ("1k", "64k", "1m", "16m", "256m")
JIT_SETTLED_S = 0.05  # JIT time per warm-up pass below which a .NET target counts as warmed up
JIT_WARM_MAX_S = 45   # seconds of warm-up load after which it counts as warmed up anyway (30-40 s compiled here)


def derive(run):
    """Adds rps, GB/s (1 GB = 1e9 bytes), proxy CPU-seconds per GB, CPU µs per request and p99 latency (ms)."""
    r = dict(run)
    d = r["duration_s"]
    r["rps"] = r["requests"] / d if d > 0 else 0.0
    r["gbps"] = r["bytes"] / d / 1e9 if d > 0 else 0.0
    r["cpu_per_gb"] = r["cpu_s"] / (r["bytes"] / 1e9) if r["bytes"] > 0 else float("nan")
    r["us_per_req"] = r["cpu_s"] / r["requests"] * 1e6 if r["requests"] > 0 else float("nan")
    r["p99_ms"] = run.get("p99_ms", float("nan"))  # wrk's 99th-percentile latency (its own histogram)
    # On loopback the kernel's TCP work lands in whichever process opens the window (docs/direct-io.md, "16 MiB hits"):
    # the proxy and its client (wrk) together are accounted the same way for every target.
    client = run.get("client_cpu_s")
    r["pair_cpu_per_gb"] = (r["cpu_s"] + client) / (r["bytes"] / 1e9) if r["bytes"] > 0 and client is not None else float("nan")
    return r


def still_compiling(jit_before, jit_after, warmed_s, limit_s=JIT_SETTLED_S, max_warm_s=JIT_WARM_MAX_S):
    """Targets whose JIT compiled for more than limit_s between two readings ({target: seconds or None}) and that have
    had less than max_warm_s of warm-up load (warmed_s: {target: seconds}): their warm-up goes on, so that background
    tier-1 compilation is not charged to the timed runs."""
    return sorted(t for t, after in jit_after.items()
                  if after is not None and jit_before.get(t) is not None and after - jit_before[t] > limit_s
                  and warmed_s.get(t, 0) < max_warm_s)


TIER_UP_CALLS = 60  # calls after which .NET's tiered PGO has a method at tier 1: 30 at tier 0, 30 instrumented
SETTLE_SCRAPES_PER_RUN = 5  # /metrics scrapes after each one-second settling run (settle_pass)


def settle_pass(warmup_s, upload=False):
    """One JIT-settling warm-up pass of a case: (wrk seconds, /metrics scrapes after it) per run. One-second runs, so
    every pass opens the case's connections anew, and scrapes between them: code that runs once per connection (accept,
    the connection's middleware and HTTP/1.1 objects) or once per scrape (the admin listener, Kestrel's parser, the
    Prometheus text) otherwise reached its tier-1 call counts only inside the timed runs, each of which opens its
    connections once and scrapes 4 times. The scrape path alone is ~300 methods and 0.3-0.5 s of JIT at its 30th and
    60th call (docs/transport.md, "Spread between runs"). Uploads keep one run: 64 MiB or more does not finish in 1 s."""
    n = max(1, int(warmup_s))
    return [(n, SETTLE_SCRAPES_PER_RUN)] if upload else [(1, SETTLE_SCRAPES_PER_RUN)] * n


@dataclass
class Spread:
    median: float
    low: float
    high: float

    @staticmethod
    def of(values):
        values = [v for v in values if v == v]  # drop NaN
        if not values:
            return None
        return Spread(statistics.median(values), min(values), max(values))


@dataclass
class CaseSummary:
    case_id: str
    target: str
    workload: str
    status: str                      # "ok", or why the case was not timed
    n: int = 0
    spreads: dict = field(default_factory=dict)
    peak_rss_mib: float = 0.0
    host_busy_pct: float = 0.0
    errors: int = 0
    notes: str = ""
    group: str = ""                  # the table it belongs to: the workload, or "<workload> cache hits"


def summarize(case_id, target, workload, runs, status="ok", group=None):
    s = CaseSummary(case_id, target, workload, status, n=len(runs), group=group or workload)
    if status != "ok" or not runs:
        return s
    runs = [derive(r) for r in runs]
    s.spreads = {m: Spread.of([r[m] for r in runs]) for m in METRICS}
    s.peak_rss_mib = max(r.get("peak_rss_kib", 0) for r in runs) / 1024
    s.host_busy_pct = statistics.median(r.get("host_busy_pct", 0.0) for r in runs)
    s.errors = sum(r.get("errors", 0) for r in runs)
    notes = sorted({r["note"] for r in runs if r.get("note")})
    if any("mech" in r for r in runs):
        notes.insert(0, metrics.describe([r.get("mech") for r in runs]))
    jit = [r["jit_s"] for r in runs if r.get("jit_s") is not None]
    if jit and max(jit) >= 0.01:
        notes.append(f"JIT {1000 * statistics.median(jit):.0f} ms/run (max {1000 * max(jit):.0f})")
    s.notes = "; ".join(notes)
    return s


@dataclass(frozen=True)
class RatioSpec:
    label: str
    numerator: str     # case id
    denominator: str   # case id
    metric: str
    goal: str = ""     # e.g. "<= 0.35"


def paired_ratio(runs_by_case, spec):
    """Median and min-max of numerator/denominator over repetitions that both completed; pairing
    by repetition keeps drift (other load on the machine) out of the ratio."""
    num = {r["rep"]: derive(r)[spec.metric] for r in runs_by_case.get(spec.numerator, [])}
    den = {r["rep"]: derive(r)[spec.metric] for r in runs_by_case.get(spec.denominator, [])}
    values = [num[k] / den[k] for k in sorted(num.keys() & den.keys()) if den[k] and den[k] == den[k]]
    return Spread.of(values)


def goal_met(goal, value):
    if not goal or value is None:
        return ""
    op, limit = goal.split()
    limit = float(limit)
    ok = value <= limit if op == "<=" else value >= limit
    return "yes" if ok else "no"


def proxied_specs(target, cid, wl, size):
    """Issue 12's goals for the proxied path (small bodies against nginx-tuned, large ones against HAProxy's forced
    splice) and issue 13's for uploads (against HAProxy's option splice-request; nginx for reference)."""
    name = "ZcProxy (on)"
    specs = []
    if size == "1k":
        for metric, label, goal in (("rps", "req/s", ">= 0.9"), ("us_per_req", "CPU µs/req", "<= 1.3"),
                                    ("p99_ms", "p99", "<= 2.0")):
            specs.append(RatioSpec(f"{name} / nginx-tuned {label}, {wl}", cid, f"nginx-tuned/{wl}", metric, goal))
    elif size == "64k":
        for other in ("nginx-tuned", "haproxy-splice"):
            specs.append(RatioSpec(f"{name} / {other} CPU-s/GB, {wl}", cid, f"{other}/{wl}", "cpu_per_gb", "<= 1.0"))
    elif size in ("16m", "256m"):
        specs.append(RatioSpec(f"{name} / HAProxy-splice CPU-s/GB, {wl}", cid, f"haproxy-splice/{wl}", "cpu_per_gb",
                               "<= 1.1"))
        specs.append(RatioSpec(f"{name} / HAProxy-splice GB/s, {wl}", cid, f"haproxy-splice/{wl}", "gbps"))
    elif size in ("up16m", "up256m"):
        specs.append(RatioSpec(f"{name} upload / HAProxy splice-request CPU-s/GB, {wl}", cid, f"haproxy-splice/{wl}",
                               "cpu_per_gb", "<= 1.0"))
        specs.append(RatioSpec(f"{name} upload / HAProxy splice-request GB/s, {wl}", cid, f"haproxy-splice/{wl}",
                               "gbps", ">= 1.0"))
        specs.append(RatioSpec(f"{name} upload / nginx-tuned CPU-s/GB, {wl}", cid, f"nginx-tuned/{wl}", "cpu_per_gb"))
        specs.append(RatioSpec(f"{name} upload / nginx-tuned GB/s, {wl}", cid, f"nginx-tuned/{wl}", "gbps"))
    return specs


def cache_specs(cid, wl, size):
    """Cache hits against nginx proxy_cache: issue 12's small-hit goals, issue 14's large-hit goals."""
    goals = {"1k": {"rps": ">= 0.9"}, "64k": {"cpu_per_gb": "<= 1.2"},
             "16m": {"cpu_per_gb": "<= 1.1", "gbps": ">= 0.95"}, "256m": {"cpu_per_gb": "<= 1.1", "gbps": ">= 0.95"}}
    mine = goals.get(size, {})
    specs = [RatioSpec(f"ZcProxy cache / nginx cache {label}, {wl}", cid, f"nginx-cache/{wl}", metric,
                       mine.get(metric, ""))
             for metric, label in (("rps", "req/s"), ("cpu_per_gb", "CPU-s/GB"), ("gbps", "GB/s"))
             if metric != "rps" or size == "1k"]
    if size in ("16m", "256m"):  # loopback TCP work moves between proxy and wrk: both counted
        specs.append(RatioSpec(f"ZcProxy cache / nginx cache CPU-s/GB of proxy + wrk, {wl}", cid,
                               f"nginx-cache/{wl}", "pair_cpu_per_gb"))
    return specs


def ratio_specs(case_ids):
    """The comparisons the issues ask for, limited to cases that exist in this run."""
    specs = []

    def order(cid):  # by body size, then connections, then target: small bodies first
        target, wl = cid.split("/")
        size, conns = wl.split("-c")
        return (SIZE_ORDER.index(size) if size in SIZE_ORDER else 99, int(conns), target)

    for cid in sorted(case_ids, key=order):
        target, wl = cid.split("/")
        size = wl.split("-c")[0]
        if target == "zc-on":
            specs.append(RatioSpec(f"ZeroCopy on/off CPU-s/GB, {wl}", cid, f"zc-off/{wl}", "cpu_per_gb",
                                   "<= 0.35" if size in ("16m", "256m") else ""))
            if size == "1k":
                specs.append(RatioSpec(f"ZeroCopy on/off req/s, {wl}", cid, f"zc-off/{wl}", "rps", ">= 1.0"))
        if target == "zc-on":
            specs += proxied_specs(target, cid, wl, size)
        if target == "zc-kestrel":  # the default (own HTTP/1.1 layer) against Kestrel's layer in the same run
            for metric, label in (("rps", "req/s"), ("us_per_req", "CPU µs/req"), ("p99_ms", "p99")):
                specs.append(RatioSpec(f"ZcProxy own HTTP/1.1 (zc-on) / Kestrel's (zc-kestrel) {label}, {wl}",
                                       f"zc-on/{wl}", cid, metric))
        if target == "zc-on-log":
            specs.append(RatioSpec(f"Access log on/off req/s, {wl}", cid, f"zc-on/{wl}", "rps", ">= 0.9"))
            specs.append(RatioSpec(f"Access log on/off CPU us/req, {wl}", cid, f"zc-on/{wl}", "us_per_req", "<= 1.1"))
        if target == "zc-tcp":
            specs.append(RatioSpec(f"ZcProxy TCP / HAProxy mode tcp (splice) CPU-s/GB, {wl}", cid, f"haproxy-tcp/{wl}",
                                   "cpu_per_gb", "<= 1.0"))
            specs.append(RatioSpec(f"ZcProxy TCP / HAProxy mode tcp (splice) GB/s, {wl}", cid, f"haproxy-tcp/{wl}",
                                   "gbps", ">= 1.0"))
            specs.append(RatioSpec(f"ZcProxy TCP / nginx stream CPU-s/GB, {wl}", cid, f"nginx-stream/{wl}",
                                   "cpu_per_gb", "<= 1.0"))
        if target == "zc-tcp-unsent":  # what the relay's low watermark on unsent bytes does, without a goal
            for metric, label in (("cpu_per_gb", "CPU-s/GB"), ("gbps", "GB/s")):
                specs.append(RatioSpec(f"ZcProxy TCP / the same without a low watermark on unsent bytes {label}, {wl}",
                                       f"zc-tcp/{wl}", cid, metric))
        if target in ("zc-tcp-64k", "zc-tcp-1m"):  # the relay pipe size's trade, without a goal
            for metric, label in (("cpu_per_gb", "CPU-s/GB"), ("gbps", "GB/s")):
                specs.append(RatioSpec(f"ZcProxy TCP {target[7:]} pipes / HAProxy mode tcp (splice) {label}, {wl}", cid,
                                       f"haproxy-tcp/{wl}", metric))
        if target == "zc-tls":  # issue 18: the cost of ZcProxy's TLS (YARP's path) per request and per byte, against nginx
            if size == "1k":
                specs.append(RatioSpec(f"ZcProxy TLS / nginx TLS CPU µs/req, {wl}", cid, f"nginx-tls/{wl}", "us_per_req"))
                specs.append(RatioSpec(f"ZcProxy TLS / nginx TLS req/s, {wl}", cid, f"nginx-tls/{wl}", "rps"))
            else:
                specs.append(RatioSpec(f"ZcProxy TLS / nginx TLS CPU-s/GB, {wl}", cid, f"nginx-tls/{wl}", "cpu_per_gb"))
                specs.append(RatioSpec(f"ZcProxy TLS / nginx TLS GB/s, {wl}", cid, f"nginx-tls/{wl}", "gbps"))
        if target == "zc-cache":
            specs += cache_specs(cid, wl, size)
        if target == "zc-static":
            specs.append(RatioSpec(f"ZcProxy static / nginx static CPU-s/GB, {wl}", cid, f"nginx-static/{wl}",
                                   "cpu_per_gb", "<= 1.0"))
            specs.append(RatioSpec(f"ZcProxy static / nginx static GB/s, {wl}", cid, f"nginx-static/{wl}",
                                   "gbps", ">= 1.0"))
            if size == "1k":
                specs.append(RatioSpec(f"ZcProxy static / nginx static req/s, {wl}", cid, f"nginx-static/{wl}", "rps", ""))
    return [s for s in specs if s.denominator in case_ids]
