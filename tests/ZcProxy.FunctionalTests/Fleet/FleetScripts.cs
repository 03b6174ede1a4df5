namespace ZcProxy.Tests.Fleet;

/// <summary>The small programs the network tests run inside namespaces (python3, written to the lab's directory).</summary>
internal static class FleetScripts
{
    /// <summary>
    /// An origin: GET /obj/{n} answers "NAME object n" (cacheable for an hour), any other path "NAME PATH"; HTTP/1.1
    /// keep-alive; GET /__count answers how many other requests it served (itself not counted). argv: name host port.
    /// </summary>
    public const string Origin = """
        import sys, threading
        from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler
        name, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
        lock = threading.Lock()
        count = [0]
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def log_message(self, *args): pass
            def do_GET(self):
                headers = {}
                if self.path == "/__count":
                    body = str(count[0]).encode()
                else:
                    with lock: count[0] += 1
                    if self.path.startswith("/obj/"):
                        body = f"{name} object {self.path[5:]}".encode()
                        headers["Cache-Control"] = "max-age=3600"
                    else:
                        body = f"{name} {self.path}".encode()
                self.send_response(200)
                for k, v in headers.items(): self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
        ThreadingHTTPServer.daemon_threads = True
        ThreadingHTTPServer((host, port), Handler).serve_forever()
        """;

    /// <summary>
    /// The test's way into the lab: for each "SOCKET=HOST:PORT" argument, a Unix socket (file system, so reachable from
    /// the test process in the host's namespace) whose connections are relayed to HOST:PORT from inside the client namespace.
    /// </summary>
    public const string Relay = """
        import asyncio, sys
        async def pipe(reader, writer):
            try:
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            except Exception: pass
            finally:
                try: writer.close()
                except Exception: pass
        def serve(host, port):
            async def handle(r1, w1):
                try: r2, w2 = await asyncio.open_connection(host, port)
                except Exception:
                    w1.close(); return
                await asyncio.gather(pipe(r1, w2), pipe(r2, w1))
            return handle
        async def main():
            servers = []
            for arg in sys.argv[1:]:
                path, target = arg.split("=")
                host, port = target.rsplit(":", 1)
                servers.append(await asyncio.start_unix_server(serve(host, int(port)), path=path))
            print("relay ready", flush=True)
            await asyncio.Event().wait()
        asyncio.run(main())
        """;
}
