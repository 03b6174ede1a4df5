"""Sums return values (bytes) in `strace -f -C -yy -o FILE` output, joining "<unfinished ...>" / "<... resumed>"
pairs per pid. Prints, per syscall, the bytes whose output fd (fd argument as decorated by -yy) is the client
socket, i.e. a TCP socket with local port PORT, and the total bytes of all successful calls.
Usage: strace_bytes.py FILE PORT"""
import re
import sys
from collections import defaultdict

path, port = sys.argv[1], sys.argv[2]
client = ":%s->" % port
# Position of the fd that receives the bytes: splice(in, off, OUT, ...), sendfile(OUT, in, ...), writes/sends arg 0.
out_arg = {"splice": 2, "sendfile": 0, "write": 0, "writev": 0, "sendmsg": 0, "sendto": 0}
io_calls = set(out_arg) | {"read", "readv", "pread64", "recvmsg", "recvfrom"}  # not openat: its result is an fd
pending = {}
to_client = defaultdict(int)
total = defaultdict(int)
complete = re.compile(r"^(\w+)\((.*)\) +=\s+(-?\d+)")
for line in open(path, errors="replace"):
    line = line.rstrip("\n")
    if line.startswith("% time"):
        break
    pid, _, rest = line.partition(" ")
    rest = rest.lstrip()
    if rest.endswith("<unfinished ...>"):
        pending[pid] = rest[: -len(" <unfinished ...>")]
        continue
    m = re.match(r"^<\.\.\. \w+ resumed>(.*)$", rest)
    if m:
        if pid not in pending:
            continue
        rest = pending.pop(pid) + m.group(1)
    m = complete.match(rest)
    if not m or m.group(1) not in io_calls or int(m.group(3)) <= 0:
        continue
    name, args, result = m.group(1), m.group(2).split(", "), int(m.group(3))
    total[name] += result
    if name in out_arg and client in args[out_arg[name]]:
        to_client[name] += result
for name in sorted(total):
    print("  %-9s %12d bytes in total, %12d bytes to the client socket" % (name, total[name], to_client[name]))
