"""What gets measured: body sizes, workloads (size x connections), targets, and --only selection."""
import fnmatch
from dataclasses import dataclass

KiB, MiB = 1024, 1024 * 1024
SIZES = {"1k": 1 * KiB, "64k": 64 * KiB, "1m": 1 * MiB, "16m": 16 * MiB, "256m": 256 * MiB,
         # Uploads: wrk POSTs a body of this size to /upload (the origin reads it all, then answers "ok").
         "up1m": 1 * MiB, "up16m": 16 * MiB, "up64m": 64 * MiB, "up256m": 256 * MiB}


@dataclass(frozen=True)
class Workload:
    size: str          # key of SIZES
    connections: int

    @property
    def name(self):
        return f"{self.size}-c{self.connections}"

    @property
    def body_bytes(self):
        return SIZES[self.size]

    @property
    def upload(self):
        """The body goes client -> upstream (a POST of body_bytes); the response is a few bytes."""
        return self.size.startswith("up")

    @property
    def run_seconds(self):
        """A timed run's least length (--duration when longer): wrk counts finished requests only, and a 4 s run of
        256 MiB uploads (~2 a second) finishes 8-11, so one more or fewer moved a run's GB/s by 10-50 % (issue 13,
        docs/transport.md "16 MiB through the relay, and uploads"); 10 s holds ~20."""
        return 10 if self.upload and self.body_bytes >= 64 * MiB else 0

    @property
    def threads(self):
        # One wrk thread tops out near 1-1.7 GB/s: two for big bodies; one for small ones leaves
        # the shared cores to the proxy and the origin.
        return min(2 if self.body_bytes >= MiB else 1, self.connections)


@dataclass(frozen=True)
class Target:
    name: str
    kind: str          # origin | zcproxy | nginx | haproxy
    variant: str = ""  # zero copy on/off, nginx variant, haproxy splice/nosplice
    cache: bool = False
    description: str = ""
    access_log: bool = False  # the packaged config's AccessLog (a file, format "main") instead of "off"
    tcp: bool = False  # a layer-4 proxy (TCP stream mode) in front of the same HTTP origin
    tls: bool = False  # clients speak HTTPS to it (certificate made by the bench, see tls.py)
    static: bool = False  # serves the bench's files from disk itself (no origin in the path)
    relay_pipe_size: int = 0  # TCP stream mode: ZeroCopy.RelayPipeSize in bytes (0: ZcProxy's default)
    relay_send_low_watermark: int = -1  # TCP stream mode: ZeroCopy.RelaySendLowWatermark in bytes (-1: ZcProxy's default)
    http1: str = ""  # ZeroCopy.Http1 ("kestrel" | "own"; "": ZcProxy's default)


TARGETS = [
    Target("origin", "origin", description="nginx origin directly (ceiling; CPU is the origin's)"),
    Target("zc-on", "zcproxy", "on", description="ZcProxy, ZeroCopy on"),
    Target("zc-off", "zcproxy", "off", description="ZcProxy, ZeroCopy off (stock YARP path)"),
    Target("zc-on-log", "zcproxy", "on", access_log=True,
           description="ZcProxy, ZeroCopy on, access log to a file as packaged (issue 16: <= 10% over zc-on at 1 KiB)"),
    Target("zc-kestrel", "zcproxy", "on", http1="kestrel",
           description="ZcProxy, ZeroCopy on, Kestrel's HTTP/1.1 layer (ZeroCopy.Http1 kestrel; the default before "
                       "the own layer, issue 12)"),
    Target("nginx-stock", "nginx", "stock", description="nginx proxy_pass, stock buffering"),
    Target("nginx-tuned", "nginx", "tuned", description="nginx proxy_pass, proxy_buffers 16 64k, no temp file"),
    Target("haproxy-splice", "haproxy", "splice", description="HAProxy, option splice-request/-response"),
    Target("haproxy", "haproxy", "nosplice", description="HAProxy, no splicing"),
    Target("zc-cache", "zcproxy", "on", cache=True, description="ZcProxy cache hits (ZeroCopy on)"),
    Target("nginx-cache", "nginx", "cache", cache=True, description="nginx proxy_cache hits, sendfile"),
    Target("nginx-cache-aio", "nginx", "cache-aio", cache=True,
           description="nginx proxy_cache hits, aio threads + directio 4m"),
    Target("zc-tcp", "zcproxy", "tcp", tcp=True, description="ZcProxy TCP stream mode (Streams, splice both ways)"),
    Target("zc-tcp-64k", "zcproxy", "tcp", tcp=True, relay_pipe_size=64 * 1024,
           description="zc-tcp with RelayPipeSize 64 KiB (HAProxy's pipe size)"),
    Target("zc-tcp-1m", "zcproxy", "tcp", tcp=True, relay_pipe_size=1 << 20,
           description="zc-tcp with RelayPipeSize 1 MiB (the relays' pipes before 2026-12-03)"),
    Target("zc-tcp-256k", "zcproxy", "tcp", tcp=True, relay_pipe_size=256 * 1024,
           description="zc-tcp with fixed 256 KiB relay pipes (before they grew, 2026-12-03)"),
    Target("zc-tcp-unsent", "zcproxy", "tcp", tcp=True, relay_send_low_watermark=0,
           description="zc-tcp with RelaySendLowWatermark 0: sockets hold unsent bytes up to their send buffer "
                       "(the kernel's default; ZcProxy's before 2026-12-05)"),
    Target("haproxy-tcp", "haproxy", "tcp-splice", tcp=True,
           description="HAProxy mode tcp, option splice-request/-response"),
    Target("nginx-stream", "nginx", "stream", tcp=True, description="nginx stream {} proxy_pass"),
    Target("zc-tls", "zcproxy", "tls", tls=True, description="ZcProxy, https:// listener (YARP's path)"),
    Target("nginx-tls", "nginx", "tls", tls=True, description="nginx listen ssl, proxy_pass as nginx-tuned"),
    Target("zc-static", "zcproxy", "static", static=True,
           description="ZcProxy static files (route Metadata Static; sendfile, O_DIRECT when large and cold)"),
    Target("nginx-static", "nginx", "static", static=True, description="nginx static files (root), sendfile on"),
]
TARGETS_BY_NAME = {t.name: t for t in TARGETS}

