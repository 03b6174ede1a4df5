"""strace -f -c on a target's process tree for a few seconds while wrk moves a body: which system
calls carry the bytes (splice/sendfile vs read/write/sendmsg)."""
import signal
import subprocess
import time

from . import procstat


def top_calls(summary_text, n=6):
    """The n system calls with the most time from an `strace -c` table, as 'name calls' strings."""
    rows = []
    for line in summary_text.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0].replace(".", "", 1).isdigit() and parts[-1] != "total":
            try:
                calls = int(parts[3])
            except ValueError:
                continue
            rows.append((float(parts[0]), parts[-1], calls))
    rows.sort(reverse=True)
    return [f"{name} {calls}" for _, name, calls in rows[:n]]


def trace(root_pid, seconds, out_path, wrk_cmd):
    pids = procstat.tree_pids(root_pid, procstat.all_stats())
    cmd = ["strace", "-f", "-c", "-o", out_path] + [a for p in pids for a in ("-p", str(p))]
    wrk = subprocess.Popen(wrk_cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    st = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(seconds)  # the traced window itself, not a wait for readiness
        st.send_signal(signal.SIGINT)
        st.wait(timeout=30)
    finally:
        for p in (st, wrk):
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    with open(out_path) as f:
        return f.read()
