"""Origin for bench/strace-proof.sh: serves the files of a directory with Content-Length via sendfile.
/plain/NAME is uncacheable; /cached/NAME carries Cache-Control: max-age=600. Prints its URL, then serves."""
import http.server
import os
import socketserver
import sys

root = sys.argv[1]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        path = os.path.join(root, os.path.basename(self.path))
        if not os.path.isfile(path):
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(os.path.getsize(path)))
        if self.path.startswith("/cached/"):
            self.send_header("Cache-Control", "max-age=600")
        self.end_headers()
        self.wfile.flush()
        with open(path, "rb") as f:
            self.connection.sendfile(f)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


server = Server(("127.0.0.1", 0), Handler)
print("origin listening on http://127.0.0.1:%d" % server.server_address[1], flush=True)
server.serve_forever()
