"""strace -f -c on a target's process tree for a few seconds while wrk moves a body: which system
calls carry the bytes (splice/sendfile vs read/write/sendmsg)."""
import signal
import subprocess
import time

from . import procstat


DATA_CALLS = {"splice", "tee", "vmsplice", "sendfile", "sendfile64", "read", "write", "readv", "writev",
              "pread64", "pwrite64", "preadv", "pwritev", "preadv2", "pwritev2", "recvfrom", "sendto",
              "recvmsg", "sendmsg", "recvmmsg", "sendmmsg", "io_uring_enter", "io_submit", "io_getevents",
              "copy_file_range"}


def parse_summary(summary_text):
    """[(syscall, calls, seconds)] from an `strace -c` table."""
    rows = []
    for line in summary_text.splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0].replace(".", "", 1).isdigit() and parts[-1] != "total":
            try:
                rows.append((parts[-1], int(parts[3]), float(parts[1])))
            except ValueError:
                continue
    return rows


def top_calls(summary_text, n=6):
    """The calls that can carry body bytes, most frequent first, as 'name calls' strings: reads and
    writes mean the bytes went through user space; splice/sendfile mean they did not."""
    rows = [r for r in parse_summary(summary_text) if r[0] in DATA_CALLS]
    rows.sort(key=lambda r: (-r[1], r[0]))
    return [f"{name} {calls}" for name, calls, _ in rows[:n]]


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
