"""Wake-ups counted per thread without tracing (perf stat --per-thread): futex, epoll_wait and context switches of
the event loops apart from the runtime's other threads.

`strace -f -c` slows the proxy 2-6x, so calls made by time (the runtime's timer thread and the pool workers its timers
wake, ~130-200 futex a second whatever the load) looked like 0.11-0.15 futex per request under strace; untraced they
are ~0.01, and the loops themselves make ~0.0002 (issue 12, docs/transport.md "64 KiB responses")."""
import collections
import subprocess
import time

EVENTS = ("syscalls:sys_enter_futex", "syscalls:sys_enter_epoll_wait", "context-switches")
LOOP_PREFIX = "zcproxy-loop-"


def command(pids, seconds, out_path):
    """perf stat counting EVENTS per thread of `pids` for `seconds`, CSV (;) into out_path."""
    return ["perf", "stat", "--per-thread", "-x", ";", "-o", out_path, "-e", ",".join(EVENTS),
            "-p", ",".join(str(p) for p in pids), "--", "sleep", str(seconds)]


def parse(text):
    """{thread name: Counter(futex=, epoll_wait=, context-switches=)} from `perf stat --per-thread -x ;`; threads
    of one name (the pool's workers) are summed; a thread perf names `name-tid`."""
    by_name = collections.defaultdict(collections.Counter)
    for line in text.splitlines():
        fields = line.split(";")
        if line.startswith("#") or len(fields) < 4 or not fields[1].isdigit():
            continue
        name = fields[0].rsplit("-", 1)[0]
        by_name[name][fields[3].split(":")[-1].removeprefix("sys_enter_")] += int(fields[1])
    return dict(by_name)


def loops_and_others(by_name):
    """(the event loops' counts, every other thread's counts), each a Counter."""
    loops, others = collections.Counter(), collections.Counter()
    for name, counts in by_name.items():
        (loops if name.startswith(LOOP_PREFIX) else others).update(counts)
    return loops, others


def describe(by_name, requests, seconds):
    """One line: per request on the loops and on the other threads (with the others' futex a second)."""
    loops, others = loops_and_others(by_name)

    def per(c):
        return ", ".join(f"{k} {c[k] / requests:.4f}" for k in ("futex", "epoll_wait", "context-switches"))
    return f"loops: {per(loops)}; other threads: {per(others)} (futex {others['futex'] / seconds:.0f}/s)"


def run(pids, load_seconds, out_path, load):
    """Counts per thread while `load()` (of `load_seconds`; it returns the number of requests) runs inside the
    counted window; (requests, by_name), or (requests, None) when perf is missing or not allowed."""
    try:
        perf = subprocess.Popen(command(pids, load_seconds + 1, out_path), stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    except OSError:
        return load(), None
    try:
        time.sleep(0.5)  # perf attaches to every thread before the load starts
        requests = load()
    finally:
        perf.wait(timeout=load_seconds + 30)
    if perf.returncode != 0:
        return requests, None
    with open(out_path) as f:
        return requests, parse(f.read())
