"""The losses of one element, for your own loops and kernels: Python, ``@njit`` (serial or
``parallel=True``), ``@vectorize`` ufuncs and ``@cuda.jit`` kernels.

With ``x = input - target`` (a float32 or float64 number; a Python number is float64):

- ``smooth_l1(x, beta)``, ``smooth_l1_grad(x, beta)``, ``smooth_l1_hess(x, beta)``;
- ``huber(x, delta)``, ``huber_grad(x, delta)``, ``huber_hess(x, delta)``:

the loss, its derivative d/dx and its second derivative, in x's float type (the
parameter is rounded to it first). They are the formulas of ``nbloss._math`` that the
array functions' kernels compile, so each result is, to the bit, the element of
``smooth_l1_loss(..., reduction='none')``, ``smooth_l1_loss_grad(..., 'none')`` and
``smooth_l1_loss_hess_diag(..., 'none')`` (``huber_*`` likewise) at that ``x``: NaN,
inf, beta = 0 (exact L1: ``|x|``, ``sign(x)`` with 0 at 0, Hessian 0) and a beta so
small that 1/beta overflows in x's type (also exact L1) included.

Bad parameters raise what the array functions raise: ``ValueError`` for a negative or
NaN beta and for delta <= 0 or NaN (``TypeError`` for a parameter that is no real
number, from Python). Inside compiled code the check happens at each call, where numba
can raise it: from Python, ``@njit`` and ``@vectorize``; numba loses an exception raised
in a ``prange`` loop and a CUDA kernel cannot raise (a bad parameter gives NaN there),
so check the parameter once before such a loop.

Importing this module imports neither numba nor anything compiled. Inside numba code the
functions are numba overloads, registered when numba starts compiling (the package's
``numba_extensions`` and ``numba_cuda_extensions`` entry points); from Python each is a
numba ufunc compiled on its first call, so ``x`` may also be an array.
"""

import numbers
import threading

import numpy as np

from . import _validate

__all__ = ["huber", "huber_grad", "huber_hess", "smooth_l1", "smooth_l1_grad", "smooth_l1_hess"]


def smooth_l1(x, beta):
    """``0.5 x^2 / beta if |x| < beta else |x| - 0.5 beta`` (``|x|`` when beta is 0)."""
    return _call("smooth_l1", x, beta)


def smooth_l1_grad(x, beta):
    """d smooth_l1 / dx: ``clip(x / beta, -1, 1)`` (``sign(x)``, 0 at 0, when beta is 0);
    NaN at NaN, +-1 at +-inf."""
    return _call("smooth_l1_grad", x, beta)


def smooth_l1_hess(x, beta):
    """d^2 smooth_l1 / dx^2: ``1 / beta if |x| < beta else 0`` (0 at the boundary, at
    NaN, and everywhere when beta is 0), torch's double backward."""
    return _call("smooth_l1_hess", x, beta)


def huber(x, delta):
    """``0.5 x^2 if |x| < delta else delta (|x| - 0.5 delta)``."""
    return _call("huber", x, delta)


def huber_grad(x, delta):
    """d huber / dx: ``clip(x, -delta, delta)``; NaN at NaN."""
    return _call("huber_grad", x, delta)


def huber_hess(x, delta):
    """d^2 huber / dx^2: ``1 if |x| < delta else 0`` (0 at the boundary and at NaN)."""
    return _call("huber_hess", x, delta)


FUNCTIONS = (smooth_l1, smooth_l1_grad, smooth_l1_hess, huber, huber_grad, huber_hess)

_ufuncs = {}
_compiled = set()
_lock = threading.Lock()


def _call(name, x, param):
    """The Python call: the parameter checked as the array functions check it, then the
    compiled ufunc of ``name`` (built on first use)."""
    if isinstance(param, numbers.Real) or np.ndim(param) == 0:
        param = (_validate.check_beta(param, name) if name.startswith("smooth_l1")
                 else _validate.check_delta(param, name))
    if not (type(x) is float or isinstance(x, (np.float32, np.float64))):
        x = _operand(x)
    ufunc = _ufuncs.get(name)
    if ufunc is None:
        with _lock:
            ufunc = _ufuncs.get(name) or _ufunc(globals()[name])
            _ufuncs[name] = ufunc
    key = (name, np.asarray(x).dtype, type(param))
    with np.errstate(all="ignore"):  # as the array functions: no warning for inf or NaN
        if key in _compiled:
            return ufunc(x, param)
        with _lock:  # the first call of a signature compiles it: once, in one thread
            result = ufunc(x, param)
            _compiled.add(key)
            return result


def _ufunc(fn):
    """``fn`` from Python: a numba ufunc (compiled per dtype on first use) whose body calls
    ``fn``'s overload, so Python gets the compiled code's bits. (numba registers the
    overload through the entry point before it compiles.)"""
    import numba

    def element(x, param):
        return fn(x, param)

    element.__name__ = element.__qualname__ = fn.__name__
    return numba.vectorize(nopython=True)(element)


def _operand(x):
    """``x`` as the ufunc takes it: a float32 or float64 array or NumPy scalar, a Python
    int as a float64."""
    if isinstance(x, bool) or isinstance(x, np.bool_):
        raise TypeError(f"x must be a float, got the bool {x!r}")
    if isinstance(x, int):
        return float(_validate.python_float(x, "x"))
    array = np.asarray(x)
    if array.dtype not in (_validate.FLOAT32, _validate.FLOAT64):
        raise TypeError(f"x must be float32 or float64 (or a Python number), got dtype "
                        f"{array.dtype}; convert it, e.g. x.astype(np.float32)")
    return x
