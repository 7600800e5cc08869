"""The two bounds the benchmark times beside the libraries, as numba kernels.

- ``floor``: the simplest parallel streaming kernel that moves the same bytes as an
  operation (reads input and target; writes one new array for 'none', the gradient and the
  fused operation). No loss can be computed faster; nbloss / floor says how close it gets.
- ``compute``: the loss's arithmetic in one fastmath loop with no argument handling, a
  bound set by the arithmetic where the data sits in cache; torch / floor and
  torch / compute say how much faster than torch any implementation of the loss could be.
"""

import numpy as np


def floor(op, a, b):
    """A zero-argument callable moving the bytes of ``op`` on input ``a`` and target ``b``."""
    k = _kernels("floor", _floor_functions, fastmath={"reassoc", "nsz"})
    if op == "mean":
        return lambda: k.read2(a.size, a, b)
    if op == "fused":
        return lambda: k.read2_write1_sum(a.size, a, b, np.empty_like(a))
    return lambda: k.read2_write1(a.size, a, b, np.empty_like(a))


def compute(loss, op, a, b, param):
    """The loss's arithmetic and nothing else: ``huber(x) = q (|x| - q/2)`` with
    ``q = min(|x|, p)`` and its gradient ``clip(x, -p, p)``, divided by beta for
    smooth_l1, in one fastmath loop (any reordering, no NaN/inf care), summing in the
    input's dtype, called with no argument handling. No implementation of the loss, exact
    or not, is expected to beat it; torch / compute bounds the speed-up any could reach."""
    k = _kernels("compute", _compute_functions, fastmath=True)
    t = a.dtype.type
    n = a.size
    # every scalar in the input's dtype: a Python float would make numba compute a
    # float32 loss in float64
    p, inv, half = t(param), t(1 / param if loss == "smooth_l1" else 1), t(0.5)
    zero, scale = t(0), t(1 / n)
    if op == "mean":
        return lambda: k.loss_sum(n, a, b, p, inv, half, zero) / n
    if op == "none":
        return lambda: k.loss_each(n, a, b, p, inv, half, np.empty_like(a))
    if op == "grad":
        return lambda: k.grad(n, a, b, p, inv * scale, np.empty_like(a))
    return lambda: k.loss_sum_and_grad(n, a, b, p, inv, half, scale, zero,
                                       np.empty_like(a)) / n


def _floor_functions():
    """Streaming kernels with the memory traffic of each operation and no loss."""
    from numba import prange

    def read2(a, b):
        acc = 0.0
        for i in prange(a.size):
            acc += a[i] + b[i]
        return acc

    def read2_write1(a, b, out):
        for i in prange(a.size):
            out[i] = a[i] - b[i]
        return out

    def read2_write1_sum(a, b, out):
        acc = 0.0
        for i in prange(a.size):
            x = a[i] - b[i]
            out[i] = x
            acc += x
        return acc, out

    return {read2: "reduce", read2_write1: "elementwise", read2_write1_sum: "fused"}


def _compute_functions():
    from numba import prange

    def loss_sum(a, b, p, inv, half, zero):
        acc = zero
        for i in prange(a.size):
            z = abs(a[i] - b[i])
            q = min(z, p)
            acc += q * (z - half * q) * inv
        return acc

    def loss_each(a, b, p, inv, half, out):
        for i in prange(a.size):
            z = abs(a[i] - b[i])
            q = min(z, p)
            out[i] = q * (z - half * q) * inv
        return out

    def grad(a, b, p, factor, out):
        for i in prange(a.size):
            out[i] = max(min(a[i] - b[i], p), -p) * factor
        return out

    def loss_sum_and_grad(a, b, p, inv, half, scale, zero, out):
        acc = zero
        factor = inv * scale
        for i in prange(a.size):
            x = a[i] - b[i]
            z = abs(x)
            q = min(z, p)
            acc += q * (z - half * q) * inv
            out[i] = max(min(x, p), -p) * factor
        return acc

    return {loss_sum: "reduce", loss_each: "elementwise", grad: "elementwise",
            loss_sum_and_grad: "fused"}


_BUILT = {}


def _kernels(name, functions, fastmath):
    """An object whose methods are ``functions()``'s kernels compiled with ``fastmath``,
    each called as ``method(n, *args)`` with ``args[0]`` an array of ``n`` elements:
    serial below nbloss's threshold for that kind of kernel, threaded above, like nbloss.
    Compiled (and cached to disk) on first use."""
    if name not in _BUILT:
        from numba import njit

        from .. import _cpu

        limits = {"reduce": _cpu.PARALLEL_MIN_BYTES_SUM, "elementwise": _cpu.PARALLEL_MIN_BYTES,
                  "fused": _cpu.PARALLEL_MIN_BYTES}
        ns = {}
        for fn, kind in functions().items():
            # compiled like nbloss's kernels (the same vector widths), so that a bound
            # differs from nbloss by what the code does, not by how it was compiled
            opts = dict(cache=True, fastmath=fastmath, pipeline_class=_cpu.WideVectorCompiler)
            variants = (njit(**opts)(_cpu._serial_clone(fn)), njit(parallel=True, **opts)(fn))
            ns[fn.__name__] = staticmethod(
                lambda n, *args, _v=variants, _t=limits[kind]:
                    _v[n * args[0].itemsize >= _t](*args))
        _BUILT[name] = type(name, (), ns)
    return _BUILT[name]