PROXY_WORKLOADS = {
    "full": ["1k-c16", "1k-c64", "64k-c16", "64k-c64", "1m-c8", "16m-c4", "256m-c2"],
    "quick": ["1k-c16", "1m-c8", "16m-c4", "256m-c2"],
}
# Logging costs per request: small bodies are where it shows.
ACCESS_LOG_WORKLOADS = {
    "full": ["1k-c16", "1k-c64"],
    "quick": ["1k-c16"],
}
# Kestrel's HTTP/1.1 layer against the own one (the default): per-request cost is where they differ.
HTTP1_LAYER_WORKLOADS = {
    "full": ["1k-c16", "1k-c64", "64k-c16"],
    "quick": ["1k-c16"],
}
CACHE_WORKLOADS = {
    "full": ["1k-c16", "64k-c16", "1m-c8", "16m-c4", "256m-c2"],
    "quick": ["1k-c16", "16m-c4", "256m-c2"],
}
# TCP mode: wrk's keep-alive HTTP connections relayed byte for byte to the origin (the bodies flow upstream -> client).
TCP_WORKLOADS = {
    "full": ["16m-c4", "256m-c2"],
    "quick": ["16m-c4", "256m-c2"],
}

# HTTPS: TLS termination cost per request (1 KiB) and per byte (16 MiB), plaintext origin behind.
TLS_WORKLOADS = {
    "full": ["1k-c16", "16m-c4"],
    "quick": ["1k-c16", "16m-c4"],
}


# Uploads (request bodies client -> upstream): ZcProxy splices them (ZeroCopy on), HAProxy with option splice-request,
# nginx streams them (proxy_request_buffering off in the tuned variant). CPU-s/GB counts the request body bytes.
UPLOAD_TARGETS = ("zc-on", "zc-off", "nginx-tuned", "haproxy-splice")
UPLOAD_WORKLOADS = {  # issue 13 asks for 16 MiB and 256 MiB; 1 MiB shows the small end
    "full": ["up1m-c4", "up16m-c4", "up256m-c2"],
    "quick": ["up16m-c4", "up256m-c2"],
}


# Static files served by the proxy itself, from the same files the origin serves.
STATIC_WORKLOADS = {
    "full": ["1k-c16", "1m-c8", "256m-c2"],
    "quick": ["1k-c16", "1m-c8", "256m-c2"],
}


def workload(name):
    size, conns = name.split("-c")
    return Workload(size, int(conns))


@dataclass(frozen=True)
class Case:
    target: Target
    workload: Workload

    @property
    def id(self):
        return f"{self.target.name}/{self.workload.name}"


def all_cases(mode):
    cases = []
    for t in TARGETS:
        names = (CACHE_WORKLOADS[mode] if t.cache else TCP_WORKLOADS[mode] if t.tcp
                 else TLS_WORKLOADS[mode] if t.tls
                 else STATIC_WORKLOADS[mode] if t.static else ACCESS_LOG_WORKLOADS[mode] if t.access_log
                 else HTTP1_LAYER_WORKLOADS[mode] if t.http1
                 else PROXY_WORKLOADS[mode])
        cases += [Case(t, workload(w)) for w in names]
        if t.name in UPLOAD_TARGETS:
            cases += [Case(t, workload(w)) for w in UPLOAD_WORKLOADS[mode]]
    return cases


def select(cases, only):
    """--only: comma-separated tokens. A token with '/' is a glob on the case id
    ("zc-*/16m-*"); otherwise it filters targets ("zc-on", "nginx-*", "cache", "tcp", "tls") or
    workloads ("16m", "1k-c64"), "static" the static-file rows, "upload" the upload rows. Target and workload filters intersect; id globs add."""
    if not only:
        return list(cases)
    tokens = [t.strip() for t in only.split(",") if t.strip()]
    id_globs = [t for t in tokens if "/" in t]
    plain = [t for t in tokens if "/" not in t]

    def target_match(tok, c):
        return fnmatch.fnmatch(c.target.name, tok) or (tok == "cache" and c.target.cache) or (tok == "tcp" and c.target.tcp) \
            or (tok == "tls" and c.target.tls) or (tok == "static" and c.target.static)

    def workload_match(tok, c):
        return fnmatch.fnmatch(c.workload.name, tok) or fnmatch.fnmatch(c.workload.size, tok) \
            or (tok == "upload" and c.workload.upload)

    target_toks = [t for t in plain if any(target_match(t, c) for c in cases)]
    workload_toks = [t for t in plain if t not in target_toks and any(workload_match(t, c) for c in cases)]
    unknown = [t for t in plain if t not in target_toks and t not in workload_toks]
    if unknown:
        raise ValueError(f"--only: {', '.join(unknown)} matches no target or workload")
    out = []
    for c in cases:
        by_plain = bool(plain) and \
            (not target_toks or any(target_match(t, c) for t in target_toks)) and \
            (not workload_toks or any(workload_match(t, c) for t in workload_toks))
        by_id = any(fnmatch.fnmatch(c.id, g) for g in id_globs)
        if by_plain or by_id:
            out.append(c)
    return out
