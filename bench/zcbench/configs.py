"""Configuration text for every server in the bench: pure functions of ports and paths."""
import json

_NGINX_COMMON = """\
user root root;
worker_processes {workers};
daemon off;
master_process on;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush off;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
    client_body_temp_path {run}/client_temp;
    proxy_temp_path {run}/proxy_temp;
    fastcgi_temp_path {run}/fastcgi_temp;
    uwsgi_temp_path {run}/uwsgi_temp;
    scgi_temp_path {run}/scgi_temp;
    default_type application/octet-stream;
{body}
}}
"""


# The origin's request body buffer: above the largest upload (256 MiB), so a body stays in memory. nginx spills a body
# larger than client_body_buffer_size to a temporary file: at 128m each 256 MiB upload cost the origin two pwrites
# of 130 ms and 60 ms on average (strace -T) into /tmp on disk, during which it read nothing and both proxies waited
# for it (issue 13, docs/transport.md "Uploads: the rig"). nginx allocates min(body, 1.25 x this) per request.
ORIGIN_BODY_BUFFER = "320m"


def nginx_origin(port, run_dir, files_dir, workers="auto"):
    """The origin: static files with sendfile, cacheable for a day so proxy caches store them; /upload reads a
    request body whole (buffered in memory, never a temporary file: proxy_pass to its own /sink with a one-byte body)
    before it answers "ok", so a proxy sees no early response."""
    body = f"""\
    server {{
        listen 127.0.0.1:{port} reuseport;
        root {files_dir};
        location / {{ add_header Cache-Control "public, max-age=86400"; }}
        location = /upload {{
            client_max_body_size 0;
            client_body_buffer_size {ORIGIN_BODY_BUFFER};
            proxy_pass http://127.0.0.1:{port}/sink;
            proxy_set_body "x";
            proxy_http_version 1.1;
        }}
        location = /sink {{ return 200 "ok\\n"; }}
    }}"""
    return _NGINX_COMMON.format(workers=workers, run=run_dir, body=body)


def nginx_static(port, run_dir, files_dir, workers="auto"):
    """nginx serving the bench's files itself (root; sendfile on, from the common http block), the
    baseline for ZcProxy's static routes: no origin in the path."""
    body = f"""\
    server {{
        listen 127.0.0.1:{port} reuseport;
        root {files_dir};
    }}"""
    return _NGINX_COMMON.format(workers=workers, run=run_dir, body=body)


_UPSTREAM = """\
    upstream origin {{
        server 127.0.0.1:{origin_port};
        keepalive 64;
    }}"""

_PROXY_BASICS = """\
            client_max_body_size 0;
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";"""


def _nginx_tls(tls):
    """The server's TLS lines (tls: (cert_path, key_path) or None): TLS 1.2/1.3, session cache as a site would have."""
    if not tls:
        return ""
    cert, key = tls
    return (f"        ssl_certificate {cert};\n        ssl_certificate_key {key};\n"
            "        ssl_protocols TLSv1.2 TLSv1.3;\n        ssl_session_cache shared:SSL:10m;\n")


