"""ZcProxy's own account of how body bytes moved (zcproxy_body_bytes_total on the admin listener),
read before and after a timed run: proves which path (splice, sendfile, directio, copy) carried it."""
import http.client
import re

_SAMPLE = re.compile(r'^zcproxy_body_bytes_total\{([^}]*)\}\s+([0-9.eE+]+)\s*$', re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def parse_body_bytes(text, direction="response"):
    """{mechanism: bytes} for one direction from Prometheus text."""
    out = {}
    for labels, value in _SAMPLE.findall(text):
        lab = dict(_LABEL.findall(labels))
        if lab.get("direction") == direction and "mechanism" in lab:
            out[lab["mechanism"]] = out.get(lab["mechanism"], 0) + int(float(value))
    return out


_JIT_TIME = re.compile(r'^system_runtime_dotnet_jit_compilation_time(?:_seconds)?(?:_total)?(?:\{[^}]*\})?\s+([0-9.eE+]+)\s*$', re.M)


def _metrics_text(admin_port, timeout_s):
    try:
        conn = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=timeout_s)
        try:
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            text = resp.read().decode("utf-8", "replace")
        finally:
            conn.close()
    except OSError:
        return None
    return text if resp.status == 200 else None


def scrape(admin_port, timeout_s=5, direction="response"):
    """One direction's counters (response: downloads; request: uploads), or None when the admin listener does not serve them."""
    text = _metrics_text(admin_port, timeout_s)
    return None if text is None else parse_body_bytes(text, direction)


def parse_jit_seconds(text):
    """The runtime's JIT compilation time so far (seconds), or None when /metrics does not carry it."""
    m = _JIT_TIME.search(text or "")
    return float(m.group(1)) if m else None


def jit_seconds(admin_port, timeout_s=5):
    """How long .NET's JIT has compiled in ZcProxy so far: tier-1 recompilation runs on a background thread for tens
    of seconds after start, and the CPU it takes inside a timed run is start-up cost, not the cost of the bodies."""
    return parse_jit_seconds(_metrics_text(admin_port, timeout_s))


def delta(before, after):
    """Bytes per mechanism counted between two scrapes, or None when either scrape failed."""
    if before is None or after is None:
        return None
    return {m: after.get(m, 0) - before.get(m, 0) for m in after if after.get(m, 0) - before.get(m, 0) > 0}


def describe(deltas):
    """'by splice 99%, copy 1%' over several runs' deltas, or why there is nothing to say."""
    if not deltas or any(d is None for d in deltas):
        return "metrics unavailable"
    total = {}
    for d in deltas:
        for m, v in d.items():
            total[m] = total.get(m, 0) + v
    whole = sum(total.values())
    if whole == 0:
        return "metrics: no response body bytes counted"
    parts = sorted(((v, m) for m, v in total.items()), reverse=True)
    return "by " + ", ".join(f"{m} {100 * v / whole:.0f}%" for v, m in parts)


def encode(d):
    """For runs.tsv: 'splice=123,copy=4', '-' for unavailable."""
    return "-" if d is None else ",".join(f"{m}={v}" for m, v in sorted(d.items()))
