"""Before timing: the target must return the origin's exact bytes; cache targets must hit."""
import hashlib
import http.client
import time

from . import tls as tls_


def fetch(port, path, timeout_s=30, tls=False):
    """(status, headers dict lower-cased, sha256 hex, length) of one GET (over HTTPS with tls)."""
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout_s, context=tls_.client_context()) if tls \
        else http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        h = hashlib.sha256()
        n = 0
        while True:
            chunk = resp.read(1 << 20)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, h.hexdigest(), n
    finally:
        conn.close()


def check_body(port, path, want_sha, want_len, tls=False):
    """None when the response is right, else why not."""
    try:
        status, headers, sha, n = fetch(port, path, tls=tls)
    except Exception as e:  # a target that cannot answer is a finding, not a crash
        return f"request failed: {type(e).__name__}: {e}"
    if status != 200:
        return f"status {status}"
    if n != want_len:
        return f"body {n} bytes, expected {want_len}"
    if sha != want_sha:
        return "body sha256 differs from the origin file"
    return None


def check_upload(port, length, timeout_s=60):
    """None when a POST of length bytes to /upload is answered 200 "ok" (the origin read the whole body), else why not."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        conn.request("POST", "/upload", body=bytes(length), headers={"Content-Type": "application/octet-stream"})
        resp = conn.getresponse()
        text = resp.read()
    except Exception as e:
        return f"upload failed: {type(e).__name__}: {e}"
    finally:
        conn.close()
    if resp.status != 200 or text.strip() != b"ok":
        return f"status {resp.status}, body {text[:40]!r}"
    return None


def check_cache_hit(port, path, want_sha, want_len, attempts=5, pause_s=0.3):
    """Prime with a miss, then expect X-Cache-Status: HIT with the right bytes (bounded attempts:
    a cache may finish storing the entry just after the first response ends)."""
    seen = []
    for _ in range(attempts):
        try:
            status, headers, sha, n = fetch(port, path)
        except Exception as e:
            return f"request failed: {type(e).__name__}: {e}"
        cache_status = headers.get("x-cache-status")
        seen.append(cache_status or "none")
        if status != 200 or n != want_len or sha != want_sha:
            return f"wrong response (status {status}, {n} bytes, sha match {sha == want_sha}), X-Cache-Status {cache_status}"
        if cache_status == "HIT":
            return None
        if len(seen) >= 2 and seen[-1] == seen[-2] == "none":
            break  # no X-Cache-Status at all: this build has no cache on the route
        time.sleep(pause_s)
    return f"no cache hit: X-Cache-Status {' -> '.join(seen)}"
