"""Turns a plan Target into a running Service: writes its config, picks its ports."""
import os

from . import configs, tls
from .services import Service, free_ports


def build(target, work_dir, origin_port, zcproxy_dll, files_dir=None, upload_port=None):
    """upload_port: the upload origin (sink.py) that HTTP proxies send POST /upload to, when uploads are timed."""
    run_dir = os.path.join(work_dir, target.name)
    os.makedirs(run_dir, exist_ok=True)
    log = os.path.join(run_dir, "server.log")
    if target.kind == "origin":
        port = free_ports(1)[0] if origin_port is None else origin_port
        conf = _write(run_dir, "nginx.conf", configs.nginx_origin(port, run_dir, files_dir))
        return Service(target.name, ["nginx", "-e", f"{run_dir}/error.log", "-p", run_dir, "-c", conf], log,
                       [port]), port
    if target.kind == "nginx":
        port = free_ports(1)[0]
        if target.variant == "static":
            text = configs.nginx_static(port, run_dir, files_dir)
        elif target.variant == "stream":
            if not os.path.exists(configs.NGINX_STREAM_MODULE):
                raise RuntimeError(f"{configs.NGINX_STREAM_MODULE} missing (apt-get install libnginx-mod-stream)")
            text = configs.nginx_stream(port, origin_port, run_dir)
        else:
            text = configs.nginx_proxy(port, origin_port, run_dir, target.variant,
                                       tls=tls.self_signed(run_dir) if target.tls else None, upload_port=upload_port)
        conf = _write(run_dir, "nginx.conf", text)
        return Service(target.name, ["nginx", "-e", f"{run_dir}/error.log", "-p", run_dir, "-c", conf], log,
                       [port]), port
    if target.kind == "haproxy":
        port = free_ports(1)[0]
        text = configs.haproxy_tcp(port, origin_port) if target.variant == "tcp-splice" \
            else configs.haproxy(port, origin_port, target.variant == "splice", upload_port=upload_port)
        conf = _write(run_dir, "haproxy.cfg", text)
        return Service(target.name, ["haproxy", "-db", "-f", conf], log, [port]), port
    if target.kind == "zcproxy":
        port, admin = free_ports(2)
        cache_dir = os.path.join(run_dir, "cache") if target.cache else None
        if cache_dir:
            os.makedirs(cache_dir, exist_ok=True)
        access_log = os.path.join(run_dir, "access.log") if target.access_log else None
        if target.variant == "tcp":
            text = configs.zcproxy_stream(port, admin, origin_port, target.relay_pipe_size,
                                          target.relay_send_low_watermark)
        elif target.variant == "static":
            text = configs.zcproxy_static(port, admin, files_dir)
        else:
            text = configs.zcproxy(port, admin, origin_port, target.variant == "on", cache_dir, access_log=access_log,
                                   tls=tls.self_signed(run_dir) if target.tls else None, http1=target.http1 or None,
                                   upload_port=upload_port)
        conf = _write(run_dir, "zcproxy.json", text)
        env = dict(os.environ, DOTNET_CLI_TELEMETRY_OPTOUT="1", DOTNET_NOLOGO="1")
        svc = Service(target.name, ["dotnet", zcproxy_dll, "--config", conf], log, [port, admin],
                      cwd=run_dir, env=env)
        svc.admin_port = admin
        return svc, port
    raise ValueError(f"unknown target kind {target.kind}")


def _write(run_dir, name, text):
    path = os.path.join(run_dir, name)
    with open(path, "w") as f:
        f.write(text)
    return path
