"""CPU time and peak memory of a process tree, read from /proc.

CPU is utime+stime of every live process in the tree (all threads included: /proc/<pid>/stat of
a process sums its threads) plus cutime+cstime of the root (children it already reaped).
Sampled before and after a timed run, the difference is the CPU the proxy spent on that run.
"""
import os
import resource

CLK_TCK = os.sysconf("SC_CLK_TCK")


def parse_stat(text):
    """Fields of /proc/<pid>/stat as a dict; the command name may hold spaces and parentheses."""
    right = text.rindex(")")
    rest = text[right + 2:].split()
    # rest[0] is field 3 (state); field N is rest[N - 3].
    return {
        "pid": int(text[:text.index(" ")]),
        "ppid": int(rest[1]),
        "utime": int(rest[11]),
        "stime": int(rest[12]),
        "cutime": int(rest[13]),
        "cstime": int(rest[14]),
    }


def parse_vm_hwm_kib(status_text):
    """VmHWM (peak resident set) in KiB from /proc/<pid>/status text, or 0 when absent."""
    for line in status_text.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None


def all_stats(proc="/proc"):
    stats = {}
    for name in os.listdir(proc):
        if name.isdigit():
            text = _read(f"{proc}/{name}/stat")
            if text:
                s = parse_stat(text)
                stats[s["pid"]] = s
    return stats


def tree_pids(root, stats):
    """The root and all its descendants, from a {pid: stat} snapshot."""
    children = {}
    for s in stats.values():
        children.setdefault(s["ppid"], []).append(s["pid"])
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            out.append(pid)
            todo.extend(children.get(pid, []))
    return out


def tree_cpu_ticks(root, stats):
    pids = tree_pids(root, stats)
    if not pids:
        return 0
    total = sum(stats[p]["utime"] + stats[p]["stime"] for p in pids)
    return total + stats[root]["cutime"] + stats[root]["cstime"]


def tree_cpu_seconds(root, proc="/proc"):
    return tree_cpu_ticks(root, all_stats(proc)) / CLK_TCK


def tree_user_seconds(root, proc="/proc"):
    """The user-space part of tree_cpu_seconds (utime of the live tree plus the root's cutime)."""
    stats = all_stats(proc)
    pids = tree_pids(root, stats)
    if not pids:
        return 0.0
    return (sum(stats[p]["utime"] for p in pids) + stats[root]["cutime"]) / CLK_TCK


def tree_peak_rss_kib(root, proc="/proc"):
    stats = all_stats(proc)
    return sum(parse_vm_hwm_kib(_read(f"{proc}/{p}/status") or "") for p in tree_pids(root, stats))


def reset_peak_rss(root, proc="/proc"):
    """Writing 5 to clear_refs resets VmHWM to the current RSS (Linux >= 4.0), so a peak is per run."""
    for p in tree_pids(root, all_stats(proc)):
        try:
            with open(f"{proc}/{p}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            pass


def children_cpu_seconds():
    """user+system CPU of this process's reaped children (wrk runs to completion, then is reaped)."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def parse_proc_stat_cpu(text):
    """(busy, total) jiffies of the whole machine from the first line of /proc/stat."""
    for line in text.splitlines():
        if line.startswith("cpu "):
            v = [int(x) for x in line.split()[1:]]
            idle = v[3] + (v[4] if len(v) > 4 else 0)  # idle + iowait
            total = sum(v[:8])  # guest time is already inside user/nice
            return total - idle, total
    raise ValueError("no cpu line in /proc/stat")


def host_cpu():
    return parse_proc_stat_cpu(_read("/proc/stat"))
