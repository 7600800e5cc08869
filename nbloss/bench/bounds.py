"""The two bounds the benchmark times beside the libraries, as numba kernels.

- ``floor``: the simplest parallel streaming kernel that moves the same bytes as an
  operation (reads input and target; writes one new array for 'none', the gradient and the
  fused operation). No loss can be computed faster; nbloss / floor says how close it gets.
- ``compute``: the loss's arithmetic in one fastmath loop with no argument handling, a
  bound set by the arithmetic where the data sits in cache; torch / floor and
  torch / compute say how much faster than torch any implementation of the loss could be.
"""

import types

import numpy as np

# how the bounds compile: plain numba, with the fastmath flags each bound may take. The
# floor may reorder its sum (reassoc) and ignore the sign of zero (nsz); the compute bound
# takes them all: it is the bound that ignores NaN and inf.
FLOOR_OPTIONS = dict(cache=True, fastmath={"reassoc", "nsz"})
COMPUTE_OPTIONS = dict(cache=True, fastmath=True)

# bytes per operand from which a bound's kernel runs threaded, serial below (waking the
# thread pool costs more than a second core gains on less): the crossovers nbloss
# documents for its own kernels, so that a bound and nbloss switch at the same sizes
THREADED_FROM_BYTES = {"reduce": 384 * 1024, "elementwise": 288 * 1024, "fused": 288 * 1024}


def floor(op, a, b):
    """A zero-argument callable moving the bytes of ``op`` on input ``a`` and target ``b``."""
    k = _kernels("floor", _floor_functions, FLOOR_OPTIONS)
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
    k = _kernels("compute", _compute_functions, COMPUTE_OPTIONS)
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


def _kernels(name, functions, options):
    """An object whose methods are ``functions()``'s kernels compiled with ``options``,
    each called as ``method(n, *args)`` with ``args[0]`` an array of ``n`` elements:
    serial below ``THREADED_FROM_BYTES`` for that kind of kernel, threaded from there on.
    Compiled (and cached to disk) on first use, after one nbloss call: nbloss loads its
    threading layer (TBB) when it loads its kernels, and the bounds must run on the same
    one, which numba picks for the whole process at its first threaded kernel."""
    if name not in _BUILT:
        from numba import njit

        import nbloss

        nbloss.huber_loss(np.zeros(1), np.zeros(1))
        ns = {}
        for fn, kind in functions().items():
            variants = (njit(**options)(_renamed(fn, "_serial")), njit(parallel=True, **options)(fn))
            ns[fn.__name__] = staticmethod(
                lambda n, *args, _v=variants, _t=THREADED_FROM_BYTES[kind]:
                    _v[n * args[0].itemsize >= _t](*args))
        _BUILT[name] = type(name, (), ns)
    return _BUILT[name]


def _renamed(fn, suffix):
    """``fn`` under its name plus ``suffix``: numba's disk cache indexes a function by its
    qualified name, not by its compile options, so a serial and a threaded dispatcher of
    one function would overwrite each other's entries."""
    clone = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + suffix,
                               fn.__defaults__, fn.__closure__)
    clone.__qualname__ = fn.__qualname__ + suffix
    return clone


def threading_layer():
    """numba's threading layer in this process, the one nbloss and the bounds run on;
    one threaded floor kernel starts it if nothing has yet."""
    import numba

    z = np.zeros(THREADED_FROM_BYTES["reduce"] // 8)
    floor("mean", z, z)()
    return numba.threading_layer()