def nginx_proxy(port, origin_port, run_dir, variant, workers="auto", max_size="4g", tls=None, upload_port=None):
    """nginx proxy_pass with upstream keep-alive; with upload_port, POST /upload goes to the upload origin (sink.py).

    variant: "stock" (default buffering: big bodies spill to a temp file), "tuned"
    (proxy_buffers 16 64k, no temp file), "cache" (proxy_cache + sendfile), "cache-aio"
    (proxy_cache + aio threads + directio 4m; output_buffers sized for direct reads), "tls" (as tuned,
    behind `listen ssl` with tls = (cert, key)).
    """
    extra_http, extra_loc = "", ""
    if variant == "tuned":
        # Uploads stream to the origin as they arrive (no temp file), as ZcProxy and HAProxy do.
        extra_loc = "            proxy_buffers 16 64k;\n            proxy_max_temp_file_size 0;\n            proxy_request_buffering off;"
    elif variant in ("cache", "cache-aio"):
        extra_http = (f"    proxy_cache_path {run_dir}/cache levels=1:2 keys_zone=zc:16m max_size={max_size} "
                      "inactive=1h use_temp_path=off;")
        extra_loc = ("            proxy_cache zc;\n"
                     "            proxy_cache_valid 200 1h;\n"
                     "            add_header X-Cache-Status $upstream_cache_status;")
        if variant == "cache-aio":
            extra_loc += "\n            aio threads;\n            directio 4m;\n            output_buffers 2 1m;"
    elif variant == "tls":
        extra_loc = "            proxy_buffers 16 64k;\n            proxy_max_temp_file_size 0;"
    elif variant != "stock":
        raise ValueError(f"unknown nginx variant {variant!r}")
    uploads = [
        f"        }}\n        location = /upload {{",
        _PROXY_BASICS.replace("http://origin", "http://uploads"),
        extra_loc,
    ] if upload_port else []
    body = "\n".join(x for x in [
        _UPSTREAM.format(origin_port=origin_port),
        _UPSTREAM.replace("origin {{", "uploads {{").format(origin_port=upload_port) if upload_port else "",
        extra_http,
        f"    server {{\n        listen 127.0.0.1:{port} reuseport{' ssl' if tls else ''};\n{_nginx_tls(tls)}        location / {{",
        _PROXY_BASICS,
        extra_loc,
        *uploads,
        "        }\n    }",
    ] if x)
    return _NGINX_COMMON.format(workers=workers, run=run_dir, body=body)


def haproxy(port, origin_port, splice, upload_port=None):
    """HAProxy mode http; splice forced with option splice-request/-response (splice-auto does
    not splice HTTP bodies in 2.6); with upload_port, /upload goes to the upload origin (sink.py)."""
    splice_lines = "    option splice-request\n    option splice-response\n" if splice else ""
    uploads = (f"    use_backend uploads if {{ path /upload }}\n", f"backend uploads\n    server up 127.0.0.1:{upload_port}\n") \
        if upload_port else ("", "")
    return f"""\
global
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option http-keep-alive
    http-reuse always
{splice_lines}frontend fe
    bind 127.0.0.1:{port}
{uploads[0]}    default_backend be
backend be
    server origin 127.0.0.1:{origin_port}
{uploads[1]}"""


NGINX_STREAM_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"  # Debian: libnginx-mod-stream


def nginx_stream(port, origin_port, run_dir, module=NGINX_STREAM_MODULE, workers="auto"):
    """nginx stream {} (layer 4): every connection relayed to the origin, nginx's defaults otherwise
    (proxy_buffer_size 16k, no splice: nginx copies through user space)."""
    return f"""\
load_module {module};
user root root;
worker_processes {workers};
daemon off;
master_process on;
pid {run_dir}/nginx.pid;
error_log {run_dir}/error.log warn;
events {{ worker_connections 4096; }}
stream {{
    server {{
        listen 127.0.0.1:{port} reuseport;
        proxy_pass 127.0.0.1:{origin_port};
        proxy_timeout 10m;
    }}
}}
"""


def haproxy_tcp(port, origin_port):
    """HAProxy mode tcp with splicing forced both ways (option splice-request/-response; splice-auto
    would decide per connection)."""
    return f"""\
global
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option splice-request
    option splice-response
frontend fe
    bind 127.0.0.1:{port}
    default_backend be
backend be
    server origin 127.0.0.1:{origin_port}
"""


