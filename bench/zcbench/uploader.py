"""The upload client: POSTs one file's bytes to a URL over N keep-alive connections for S seconds and prints wrk's
ZCBENCH summary line (wrk.parse reads it).

Why not wrk: wrk sends a request from a Lua string it builds per thread (string.rep of the body, then wrk.format and a
copy into C: ~3 copies of the body). For 256 MiB bodies that took 1.2-3.8 s per thread, one thread after the other,
so the second connection of a 10 s up256m-c2 run started up to 4 s late, at a moment set by the machine's load, and
uploads finished before wrk's clock started counted as well (issue 13, docs/transport.md "Uploads: the rig"). Here
every connection is open before the clock starts and the body goes out with sendfile(2) from the page cache: no
build time, and the client's CPU per byte is small and the same whichever proxy is measured.
"""
import argparse
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse

# A blocked send or recv returns after this long, so a connection notices the end of the run while the proxy or the
# origin holds it up (an upload in flight at the end is not counted, as wrk does not count one).
_POLL_S = 0.2
# Bytes per sendfile call: the send timeout bounds each wait, not the call, and a call moves on while it makes
# progress, so a call the size of the body could outlast the run by a whole upload.
_CHUNK = 4 << 20


def _timeouts(sock):
    tv = struct.pack("ll", 0, int(_POLL_S * 1e6))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv)


class _Stop(Exception):
    pass


class Connection:
    """One keep-alive connection uploading the body again and again until the end of the run."""

    def __init__(self, host, port, head, body_fd, body_len, stop_at):
        self.host, self.port, self.head = host, port, head
        self.body_fd, self.body_len, self.stop_at = body_fd, body_len, stop_at
        self.sock = None
        self.latencies_us = []
        self.bytes_read = 0
        self.errors = {"connect": 0, "read": 0, "write": 0, "status": 0}

    def connect(self):
        try:
            self.sock = socket.create_connection((self.host, self.port), timeout=10)
            self.sock.settimeout(None)  # blocking fd: sendfile waits in the kernel; SO_*TIMEO bound each wait
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _timeouts(self.sock)
        except OSError:
            self.errors["connect"] += 1
            self.sock = None

    def _check(self):
        if time.monotonic() >= self.stop_at:
            raise _Stop()

    def _send_all(self):
        view = memoryview(self.head)
        while view:
            self._check()
            try:
                n = self.sock.send(view, socket.MSG_MORE)
            except BlockingIOError:
                continue
            view = view[n:]
        sent = 0
        while sent < self.body_len:
            self._check()
            try:
                n = os.sendfile(self.sock.fileno(), self.body_fd, sent, min(_CHUNK, self.body_len - sent))
            except BlockingIOError:
                continue
            if n == 0:
                raise ConnectionError("sendfile sent nothing")
            sent += n

    def _read_response(self):
        buf = b""
        while b"\r\n\r\n" not in buf:
            buf += self._recv()
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        while len(rest) < length:
            rest += self._recv()
        self.bytes_read += len(head) + 4 + len(rest)
        return status, close

    def _recv(self):
        while True:
            self._check()
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                continue
            if not chunk:
                raise ConnectionError("closed by the server")
            return chunk

    def run(self):
        try:
            while time.monotonic() < self.stop_at:
                if self.sock is None:
                    self.connect()
                    if self.sock is None:
                        time.sleep(_POLL_S)
                        continue
                started = time.monotonic()
                try:
                    self._send_all()
                except OSError:
                    self.errors["write"] += 1
                    self._drop()
                    continue
                try:
                    status, close = self._read_response()
                except (OSError, ValueError, IndexError):
                    self.errors["read"] += 1
                    self._drop()
                    continue
                if time.monotonic() > self.stop_at:
                    break
                if status != 200:
                    self.errors["status"] += 1
                else:
                    self.latencies_us.append(int((time.monotonic() - started) * 1e6))
                if close:
                    self._drop()
        except _Stop:
            pass
        finally:
            self._drop()

    def _drop(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def command(url, body_path, connections, duration_s):
    """The command line of one run (a python script of the standard library, so any working directory does)."""
    return [sys.executable, os.path.abspath(__file__), url, "--body", body_path, "--connections", str(connections),
            "--duration", f"{duration_s:g}"]


def _percentile(sorted_values, p):
    if not sorted_values:
        return 0
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--body", required=True, help="file whose bytes each request carries")
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--duration", type=float, default=10, help="seconds")
    a = p.parse_args(argv)
    u = urllib.parse.urlsplit(a.url)
    body_len = os.path.getsize(a.body)
    head = (f"POST {u.path or '/'} HTTP/1.1\r\nHost: {u.netloc}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {body_len}\r\n\r\n").encode()
    fd = os.open(a.body, os.O_RDONLY)
    far = time.monotonic() + 1e9
    conns = [Connection(u.hostname, u.port or 80, head, fd, body_len, far) for _ in range(a.connections)]
    for c in conns:  # every connection open before the clock starts
        c.connect()
    start = time.monotonic()
    for c in conns:
        c.stop_at = start + a.duration
    threads = [threading.Thread(target=c.run, daemon=True) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    duration = time.monotonic() - start
    lat = sorted(x for c in conns for x in c.latencies_us)
    err = {k: sum(c.errors[k] for c in conns) for k in ("connect", "read", "write", "status")}
    print(f"ZCBENCH requests={len(lat)} bytes={sum(c.bytes_read for c in conns)} duration_us={int(duration * 1e6)} "
          f"connect={err['connect']} read={err['read']} write={err['write']} status={err['status']} timeout=0 "
          f"p50_us={_percentile(lat, 50)} p99_us={_percentile(lat, 99)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
