"""``python -m nbloss warmup``: compile the common kernel variants into numba's disk cache
ahead of use (a container image's build step, a CI job's setup), so that a later
process's first calls load machine code instead of compiling it."""

import subprocess
import sys
import time
import warnings

import numpy as np

# (label, function name, parameter): the three kernel kinds. Smooth L1 with beta = 1 runs
# the Huber kernels, and with beta = 0 the L1 ones.
LOSSES = (("huber", "huber", 1.0), ("smooth_l1", "smooth_l1", 0.5), ("l1", "smooth_l1", 0.0))
# one call of each operation ('mean' and 'none' loss, gradient, fused 'mean' and 'none',
# Hessian diagonal), each compiling its kernel variant
OPERATIONS = (
    lambda nb, f, a, b, p: getattr(nb, f"{f}_loss")(a, b, p),
    lambda nb, f, a, b, p: getattr(nb, f"{f}_loss")(a, b, p, "none"),
    lambda nb, f, a, b, p: getattr(nb, f"{f}_loss_grad")(a, b, p),
    lambda nb, f, a, b, p: getattr(nb, f"{f}_loss_value_and_grad")(a, b, p),
    lambda nb, f, a, b, p: getattr(nb, f"{f}_loss_value_and_grad")(a, b, p, "none"),
    lambda nb, f, a, b, p: getattr(nb, f"{f}_loss_hess_diag")(a, b, p),
)
# targets of a backward broadcast along axes of an (n // 8, 2, 4) input, each compiling
# the gradient kernel for its view and the sum of the target's gradient (_sum_to's
# kernels: over the last axes, over a middle one; over all, a number, NumPy sums)
BROADCAST_TARGETS = (lambda rows: (rows, 1, 1), lambda rows: (rows, 1, 4), lambda rows: ())
FIRST_CALL = ("import time; t = time.perf_counter(); import numpy as np, nbloss; "
              "a = np.ones(1000, np.float32); nbloss.huber_loss_value_and_grad(a, a); "
              "print(time.perf_counter() - t)")


def sizes(dtype):
    """A serial and a threaded size for ``dtype`` (see ``_cpu.kernels``)."""
    from . import _cpu

    return 1000, _cpu.PARALLEL_MIN_BYTES_SUM // np.dtype(dtype).itemsize


def warm(dtypes, out=sys.stdout):
    """Run every operation of every loss kind in each of ``dtypes``, serial and threaded,
    against an array target and a number target: each call compiles its kernel variant
    and saves it in numba's cache, or loads it when already there. Prints a line per
    dtype and loss; returns the number of calls."""
    import nbloss

    calls = 0
    for dtype in dtypes:
        for label, name, param in LOSSES:
            start = time.perf_counter()
            for n in sizes(dtype):
                a = np.linspace(-3, 3, n, dtype=dtype)
                for target in (np.zeros(n, dtype), 0.0):
                    for call in OPERATIONS:
                        call(nbloss, name, a, target, param)
                        calls += 1
            print(f"  {np.dtype(dtype).name:8} {label:10} {2 * 2 * len(OPERATIONS)} variants "
                  f"in {time.perf_counter() - start:5.1f} s", file=out, flush=True)
        start = time.perf_counter()
        for n in sizes(dtype):
            a = np.linspace(-3, 3, n, dtype=dtype).reshape(-1, 2, 4)
            for target_shape in BROADCAST_TARGETS:
                target = np.zeros(target_shape(a.shape[0]), dtype)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # torch's shape warning
                    nbloss.huber_loss_backward(1.0, a, target if target.ndim else 0.0)
                calls += 1
        print(f"  {np.dtype(dtype).name:8} {'broadcasts':10} {2 * len(BROADCAST_TARGETS)} variants "
              f"in {time.perf_counter() - start:5.1f} s", file=out, flush=True)
    return calls


def cache_folder():
    """Where numba saves nbloss's kernels."""
    from . import _cpu

    cache = getattr(_cpu.FAMILIES[0].serial.loss_sum, "_cache", None)
    return getattr(cache, "_cache_path", None) or "(in memory: no writable cache folder)"


def run(args):
    dtypes = args.dtypes
    print(f"compiling nbloss's common kernel variants for {', '.join(dtypes)} into numba's "
          "disk cache (each once; a second run loads them)", flush=True)
    start = time.perf_counter()
    calls = warm(dtypes)
    print(f"{calls} calls in {time.perf_counter() - start:.1f} s; cache: {cache_folder()}")
    first = subprocess.run([sys.executable, "-c", FIRST_CALL], capture_output=True, text=True,
                           check=False)
    if first.returncode == 0:
        print(f"a new process now reaches its first result in {float(first.stdout):.2f} s "
              "(import nbloss and a fused float32 call)")
    return 0