def zcproxy_stream(port, admin_port, origin_port, relay_pipe_size=0, relay_send_low_watermark=-1):
    """ZcProxy TCP stream mode: one Streams entry relaying to the origin. The HTTP listener is
    required by the config but takes no traffic here. relay_pipe_size: ZeroCopy.RelayPipeSize (0: the default), a
    fixed size: RelayPipeGrowSize set to it too, so that the pipes do not grow. relay_send_low_watermark:
    ZeroCopy.RelaySendLowWatermark (-1: the default; 0: the kernel's)."""
    conf = {
        "Listen": [{"Url": "http://127.0.0.1:0"}],
        "Admin": {"Url": f"http://127.0.0.1:{admin_port}"},
        "AccessLog": {"Path": "off"},
        "Streams": {"bench": {"Listen": f"127.0.0.1:{port}", "ClusterId": "origin"}},
        "ReverseProxy": {
            "Clusters": {"origin": {"Destinations": {
                "o1": {"Address": f"tcp://127.0.0.1:{origin_port}"}}}},
        },
    }
    if relay_pipe_size:
        conf["ZeroCopy"] = {"RelayPipeSize": relay_pipe_size, "RelayPipeGrowSize": relay_pipe_size}
    if relay_send_low_watermark >= 0:
        conf.setdefault("ZeroCopy", {})["RelaySendLowWatermark"] = relay_send_low_watermark
    return json.dumps(conf, indent=2) + "\n"


def zcproxy(port, admin_port, origin_port, zero_copy, cache_dir=None, direct_io=None, max_size="4GiB", access_log=None,
            tls=None, http1=None, upload_port=None):
    """ZcProxy's JSON config: one catch-all route to the origin; with cache_dir the route caches
    (direct_io: Cache.DirectIo "residency" | "threshold" | "off", ZcProxy's default when None); with access_log
    (a file path) requests are logged as the packaged config does (packaging/etc/zcproxy.json: a file, format main);
    with tls = (cert, key) the listener is https:// (TLS connections take YARP's forwarder); http1: ZeroCopy.Http1
    ("kestrel" | "own"; ZcProxy's default when None); with upload_port, /upload goes to the upload origin (sink.py)."""
    route = {"ClusterId": "origin", "Match": {"Path": "/{**catch-all}"}}
    if cache_dir:
        route["Metadata"] = {"Cache": "on"}
    conf = {
        "Listen": [{"Url": f"https://127.0.0.1:{port}", "Certificate": tls[0], "CertificateKey": tls[1]} if tls
                   else {"Url": f"http://127.0.0.1:{port}"}],
        "Admin": {"Url": f"http://127.0.0.1:{admin_port}"},
        "ZeroCopy": {"Enabled": bool(zero_copy)},
        # Uploads of any size, as the nginx configs here (client_max_body_size 0) and HAProxy accept them.
        "Limits": {"MaxRequestBodySize": 0},
        "AccessLog": {"Path": access_log, "Format": "main"} if access_log else {"Path": "off"},
        "ReverseProxy": {
            "Routes": {"all": route},
            "Clusters": {"origin": {"Destinations": {
                "o1": {"Address": f"http://127.0.0.1:{origin_port}/"}}}},
        },
    }
    if http1:
        conf["ZeroCopy"]["Http1"] = http1
    if upload_port:
        conf["ReverseProxy"]["Routes"]["uploads"] = {"ClusterId": "uploads", "Match": {"Path": "/upload"}}
        conf["ReverseProxy"]["Clusters"]["uploads"] = {"Destinations": {
            "u1": {"Address": f"http://127.0.0.1:{upload_port}/"}}}
    if cache_dir:
        conf["Cache"] = {"Path": cache_dir, "MaxSize": max_size, "DirectIoThreshold": "4MiB",
                         "Inactive": "1h"}
        if direct_io:
            conf["Cache"]["DirectIo"] = direct_io
    return json.dumps(conf, indent=2) + "\n"


def zcproxy_static(port, admin_port, files_dir):
    """ZcProxy serving the bench's files itself: one route without a cluster, Metadata Static (the default
    DirectIo rule, residency with a 4 MiB threshold, as the cache's)."""
    conf = {
        "Listen": [{"Url": f"http://127.0.0.1:{port}"}],
        "Admin": {"Url": f"http://127.0.0.1:{admin_port}"},
        "ZeroCopy": {"Enabled": True},
        "AccessLog": {"Path": "off"},
        "ReverseProxy": {
            "Routes": {"files": {"Match": {"Path": "/{**catch-all}"}, "Metadata": {"Static": files_dir}}},
            "Clusters": {},
        },
    }
    return json.dumps(conf, indent=2) + "\n"
