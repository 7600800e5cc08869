"""Robust linear regression with the residuals formed inside your own compiled loop.

The objective is ``sum_i huber(a_i . w - y_i; delta)``. With the array functions, a step
builds ``pred = A @ w`` and the gradient w.r.t. pred, two N-sized arrays, then
``A.T @ grad_pred``. Here each residual is computed in the user's own
``@njit(parallel=True)`` loop and passed straight to ``nbloss.elementwise``: the loss, the
gradient w.r.t. w and the reduction happen in one pass over A, and no N-sized array
exists. The same loop as a ``@cuda.jit`` kernel is :func:`cuda_value_and_grad`.

Rows are cut into fixed blocks of ``BLOCK`` rows, summed in order within a block, and the
block sums added in order: the same bits for any thread count.

    python examples/robust_regression_numba.py            # fit, beside scipy's least_squares
    python examples/robust_regression_numba.py --measure  # time and peak memory, both ways
"""

import json
import resource
import subprocess
import sys
import time

import numpy as np
from numba import float64, njit, prange

import nbloss
from nbloss import elementwise

BLOCK = 4096  # rows per block of the fused loop


@njit(parallel=True)
def value_and_grad(A, y, w, delta):
    """(sum_i huber(a_i . w - y_i; delta), its gradient w.r.t. w) in one pass over A."""
    n, d = A.shape
    blocks = (n + BLOCK - 1) // BLOCK
    losses = np.zeros(blocks)
    grads = np.zeros((blocks, d))
    for j in prange(blocks):
        total = 0.0
        acc = np.zeros(d)  # this block's gradient, apart from the other threads' blocks
        for i in range(j * BLOCK, min(n, (j + 1) * BLOCK)):
            r = -y[i]
            for k in range(d):
                r += A[i, k] * w[k]
            total += elementwise.huber(r, delta)
            g = elementwise.huber_grad(r, delta)
            for k in range(d):
                acc[k] += g * A[i, k]
        losses[j] = total
        grads[j] = acc
    loss = 0.0
    grad = np.zeros(d)
    for j in range(blocks):
        loss += losses[j]
        grad += grads[j]
    return loss, grad


@njit(parallel=True)
def residuals(A, y, w):
    """``A @ w - y`` with the fused loop's arithmetic (for the checks: an N-sized array)."""
    r = np.empty(A.shape[0])
    for i in prange(A.shape[0]):
        s = -y[i]
        for k in range(A.shape[1]):
            s += A[i, k] * w[k]
        r[i] = s
    return r


def two_step_value_and_grad(A, y, w, delta):
    """The array functions' way: ``pred`` and ``grad_pred`` are N-sized arrays."""
    loss, grad_pred = nbloss.huber_loss_value_and_grad(A @ w, y, delta, "sum")
    return float(loss), A.T @ grad_pred


def fit(A, y, delta, objective=value_and_grad, gtol=1e-10):
    """L-BFGS-B on ``objective(A, y, w, delta) -> (loss, gradient)``."""
    from scipy.optimize import minimize

    result = minimize(lambda w: objective(A, y, w, delta), np.zeros(A.shape[1]), jac=True,
                      method="L-BFGS-B", options={"gtol": gtol, "ftol": 1e-15, "maxiter": 10_000})
    return result.x, result


# -- the same loop as a CUDA kernel ---------------------------------------------------------

MAX_FEATURES = 16


def cuda_value_and_grad(A, y, w, delta, blocks=32, threads=64):
    """:func:`value_and_grad` on CUDA: each thread adds its rows' losses and gradients
    (grid-stride, in row order) into its own slot; the host adds the slots in order. The
    device arrays hold one slot per thread, never one per row."""
    kernel = _cuda_kernel()
    n_threads = blocks * threads
    d_losses = cuda.device_array(n_threads)
    d_grads = cuda.device_array((n_threads, A.shape[1]))
    kernel[blocks, threads](cuda.to_device(A), cuda.to_device(y), cuda.to_device(w), delta,
                            d_losses, d_grads)
    return float(np.sum(d_losses.copy_to_host())), d_grads.copy_to_host().sum(axis=0)


