"""The backward's sum of a gradient back to a broadcast operand's shape: NumPy's sum (what
the host ran before) against nbloss's kernels (``nbloss/_sum_to.py``, the same bits),
the sum alone and a whole backward with that target.

    python benchmarks/sum_to.py --out benchmarks/results/cpu-2core/sum-to.md

Prints and writes a Markdown table: medians (minimum) per call of the two, timed in
alternating rounds in one process (see ``calls.py``), and their ratio, NumPy / kernel
(above 1: the kernel is the faster). Where the host leaves a layout to NumPy (one long
summed run, as for a number target) the "kernel" column is NumPy's sum too.
"""

import argparse
import platform
import sys
import warnings

import numpy as np

import nbloss
from nbloss import _sum_to
from calls import compare, cpu_model

SIZES = (10_000, 100_000, 1_000_000, 10_000_000)


def numpy_sum_to(full, shape):
    lead = full.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape)
                                      if d == 1 and full.shape[lead + i] != 1)
    return full.sum(axis=axes, keepdims=True).reshape(shape)


def kernel_sum_to(full, shape):
    out = _sum_to.sum_to_shape(full, shape)
    return numpy_sum_to(full, shape) if out is None else out


def layouts(n):
    """(name, the loss's shape, the operand's shape): rows of 100, images of 4 channels."""
    rows = n // 100
    yield "(rows, 1)", (rows, 100), (rows, 1)
    yield "(1, cols)", (rows, 100), (1, 100)
    yield "(N, 1, HW)", (n // 400, 4, 100), (n // 400, 1, 100)
    yield "number", (n,), ()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    lines = [f"`python benchmarks/sum_to.py{' --out ' + args.out if args.out else ''}`",
             f"on {cpu_model()}, nbloss {nbloss.__version__}, numpy {np.__version__}, "
             f"Python {platform.python_version()}; medians (minimum) per call; "
             "ratio = NumPy / kernel", "",
             "| dtype | N | operand | what | NumPy's sum | kernel | ratio |",
             "|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    rng = np.random.default_rng(0)
    real = _sum_to.sum_to_shape
    for dtype in (np.float32, np.float64):
        for n in SIZES:
            for name, shape, op_shape in layouts(n):
                full = rng.standard_normal(shape).astype(dtype)
                target = rng.standard_normal(op_shape).astype(dtype) if op_shape else 0.0

                def backward():
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # torch's shape warning
                        return nbloss.smooth_l1_loss_backward(1.0, full, target)

                def numpy_backward():
                    _sum_to.sum_to_shape = lambda full, shape, anywhere=False: None
                    try:
                        return backward()
                    finally:
                        _sum_to.sum_to_shape = real

                for what, first, second in (
                        ("sum", lambda: numpy_sum_to(full, op_shape), lambda: kernel_sum_to(full, op_shape)),
                        ("backward", numpy_backward, backward)):
                    (a, a_min), (b, b_min) = compare(first, second, args.rounds)
                    line = (f"| {np.dtype(dtype).name} | {n:.0e} | {name} | {what} | "
                            f"{a * 1e6:.1f} us ({a_min * 1e6:.1f}) | {b * 1e6:.1f} us ({b_min * 1e6:.1f}) "
                            f"| {a / b:.2f} |")
                    lines.append(line)
                    print(line, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
