"""The loopback ceiling: iperf3 between two processes on 127.0.0.1."""
import json
import subprocess

from .services import Service, free_ports


def parse_iperf3_json(text):
    """Received bytes per second (GB/s, 1e9) from `iperf3 -J` client output."""
    data = json.loads(text)
    if data.get("error"):
        raise RuntimeError(f"iperf3: {data['error']}")
    return data["end"]["sum_received"]["bits_per_second"] / 8 / 1e9


def iperf3_gbps(work_dir, seconds):
    port = free_ports(1)[0]
    # No "-1" (one client, then exit): the readiness probe's connect would be that one client.
    server = Service("iperf3-server", ["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port)],
                     f"{work_dir}/iperf3-server.log", [port])
    server.start(ready_timeout_s=10)
    try:
        p = subprocess.run(["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"],
                           capture_output=True, text=True, timeout=seconds + 30)
        return parse_iperf3_json(p.stdout)
    finally:
        server.stop(grace_s=5)