cuda = None  # numba.cuda, imported on first use: the CPU functions above do not need it


def _fused_kernel(A, y, w, delta, losses, grads):
    """:func:`value_and_grad`'s loop, one grid-stride share of the rows per thread."""
    t = cuda.grid(1)
    g_acc = cuda.local.array(MAX_FEATURES, float64)
    d = A.shape[1]
    for k in range(d):
        g_acc[k] = 0.0
    total = 0.0
    for i in range(t, A.shape[0], cuda.gridsize(1)):
        r = -y[i]
        for k in range(d):
            r += A[i, k] * w[k]
        total += elementwise.huber(r, delta)
        g = elementwise.huber_grad(r, delta)
        for k in range(d):
            g_acc[k] += g * A[i, k]
    losses[t] = total
    for k in range(d):
        grads[t, k] = g_acc[k]


_kernels = []


def _cuda_kernel():
    global cuda
    if not _kernels:
        from numba import cuda

        _kernels.append(cuda.jit(_fused_kernel))
    return _kernels[0]


# -- measurement -----------------------------------------------------------------------------

def _measure_one(method, n, d, repeats):
    """Run in a child process: the seconds per evaluation (best of ``repeats``) and the
    peak memory (ru_maxrss) the evaluations added to the data's."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    w = rng.standard_normal(d)
    fn = value_and_grad if method == "fused" else two_step_value_and_grad
    fn(A[:1000], y[:1000], w, 1.0)  # compile (or load) first
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(A, y, w, 1.0)
        times.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": min(times), "extra_mib": (after - before) / 1024}


def measure(sizes=(1_000_000, 10_000_000), d=4, repeats=5):
    """One child process per method and size (peak memory is per process)."""
    rows = []
    for n in sizes:
        for method in ("two-step", "fused"):
            out = subprocess.run([sys.executable, __file__, "--measure-one", method, str(n),
                                  str(d), str(repeats)], capture_output=True, text=True, check=True)
            rows.append((n, method, json.loads(out.stdout.strip().splitlines()[-1])))
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), "unknown CPU")
    print(f"{cpu}; {d} features, float64, best of {repeats}")
    print("| rows | method | time per evaluation | peak memory added |")
    print("|---|---|---|---|")
    for n, method, r in rows:
        print(f"| {n:,} | {method} | {r['seconds'] * 1e3:.1f} ms | {r['extra_mib']:.0f} MiB |")
    return rows


def make_data(n=2000, n_features=3, outlier_fraction=0.15, seed=0):
    """y = A @ w_true + noise, with a fraction of gross outliers; A has a column of ones."""
    rng = np.random.default_rng(seed)
    A = np.column_stack([rng.standard_normal((n, n_features)), np.ones(n)])
    w_true = rng.uniform(-3, 3, n_features + 1)
    y = A @ w_true + rng.normal(0, 0.5, n)
    outliers = rng.random(n) < outlier_fraction
    y[outliers] += rng.choice([-1, 1], outliers.sum()) * rng.uniform(10, 40, outliers.sum())
    return A, y, w_true


def main(n=20_000, delta=1.0, seed=0):
    from scipy.optimize import least_squares

    A, y, w_true = make_data(n, seed=seed)
    w, result = fit(A, y, delta)
    lsq = least_squares(lambda v: A @ v - y, np.zeros(A.shape[1]), loss="huber", f_scale=delta,
                        ftol=1e-12, xtol=1e-12, gtol=1e-12).x
    print(f"Robust regression, {n} rows, Huber delta = {delta}")
    for name, v in [("truth", w_true), (f"fused @njit loop + L-BFGS-B ({result.nfev} evaluations)", w),
                    ("scipy least_squares(loss='huber')", lsq)]:
        print(f"  {name:<52} " + " ".join(f"{c:9.5f}" for c in v))
    return A, y, w, lsq


if __name__ == "__main__":
    if sys.argv[1:2] == ["--measure-one"]:
        method, n, d, repeats = sys.argv[2], *map(int, sys.argv[3:6])
        print(json.dumps(_measure_one(method, n, d, repeats)))
    elif sys.argv[1:2] == ["--measure"]:
        measure()
    else:
        main()
