"""What a caller's choices cost: a number as target against an array of its value, a
target or weight broadcast along some axes (read as 2-D or 3-D views) against the same
operand materialised, and ``out=`` against a fresh result, timed with the public
functions.

    python benchmarks/calls.py --out benchmarks/results/cpu-2core/calls.md

Prints and writes a Markdown table: for each case the median and minimum of many timed
calls (grouped into samples of at least 50 us), and the ratio of the two variants'
medians, second / first (below 1: the second variant is the faster). Both variants of a case run
alternately in one process, so that each ratio compares timings taken moments apart.
"""

import argparse
import platform
import statistics
import sys
import time
import warnings

import numpy as np

import nbloss

SIZES = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def samples(fn, rounds):
    """Seconds per call of ``fn``: one sample per round, each of enough calls to last 50 us."""
    fn()
    t0 = time.perf_counter()
    fn()
    per = max(1, int(50e-6 / max(time.perf_counter() - t0, 1e-7)))
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(per):
            fn()
        out.append((time.perf_counter() - t0) / per)
    return out


def compare(first, second, rounds):
    """Median and minimum of ``first`` and ``second``, timed in alternating rounds."""
    a, b = [], []
    for _ in range(rounds):
        a += samples(first, 1)
        b += samples(second, 1)
    return (statistics.median(a), min(a)), (statistics.median(b), min(b))


def cases(n, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(n).astype(dtype)
    zeros = np.zeros_like(x)
    grad = np.empty_like(x)
    f, g = nbloss.smooth_l1_loss, nbloss.smooth_l1_loss_grad
    vg = nbloss.smooth_l1_loss_value_and_grad
    yield "mean: zeros array | 0.0", lambda: f(x, zeros), lambda: f(x, 0.0)
    yield "grad: zeros array | 0.0", lambda: g(x, zeros), lambda: g(x, 0.0)
    yield "fused: zeros array | 0.0", lambda: vg(x, zeros), lambda: vg(x, 0.0)
    yield "grad: fresh | out=", lambda: g(x, zeros), lambda: g(x, zeros, out=grad)
    yield "fused: fresh | out=", lambda: vg(x, zeros), lambda: vg(x, zeros, out=grad)
    if n % 100:
        return
    # rows of 100: a (rows, 1) target (one value per row) and a (1, 100) weight (one per
    # column), against the same operand materialised to the input's shape
    rows = x.reshape(-1, 100)
    col = rng.standard_normal((rows.shape[0], 1)).astype(dtype)
    col_full = np.ascontiguousarray(np.broadcast_to(col, rows.shape))
    yield "mean: full target | (rows, 1)", lambda: f(rows, col_full), lambda: f(rows, col)
    yield "grad: full target | (rows, 1)", lambda: g(rows, col_full), lambda: g(rows, col)
    yield "fused: full target | (rows, 1)", lambda: vg(rows, col_full), lambda: vg(rows, col)
    w = rng.random((1, 100)).astype(dtype)
    w_full = np.ascontiguousarray(np.broadcast_to(w, rows.shape))
    yield ("fused: full weight | (1, cols)", lambda: vg(rows, 0.0, weight=w_full),
           lambda: vg(rows, 0.0, weight=w))
    # (N, C, HW) with 2 channels of 50: a target with one channel (N, 1, HW) and a weight
    # per channel (1, C, 1), broadcasts along three axes
    images = x.reshape(-1, 2, 50)
    image = rng.standard_normal((images.shape[0], 1, 50)).astype(dtype)
    image_full = np.ascontiguousarray(np.broadcast_to(image, images.shape))
    yield ("mean: full target | (N, 1, HW)", lambda: f(images, image_full),
           lambda: f(images, image))
    yield ("fused: full target | (N, 1, HW)", lambda: vg(images, image_full),
           lambda: vg(images, image))
    c = rng.random((1, 2, 1)).astype(dtype)
    c_full = np.ascontiguousarray(np.broadcast_to(c, images.shape))
    yield ("fused: full weight | (1, C, 1)", lambda: vg(images, 0.0, weight=c_full),
           lambda: vg(images, 0.0, weight=c))


def write_table(lines, out):
    """Write the table's ``lines`` to the Markdown file ``out`` (nothing when None)."""
    if out:
        with open(out, "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"wrote {out}")


def fmt(seconds):
    return f"{seconds * 1e6:.3g} us" if seconds < 1e-3 else f"{seconds * 1e3:.3g} ms"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default=",".join(str(n) for n in SIZES),
                        help="comma-separated element counts (default: %(default)s)")
    parser.add_argument("--dtypes", default="float32,float64",
                        help="comma-separated dtypes (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=31,
                        help="alternating samples of each variant per case (default: %(default)s)")
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    command = " ".join(["python benchmarks/calls.py", *(sys.argv[1:] if argv is None else argv)])
    lines = [f"`{command}`",
             f"on {cpu_model()}, nbloss {nbloss.__version__}, numpy {np.__version__}; "
             "medians (minimum) per call; ratio = second / first median", "",
             "| dtype | N | case: first \\| second | first | second | ratio |",
             "|---|---|---|---|---|---|"]
    print("\n".join(lines[:2]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's shape warning of the (rows, 1) targets
        for dtype in args.dtypes.split(","):
            for n in sizes:
                for name, first, second in cases(n, np.dtype(dtype)):
                    (m1, b1), (m2, b2) = compare(first, second, args.rounds)
                    case = name.replace("|", "\\|")  # one Markdown cell
                    row = (f"| {dtype} | {n:.0e} | {case} | {fmt(m1)} ({fmt(b1)}) | "
                           f"{fmt(m2)} ({fmt(b2)}) | {m2 / m1:.2f} |")
                    lines.append(row)
                    print(row, flush=True)
    write_table(lines, args.out)


if __name__ == "__main__":
    main()
