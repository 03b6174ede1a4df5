"""Markdown table and TSV files from case summaries and ratios."""
from .stats import METRICS

RUN_COLUMNS = ["case", "target", "workload", "rep", "requests", "bytes", "duration_s", "cpu_s",
               "p99_ms", "peak_rss_kib", "host_busy_pct", "origin_cpu_s", "client_cpu_s", "user_cpu_s", "jit_s", "errors",
               "mechanisms", "note"]


def fmt(value, metric):
    if value is None or value != value:
        return "-"
    if metric == "rps":
        return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    if metric == "gbps":
        return f"{value:.2f}"
    if metric == "cpu_per_gb":
        return f"{value:.2f}" if value >= 0.1 else f"{value:.3f}"
    if metric == "us_per_req":
        return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    if metric == "p99_ms":
        return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
    if metric == "ratio":
        return f"{value:.2f}"
    return str(value)


def fmt_spread(spread, metric):
    if spread is None:
        return "-"
    low, high = fmt(spread.low, metric), fmt(spread.high, metric)
    return fmt(spread.median, metric) + ("" if low == high else f" ({low}–{high})")


def markdown(header_lines, group_order, summaries, ratios, extra_sections=()):
    """header_lines: list of strings; summaries: CaseSummary list in target order;
    ratios: list of (RatioSpec, Spread|None, met)."""
    out = list(header_lines) + [""]
    for group in group_order:
        rows = [s for s in summaries if s.group == group]
        if not rows:
            continue
        out.append(f"### {group}")
        out.append("")
        out.append("| target | req/s | GB/s | CPU-s/GB | CPU µs/req | p99 ms | peak RSS MiB | host busy % | notes |")
        out.append("|---|---|---|---|---|---|---|---|---|")
        for s in rows:
            if s.status != "ok":
                out.append(f"| {s.target} | - | - | - | - | - | - | - | **not timed: {s.status}** |")
                continue
            notes = "; ".join(x for x in [s.notes, f"{s.errors} wrk errors" if s.errors else ""] if x)
            out.append("| " + " | ".join([s.target] + [fmt_spread(s.spreads.get(m), m) for m in METRICS] +
                                         [f"{s.peak_rss_mib:.0f}", f"{s.host_busy_pct:.0f}", notes]) + " |")
        out.append("")
    if ratios:
        out += ["### Ratios (paired per repetition, same run)", "",
                "| comparison | ratio median (min–max) | goal | met |", "|---|---|---|---|"]
        for spec, spread, met in ratios:
            out.append(f"| {spec.label} | {fmt_spread(spread, 'ratio')} | {spec.goal or '-'} | {met or '-'} |")
        out.append("")
    for title, lines in extra_sections:
        out += [f"### {title}", ""] + list(lines) + [""]
    return "\n".join(out).rstrip() + "\n"


def runs_tsv(runs):
    lines = ["\t".join(RUN_COLUMNS)]
    for r in runs:
        lines.append("\t".join(_cell(r.get(c, "")) for c in RUN_COLUMNS))
    return "\n".join(lines) + "\n"


def summary_tsv(summaries):
    cols = ["case", "target", "workload", "status", "n"]
    for m in METRICS:
        cols += [f"{m}_median", f"{m}_min", f"{m}_max"]
    cols += ["peak_rss_mib", "host_busy_pct", "errors", "notes"]
    lines = ["\t".join(cols)]
    for s in summaries:
        row = [s.case_id, s.target, s.workload, s.status, s.n]
        for m in METRICS:
            sp = s.spreads.get(m)
            row += [sp.median, sp.low, sp.high] if sp else ["", "", ""]
        row += [round(s.peak_rss_mib, 1), round(s.host_busy_pct, 1), s.errors, s.notes]
        lines.append("\t".join(_cell(v) for v in row))
    return "\n".join(lines) + "\n"


def ratios_tsv(ratios):
    lines = ["\t".join(["comparison", "numerator", "denominator", "metric", "median", "min", "max", "goal", "met"])]
    for spec, sp, met in ratios:
        vals = [sp.median, sp.low, sp.high] if sp else ["", "", ""]
        lines.append("\t".join(_cell(v) for v in
                               [spec.label, spec.numerator, spec.denominator, spec.metric, *vals, spec.goal, met]))
    return "\n".join(lines) + "\n"


def _cell(v):
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v).replace("\t", " ").replace("\n", " ")
