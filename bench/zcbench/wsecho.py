"""WebSocket echo throughput through each proxy (the issue 13 tunnel row).

    cd bench && python3 -m zcbench.wsecho [--seconds 5] [--connections 4] [--message 1048576] [--zcproxy DLL]

A stdlib WebSocket echo origin (its own process) and a stdlib client: each connection sends binary messages
back to back and reads each echo; the table gives echoed GB/s (both directions counted) and the proxy's
CPU-seconds per GB (whole process tree, from /proc). The client masks with the zero key (RFC 6455 allows any
key; no proxy checks it), so neither Python end spends time unmasking: the proxies' CPU per byte is what is
compared, the absolute rate is bounded by the Python ends. Every server is stopped by PID on exit.
"""
import argparse
import asyncio
import base64
import hashlib
import os
import shutil
import struct
import sys
import tempfile
import time

from . import configs, procstat
from .services import Service, free_ports

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC11B65"
DEFAULT_DLL = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "src", "ZcProxy", "bin", "Release", "net10.0", "zcproxy.dll")


def frame_head(length, masked):
    """A final binary frame's header (and the zero mask key when masked)."""
    mask = 0x80 if masked else 0
    if length < 126:
        head = struct.pack("!BB", 0x82, mask | length)
    elif length < 65536:
        head = struct.pack("!BBH", 0x82, mask | 126, length)
    else:
        head = struct.pack("!BBQ", 0x82, mask | 127, length)
    return head + (b"\0\0\0\0" if masked else b"")


