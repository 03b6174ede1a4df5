"""The upload origin: reads every request body whole and answers "ok" (keep-alive), one thread per connection, each
body read with recv_into into one reused 1 MiB buffer per connection.

Why not the nginx origin: nginx reads a body into a fresh buffer per request (256 MiB: a new mapping, faulted in and
zeroed page by page: ~0.8 CPU-s/GB, over half of it page faults, zeroing and page allocation per `perf record`), in the
worker the kernel's reuseport hash picked for the connection. Half the time both of a proxy's two upstream connections
hashed to one of its two workers, which then read both bodies alone while the other idled: the origin's capacity for
that proxy halved, by luck, per run (issue 13, docs/transport.md "Uploads: the rig"). Here every connection has its
thread (the kernel spreads them over the cores; recv_into runs without the GIL) and a byte costs one copy.
"""
import argparse
import socket
import sys
import threading

_BUFFER = 1 << 20
_OK = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"
_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"


class _Connection:
    def __init__(self, sock):
        self.sock = sock
        self.buffer = bytearray(_BUFFER)
        self.view = memoryview(self.buffer)
        self.held = b""  # bytes read past the head (or a chunk line) that belong to what follows

    def _recv(self):
        n = self.sock.recv_into(self.view)
        if n == 0:
            raise ConnectionError("closed")
        return bytes(self.view[:n])

    def _line_or_head(self, end):
        while end not in self.held:
            if len(self.held) > 65536:
                raise ValueError("head too long")
            self.held += self._recv()
        item, _, self.held = self.held.partition(end)
        return item

    def _skip(self, n):
        """Reads and drops n body bytes: what is held first, then straight into the reused buffer."""
        take = min(n, len(self.held))
        self.held = self.held[take:]
        n -= take
        while n:
            got = self.sock.recv_into(self.view, min(n, _BUFFER))
            if got == 0:
                raise ConnectionError("closed in a body")
            n -= got

    def serve(self):
        while True:
            head = self._line_or_head(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            method, target = lines[0].split(b" ")[:2]
            length, chunked = 0, False
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"transfer-encoding" and b"chunked" in value.lower():
                    chunked = True
            if chunked:
                while True:
                    size = int(self._line_or_head(b"\r\n").split(b";")[0], 16)
                    if size == 0:
                        while self._line_or_head(b"\r\n"):  # trailer fields, then the empty line
                            pass
                        break
                    self._skip(size + 2)  # the chunk and its CRLF
            else:
                self._skip(length)
            self.sock.sendall(_OK if method == b"POST" and target.split(b"?")[0] == b"/upload" else _NOT_FOUND)


def _serve(sock):
    try:
        _Connection(sock).serve()
    except (OSError, ValueError, IndexError):
        pass
    finally:
        sock.close()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    a = p.parse_args(argv)
    listener = socket.create_server(("127.0.0.1", a.port), backlog=512)
    while True:
        sock, _ = listener.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_serve, args=(sock,), daemon=True).start()


def command(port):
    """The command line of the sink (a python script of the standard library, so any working directory does)."""
    import os
    return [sys.executable, os.path.abspath(__file__), "--port", str(port)]


if __name__ == "__main__":
    sys.exit(main())
