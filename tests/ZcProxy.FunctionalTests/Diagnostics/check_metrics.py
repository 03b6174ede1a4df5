"""Parses Prometheus text exposition (stdin) with the prometheus-client package's parser and checks what that
lax parser lets through: a family declared twice, a sample outside its declared family (the parser turns it into
an untyped singleton), and histograms whose buckets are not cumulative or whose _count differs from the +Inf bucket.
Prints the families as JSON ({name: {"type": ..., "samples": [[name, labels, value], ...]}}) or the problems, exit 1."""
import json
import math
import sys
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
problems = []
families = {}
try:
    parsed = list(text_string_to_metric_families(text))
except Exception as e:  # a malformed line
    print(f"parse error: {e!r}")
    sys.exit(1)

for family in parsed:
    if family.name in families:
        problems.append(f"family {family.name} is declared more than once")
    if family.type == "untyped" or family.type == "unknown":
        problems.append(f"{family.name}: untyped (a sample outside its # TYPE family, or no # TYPE line)")
    families[family.name] = {
        "type": family.type,
        "samples": [[s.name, s.labels, s.value if math.isfinite(s.value) else str(s.value)] for s in family.samples],
    }
    if family.type == "histogram":
        series = defaultdict(lambda: {"buckets": [], "count": None, "sum": None})
        for s in family.samples:
            key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
            if s.name.endswith("_bucket"):
                series[key]["buckets"].append((float(s.labels["le"]), s.value))
            elif s.name.endswith("_count"):
                series[key]["count"] = s.value
            elif s.name.endswith("_sum"):
                series[key]["sum"] = s.value
        for key, h in series.items():
            les = [le for le, _ in h["buckets"]]
            counts = [c for _, c in h["buckets"]]
            if not les or les[-1] != math.inf:
                problems.append(f"{family.name}{dict(key)}: no le=\"+Inf\" bucket last")
            if les != sorted(les) or counts != sorted(counts):
                problems.append(f"{family.name}{dict(key)}: buckets not ascending and cumulative")
            if h["count"] is None or h["sum"] is None:
                problems.append(f"{family.name}{dict(key)}: _count or _sum missing")
            elif counts and h["count"] != counts[-1]:
                problems.append(f"{family.name}{dict(key)}: _count {h['count']} != +Inf bucket {counts[-1]}")

if problems:
    print("\n".join(problems))
    sys.exit(1)
print(json.dumps(families))
