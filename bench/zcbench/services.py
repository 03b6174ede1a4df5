"""Starting and stopping the servers under test: free ports, readiness by connect, stop by PID."""
import os
import signal
import socket
import subprocess
import time

from . import procstat


def free_ports(n):
    """n distinct free ports on 127.0.0.1, chosen by the OS (all held open until all are chosen)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def tail(path, n=8):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(f.read().strip().splitlines()[-n:])
    except OSError:
        return ""


def _remember_pid(pid):
    """run.sh's safety net: PIDs listed in $ZCBENCH_PIDFILE are stopped if python dies abruptly."""
    _remember(str(pid))


def remember_work_dir(path):
    """run.sh's safety net removes the scratch directory too (files of up to 256 MiB, caches)."""
    _remember(f"dir:{path}")


def _remember(line):
    path = os.environ.get("ZCBENCH_PIDFILE")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


def forget_pids():
    """Every server was stopped cleanly: nothing for run.sh's trap to do."""
    path = os.environ.get("ZCBENCH_PIDFILE")
    if path and os.path.exists(path):
        open(path, "w").close()


class Service:
    """One server process (its tree is measured); stopped by PID on exit."""

    def __init__(self, name, cmd, log_path, ports, cwd=None, env=None):
        self.name, self.cmd, self.log_path, self.ports = name, cmd, log_path, ports
        self.cwd, self.env = cwd, env
        self.proc = None
        self.admin_port = None  # ZcProxy's admin listener (metrics), when the target has one

    @property
    def pid(self):
        return self.proc.pid

    def start(self, ready_timeout_s=60):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     cwd=self.cwd, env=self.env)
        log.close()
        _remember_pid(self.proc.pid)
        deadline = time.monotonic() + ready_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {tail(self.log_path)}")
            if all(port_open(p) for p in self.ports):
                return self
            time.sleep(0.1)  # bounded readiness poll, not a fixed wait
        raise RuntimeError(f"{self.name} did not listen on {self.ports} within {ready_timeout_s}s: "
                           f"{tail(self.log_path)}")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace_s=10):
        """SIGTERM to the root PID, bounded wait, then SIGKILL to every PID of its tree seen before."""
        if self.proc is None or self.proc.poll() is not None:
            return
        tree = procstat.tree_pids(self.proc.pid, procstat.all_stats())
        try:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
