"""results.png: the benchmark's records as a figure that explains itself.

One row per operation and, for each dtype, two panels side by side: the time per call of
every contender against N (lower is better), and nbloss's speed-up, each contender's time
over nbloss's (higher is better; the line at 1 is a tie). One colour per contender; the
first loss drawn solid with markers, another loss (the same kernels, within a few percent
but for torch's outliers) as a thin dotted line of the same colour.

:func:`plot` takes the records of ``results.json``, so that a figure can be redrawn from
an earlier run (``python -m nbloss bench --replot results.json``) without timing anything.
"""

import math
import textwrap

from .cases import CONTENDERS, DTYPES, EXTRA_CONTENDERS, LOSSES, OPS

COLORS = {"nbloss": "tab:blue", "torch": "tab:red", "numpy": "tab:green", "floor": "black",
          "compute": "tab:purple", "torch-compile": "tab:orange", "jax": "tab:brown"}
LABELS = {"nbloss": "nbloss", "torch": "torch.nn.functional", "numpy": "NumPy np.where expression",
          "floor": "floor: streaming the same bytes (memory bound)",
          "compute": "compute: the loss's arithmetic alone",
          "torch-compile": "torch.compile (inductor; compile time not included)",
          "jax": "jax.jit, CPU (compile time not included)"}
OP_NAMES = {"mean": "'mean' forward", "none": "'none' forward (elementwise)",
            "grad": "gradient of 'mean'", "fused": "fused loss + gradient"}
SPEEDUP_LABEL = "contender's time / nbloss's"


def title(report):
    """The figure's title: when and where the run was measured."""
    machine = report["machine"]
    return (f"nbloss bench, {report['date']}, {machine['cpu']} ({machine['logical_cpus']} "
            f"logical CPUs), medians")


def fmt_seconds(seconds):
    """1.5e-06 -> '1.5 µs': a tick label in the unit that suits it."""
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if seconds >= scale * 0.999 or unit == "ns":
            return f"{seconds / scale:.3g} {unit}"


def fmt_count(n):
    """30000 -> '30k', 10**7 -> '10M'."""
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.3g}"


def log_ticks(low, high):
    """Tick values for a log axis from ``low`` to ``high``: 1 and 3 of each decade, or 1, 2
    and 5, or every step, the sparsest that gives at least four labels (never only the
    decades)."""
    for subs in ((1, 3), (1, 2, 5), (1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [s * 10.0 ** decade
                 for decade in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
                 for s in subs if low <= s * 10.0 ** decade <= high]
        if len(ticks) >= 4:
            break
    return ticks


def _set_log_y(ax, formatter):
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullFormatter

    ax.set_yscale("log")
    low, high = ax.get_ylim()
    ax.yaxis.set_major_locator(FixedLocator(log_ticks(low, high)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: formatter(v)))
    ax.yaxis.set_minor_locator(LogLocator(subs="all", numticks=50))
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(low, high)


def _series(records, **match):
    """The sorted (n, median seconds) points of the records matching ``match``."""
    return sorted((r["n"], r["median_s"]) for r in records
                  if r.get("median_s") and all(r[k] == v for k, v in match.items()))


def plot(records, path, title):
    """Draw the records of a run into ``path`` (the format from its suffix); returns the
    figure's axes, one row per operation: [time, speed-up] for each dtype."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    present = {k: [v for v in values if any(r[k] == v for r in records)]
               for k, values in (("dtype", DTYPES), ("op", OPS), ("loss", LOSSES),
                                 ("contender", CONTENDERS + EXTRA_CONTENDERS))}
    dtypes, ops, losses, contenders = (present[k] for k in ("dtype", "op", "loss", "contender"))
    sizes = sorted({r["n"] for r in records})
    styles = {loss: dict(ls="-", lw=1.8, marker="o", markersize=3.5) if i == 0 else
              dict(ls=":", lw=1.2) for i, loss in enumerate(losses)}
    fig, axes = plt.subplots(len(ops), 2 * len(dtypes), squeeze=False, sharex=True,
                             figsize=(4.1 * 2 * len(dtypes), 2.9 * len(ops) + 1.2),
                             layout="constrained")
    for i, op in enumerate(ops):
        for j, dtype in enumerate(dtypes):
            t_ax, s_ax = axes[i][2 * j], axes[i][2 * j + 1]
            for c in contenders:
                for loss in losses:
                    pts = _series(records, op=op, dtype=dtype, loss=loss, contender=c)
                    if pts:  # nbloss on top: at large N it lies on the bounds' lines
                        t_ax.plot(*zip(*pts), color=COLORS[c], zorder=3 if c == "nbloss" else 2,
                                  **styles[loss])
                    ours = dict(_series(records, op=op, dtype=dtype, loss=loss, contender="nbloss"))
                    ratio = [(n, t / ours[n]) for n, t in pts if n in ours]
                    if c != "nbloss" and ratio:
                        s_ax.plot(*zip(*ratio), color=COLORS[c], **styles[loss])
            s_ax.axhline(1, color="0.3", lw=1, zorder=0)
            s_ax.annotate("1 = tie", (0.01, 1), xycoords=("axes fraction", "data"),
                          xytext=(2, 2), textcoords="offset points", fontsize=7, color="0.3")
            t_ax.set_title(f"{OP_NAMES[op]}, {dtype}\ntime per call (lower is better)", fontsize=9)
            s_ax.set_title(f"{OP_NAMES[op]}, {dtype}\nnbloss's speed-up (higher is better)",
                           fontsize=9)
            t_ax.set_ylabel("time per call", fontsize=8)
            s_ax.set_ylabel(SPEEDUP_LABEL, fontsize=8)
            for ax in (t_ax, s_ax):
                ax.set_xscale("log")
                ax.grid(True, which="major", alpha=0.35)
                ax.grid(True, which="minor", axis="y", alpha=0.12)
                ax.tick_params(labelsize=7.5)
            _set_log_y(t_ax, fmt_seconds)
            _set_log_y(s_ax, lambda v: f"{v:g}×")
    for ax in axes[-1]:
        ax.set_xlabel("N, elements per array", fontsize=8)
    if len(sizes) <= 10:  # the measured sizes as the x ticks: 1k, 10k, ...
        axes[0][0].xaxis.set_major_locator(FixedLocator(sizes))
        axes[0][0].xaxis.set_minor_locator(NullLocator())
    axes[0][0].xaxis.set_major_formatter(FuncFormatter(lambda v, _: fmt_count(v)))
    handles = [Line2D([], [], color=COLORS[c], lw=2, label=LABELS[c]) for c in contenders]
    handles += [Line2D([], [], color="0.4", label=f"{loss} ({'solid' if i == 0 else 'dotted'})",
                       **styles[loss]) for i, loss in enumerate(losses)]
    # as many legend columns and title characters per line as the figure's width holds
    width = fig.get_figwidth()
    fig.legend(handles=handles, loc="outside lower center", ncol=min(int(width // 4), len(handles)),
               fontsize=8.5, frameon=False)
    explain = ("in each pair, left: time per call, lower is better; right: how many times faster "
               "nbloss is than each contender, higher is better (below 1: slower)")
    fig.suptitle("\n".join(textwrap.fill(part, int(width * 12)) for part in (title, explain)),
                 fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return axes