async def read_frame(reader):
    """(opcode, payload) of one frame, unmasked."""
    b0, b1 = await reader.readexactly(2)
    length = b1 & 0x7F
    if length == 126:
        length = struct.unpack("!H", await reader.readexactly(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", await reader.readexactly(8))[0]
    key = await reader.readexactly(4) if b1 & 0x80 else b"\0\0\0\0"
    payload = await reader.readexactly(length)
    if key != b"\0\0\0\0":
        k = int.from_bytes((key * (length // 4 + 1))[:length], "big")
        payload = (int.from_bytes(payload, "big") ^ k).to_bytes(length, "big")
    return b0 & 0x0F, payload


async def read_head(reader):
    return (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")


async def serve(port):
    """The echo origin: answers the upgrade, then sends every data frame back unmasked until a close frame."""
    async def handle(reader, writer):
        try:
            head = await read_head(reader)
            key = next(l.split(":", 1)[1].strip() for l in head.split("\r\n") if l.lower().startswith("sec-websocket-key:"))
            accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
            writer.write(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          f"Sec-WebSocket-Accept: {accept}\r\n\r\n").encode())
            while True:
                opcode, payload = await read_frame(reader)
                if opcode == 8:
                    writer.write(b"\x88\x00")
                    await writer.drain()
                    return
                writer.write(frame_head(len(payload), masked=False))
                writer.write(payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, StopIteration):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, limit=1 << 22)
    async with server:
        await server.serve_forever()


async def client(port, seconds, message_size):
    """Bytes echoed back over one connection in `seconds` (one message in flight at a time)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write((f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    head = await read_head(reader)
    if " 101 " not in head.split("\r\n")[0] + " ":
        raise RuntimeError("no 101: " + head.split("\r\n")[0])
    payload = os.urandom(message_size)
    frame = frame_head(message_size, masked=True) + payload
    echoed, deadline = 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        writer.write(frame)
        await writer.drain()
        opcode, back = await read_frame(reader)
        if back != payload:
            raise RuntimeError("echo differs from what was sent")
        echoed += len(back)
    writer.write(b"\x88\x80\0\0\0\0")
    await writer.drain()
    writer.close()
    return echoed


def nginx_ws(port, origin_port, run_dir):
    body = f"""\
    server {{
        listen 127.0.0.1:{port} reuseport;
        location / {{
            proxy_pass http://127.0.0.1:{origin_port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection "upgrade";
            proxy_read_timeout 1h;
        }}
    }}"""
    return configs._NGINX_COMMON.format(workers="auto", run=run_dir, body=body)


def targets(work, origin_port, dll):
    """(name, Service, port) of each proxy in front of the echo origin."""
    out = []
    zc_port, admin = free_ports(2)
    zc_conf = os.path.join(work, "zcproxy.json")
    with open(zc_conf, "w") as f:
        f.write(configs.zcproxy(zc_port, admin, origin_port, zero_copy=True))
    out.append(("zc-on", Service("zc-on", ["dotnet", dll, "--config", zc_conf], os.path.join(work, "zc.log"),
                                 [zc_port, admin], cwd=work), zc_port))
    ng_port = free_ports(1)[0]
    ng_dir = os.path.join(work, "nginx")
    os.makedirs(ng_dir)
    ng_conf = os.path.join(ng_dir, "nginx.conf")
    with open(ng_conf, "w") as f:
        f.write(nginx_ws(ng_port, origin_port, ng_dir))
    out.append(("nginx", Service("nginx", ["nginx", "-e", f"{ng_dir}/error.log", "-p", ng_dir, "-c", ng_conf],
                                 os.path.join(ng_dir, "server.log"), [ng_port]), ng_port))
    ha_port = free_ports(1)[0]
    ha_conf = os.path.join(work, "haproxy.cfg")
    with open(ha_conf, "w") as f:
        f.write(configs.haproxy(ha_port, origin_port, splice=True).replace("timeout server 60s", "timeout server 60s\n    timeout tunnel 1h"))
    out.append(("haproxy-splice", Service("haproxy-splice", ["haproxy", "-db", "-f", ha_conf],
                                          os.path.join(work, "haproxy.log"), [ha_port]), ha_port))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(prog="python3 -m zcbench.wsecho", description=__doc__)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--connections", type=int, default=4)
    p.add_argument("--message", type=int, default=1 << 20, help="bytes per message")
    p.add_argument("--zcproxy", default=DEFAULT_DLL)
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # the origin process
    a = p.parse_args(argv)
    if a.serve:
        asyncio.run(serve(a.serve))
        return 0
    work = tempfile.mkdtemp(prefix="zcbench-ws-", dir="/tmp")
    origin_port = free_ports(1)[0]
    origin = Service("ws-origin", [sys.executable, "-m", "zcbench.wsecho", "--serve", str(origin_port)],
                     os.path.join(work, "origin.log"), [origin_port],
                     cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    services = [origin]
    rows = []
    try:
        origin.start()
        for name, svc, port in targets(work, origin_port, a.zcproxy):
            services.append(svc)
            try:
                svc.start()
            except RuntimeError as e:
                rows.append(f"| {name} | - | - | failed to start: {e} |")
                continue
            # Warm-up (JIT, pools), then the timed run.
            asyncio.run(_run(port, 1, 1, a.message))
            cpu0 = procstat.tree_cpu_seconds(svc.pid)
            t0 = time.monotonic()
            echoed = asyncio.run(_run(port, a.connections, a.seconds, a.message))
            elapsed, cpu = time.monotonic() - t0, procstat.tree_cpu_seconds(svc.pid) - cpu0
            moved = 2 * echoed  # each echoed byte crossed the proxy twice
            rows.append(f"| {name} | {moved / elapsed / 1e9:.2f} | {cpu / (moved / 1e9):.3f} | {a.connections} connections, "
                        f"{a.message}-byte messages |")
            print(f"{name}: {moved / elapsed / 1e9:.2f} GB/s, {cpu / (moved / 1e9):.3f} CPU-s/GB", file=sys.stderr, flush=True)
            svc.stop()
    finally:
        for svc in reversed(services):
            svc.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("| target | GB/s (both ways) | CPU-s/GB | notes |\n|---|---|---|---|")
    print("\n".join(rows))
    return 0


async def _run(port, connections, seconds, message):
    return sum(await asyncio.gather(*(client(port, seconds, message) for _ in range(connections))))


if __name__ == "__main__":
    sys.exit(main())
