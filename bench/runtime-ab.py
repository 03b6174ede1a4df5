#!/usr/bin/env python3
"""A/B of runtime settings by CPU µs per proxied request (1 KiB, wrk -c16), interleaved so machine load drifts
over all variants alike; prints each variant's median and runs. Also context switches and syscalls are load-free.

    python3 bench/runtime-ab.py [--zcproxy DLL] [--reps 3] [--seconds 4] [--warmup 5] \\
        --variant shipped= --variant spin0=DOTNET_ThreadPool_UnfairSemaphoreSpinLimit=0 ...

A variant is NAME=K=V[,K=V...] (empty after NAME=: zcproxy as shipped). Each run starts a fresh proxy.
"""
import argparse
import statistics

from perreq import DEFAULT_DLL, Rig, wrk


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--zcproxy", default=DEFAULT_DLL)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--conns", type=int, default=16)
    ap.add_argument("--variant", action="append", required=True)
    a = ap.parse_args()
    variants = []
    for v in a.variant:
        name, _, env = v.partition("=")
        variants.append((name, [kv for kv in env.split(",") if kv]))
    results = {name: [] for name, _ in variants}
    for rep in range(a.reps):
        order = variants[rep % len(variants):] + variants[:rep % len(variants)]
        for name, env in order:
            with Rig(a.zcproxy, 1024, env) as rig:
                wrk(rig.url, a.conns, a.warmup)
                n, cs, cpu, alloc = rig.untraced(a.conns, a.seconds)
            results[name].append((cpu, cs, n / a.seconds))
            print(f"rep {rep} {name}: {cpu:.1f} us/req, {cs:.3f} cs/req, {n / a.seconds:.0f} req/s", flush=True)
    for name, _ in variants:
        runs = results[name]
        print(f"{name}: median {statistics.median(r[0] for r in runs):.1f} us/req "
              f"(runs {', '.join(f'{r[0]:.0f}' for r in runs)}), cs/req {statistics.median(r[1] for r in runs):.3f}, "
              f"req/s {statistics.median(r[2] for r in runs):.0f}")


if __name__ == "__main__":
    main()
