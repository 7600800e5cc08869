"""The report of a run: the table of medians and ratios, results.md (the table with the
run's facts, as the README quotes it), results.json and (by :mod:`.plot`) results.png."""

import json
import os
import platform
import statistics

from . import plot
from .cases import COMPILED, CONTENDERS, DTYPES, EXTRA_CONTENDERS, LOSSES, OPS

# the implementations a user could call instead of nbloss: a ratio each, their time over
# nbloss's
PEERS = ("torch", "numpy") + COMPILED


def fmt_time(seconds):
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def fmt_n(n):
    exp = len(str(n)) - 1
    return f"1e{exp}" if n == 10 ** exp else str(n)


def ratio_rows(records):
    """One row per (loss, dtype, op, n): each contender's median and the ratios
    <peer>/nbloss (``<peer>_speedup``, for each of :data:`PEERS`) and nbloss/floor."""
    t = {(r["loss"], r["dtype"], r["n"], r["op"], r["contender"]): r.get("median_s")
         for r in records}
    keys = sorted({(r["loss"], r["dtype"], r["op"], r["n"]) for r in records},
                  key=lambda k: (LOSSES.index(k[0]), DTYPES.index(k[1]), OPS.index(k[2]), k[3]))
    rows = []
    for loss, dtype, op, n in keys:
        row = {"loss": loss, "dtype": dtype, "op": op, "n": n}
        for c in CONTENDERS + EXTRA_CONTENDERS:
            row[c] = t.get((loss, dtype, n, op, c))
        nb, torch = row["nbloss"], row["torch"]
        for c in PEERS:
            row[f"{c}_speedup"] = row[c] / nb if nb and row[c] else None
        row["vs_floor"] = nb / row["floor"] if nb and row["floor"] else None
        # the most any loss kernel could gain on torch: bounded by the memory traffic
        # (floor) and by the arithmetic (compute)
        row["torch_over_floor"] = torch / row["floor"] if torch and row["floor"] else None
        row["torch_over_compute"] = torch / row["compute"] if torch and row["compute"] else None
        rows.append(row)
    return rows


def markdown_table(rows):
    def ratio(x):
        return "-" if x is None else f"{x:.2f}"

    # the bounds' columns only in a run that measured the compute bound, the compiled
    # peers' only where they ran
    bounds = any(r["compute"] for r in rows)
    compiled = [c for c in COMPILED if any(r[c] for r in rows)]
    times = CONTENDERS + (("compute",) if bounds else ()) + tuple(compiled)
    speedups = ["torch", "numpy"] + compiled
    head = ["loss", "dtype", "op", "N", *times]
    head += [f"{c} / nbloss" for c in speedups] + ["nbloss / floor"]
    head += ["torch / floor", "torch / compute"] if bounds else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["loss"], r["dtype"], r["op"], fmt_n(r["n"])]
        cells += [fmt_time(r[c]) for c in times]
        cells += [ratio(r[f"{c}_speedup"]) for c in speedups] + [ratio(r["vs_floor"])]
        cells += [ratio(r[k]) for k in ("torch_over_floor", "torch_over_compute")] if bounds else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compile_summary(records):
    """{compiled contender: {"min_s", "median_s", "max_s", "cases", "slowest"}}: the time of
    each case's first call (tracing and compiling), which the timed calls leave out."""
    out = {}
    for c in COMPILED:
        got = [r for r in records if r["contender"] == c and "compile_s" in r]
        if got:
            times = [r["compile_s"] for r in got]
            slowest = max(got, key=lambda r: r["compile_s"])
            out[c] = {"min_s": min(times), "median_s": statistics.median(times),
                      "max_s": max(times), "cases": len(times),
                      "slowest": " ".join([slowest["loss"], slowest["dtype"], slowest["op"],
                                           fmt_n(slowest["n"])])}
    return out


def summary_markdown(report, rows):
    """results.md: the run's facts, the table, the cold start and the memory."""
    v = report["versions"]
    lines = [f"Measured {report['date']} with `{report['command']}` on {report['machine']['cpu']} "
             f"({report['machine']['logical_cpus']} logical CPUs), Python {report['machine']['python']}, "
             + ", ".join(f"{k} {v[k]}" for k in ("nbloss", "numba", "numpy", "torch", "jax", "jaxlib") if k in v)
             + (f"; numba threading layer {v['numba_threading_layer']}, {v['numba_threads']} threads"
                if "numba_threads" in v else "")
             + f". Loss parameter (beta, delta) = {report['param']}; medians"
             + ("; the workers' malloc reuses freed memory (--reuse-memory: no page faults per call)"
                if report.get("allocator", "").startswith("freed") else "")
             + "; ratios above 1 mean "
             "nbloss is faster, except nbloss / floor (1 is the floor).", ""]
    lines.append(markdown_table(rows))
    compiles = compile_summary(report["results"])
    if compiles:
        lines += ["", "Compile time, the first call of each case in its worker (tracing and "
                  "compiling for that shape and dtype; apart from the times and ratios above): "
                  + "; ".join(f"{c} {fmt_time(x['min_s'])} to {fmt_time(x['max_s'])}, median "
                              f"{fmt_time(x['median_s'])} over {x['cases']} cases (slowest: "
                              f"{x['slowest']})" for c, x in compiles.items()) + "."]
    cold = report.get("cold_start")
    if cold:
        lines += ["", "Cold start, a fresh process to the first fused loss and gradient (median of "
                  f"{next(iter(cold.values()))['runs']}): "
                  + ", ".join(f"{c} {x['median_s']:.2f} s" for c, x in cold.items())
                  + " (nbloss on a warm disk cache; torch: import, loss, backward)."]
    mem = report.get("memory")
    if mem:
        lines += ["", f"Extra memory of a 1e7 float32 forward (input {mem['input_bytes'] / 1e6:.0f} MB): "
                  + "; ".join(f"'{r}' tracemalloc peak {mem[r]['tracemalloc_peak_bytes']} B "
                              f"({100 * mem[r]['tracemalloc_peak_bytes'] / mem['input_bytes']:.2g}% "
                              f"of the input), peak RSS growth {mem[r]['maxrss_growth_bytes']} B, "
                              f"{mem[r]['numba_allocations']} numba allocation(s)"
                              for r in ("mean", "sum")) + "."]
    return "\n".join(lines) + "\n"


def machine_facts():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": model, "logical_cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


def write(report, rows, out):
    """Write results.json and results.md to the folder ``out``, print the table, and plot
    results.png where matplotlib is installed."""
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
    md = summary_markdown(report, rows)
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(md)
    print()
    print(md)
    try:
        plot.plot(report["results"], os.path.join(out, "results.png"), plot.title(report))
        print(f"\nwrote {out}/results.json, results.md and results.png")
    except ImportError:
        print(f"\nwrote {out}/results.json and results.md "
              "(pip install matplotlib, or nbloss[plot], for the plot)")
