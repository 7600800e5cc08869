"""The public array functions inside a user's ``@njit`` function: the implementations that
``_numba``'s overloads of ``smooth_l1_loss``, ``huber_loss`` and their ``_grad``,
``_value_and_grad`` and ``_hess_diag`` compile.

What a compiled call takes: input a float32 or float64 array of any dimension and
layout; target an array of input's shape or a number (which takes the computation dtype,
as a Python number does from Python); weight None or an array of input's shape; out None
or a C-contiguous array of input's shape in the computation dtype; ``reduction`` a
string ('none', 'mean' or 'sum'), a constant one for ``*_loss`` and ``*_value_and_grad``,
whose result is an array for 'none' and a scalar otherwise. The computation dtype is
float64 if any operand is, else float32; an operand in the other dtype is converted to
it first (the kernels would widen it exactly: the same bits).

What runs is the host call's: the same checks, the same scalars (``_call.scalars``,
``_call.reduction_scale``, ``_call.total_to_result``, written out here for compiled
code), and the same ``_cpu`` kernels, serial or threaded by the same size thresholds,
reached through one adapter (:func:`kernel_adapter`), so the results are the Python
call's to the bit. A bad argument raises the Python call's exception class from the
compiled code: ``ValueError`` for a negative or NaN beta, delta <= 0 or NaN, an unknown
reduction, shapes that differ, a wrong ``out=`` (shape, overlap with an operand, or with
a reduced loss); a wrong type is numba's ``TypingError`` at compile time.
"""

import functools
import math

import numpy as np
from numba import types
from numba.core import errors
from numba.extending import overload, register_jitable
from numba.np.numpy_support import as_dtype

from . import _cpu, _math

NONE, MEAN, SUM = 0, 1, 2


# -- the one place that knows the _cpu kernels' signatures -------------------------------

@functools.lru_cache(maxsize=None)
def kernel_adapter(kind):
    """The ``_cpu`` kernels of loss ``kind`` as functions for compiled code, each picking
    the serial or threaded kernel by the size thresholds of ``_cpu.kernels``:
    ``(loss_each, loss_sum, grad_each, hess_each)`` with the host's arguments for calls
    without an upstream gradient (upstream None, upstream_value 1)."""
    serial, threaded = _cpu.FAMILIES[kind].serial, _cpu.FAMILIES[kind].parallel
    s_each, s_sum, s_grad, s_hess = serial
    # the threaded dispatchers under _tbb.fork_safe's Python wrapper
    t_each, t_sum, t_grad, t_hess = (k.__wrapped__ for k in threaded)
    limit, limit_sum = _cpu.PARALLEL_MIN_BYTES, _cpu.PARALLEL_MIN_BYTES_SUM
    again = _cpu.FAMILIES[kind].loss_sum_again

    @register_jitable
    def loss_each(a, b, w, p, half, half_p, loss_out, grad_out):
        if a.size * a.itemsize >= limit:
            t_each(a, b, w, p, half, half_p, loss_out, grad_out)
        else:
            s_each(a, b, w, p, half, half_p, loss_out, grad_out)

    @register_jitable
    def loss_sum(a, b, w, p, half, half_p, scale, grad_out):
        if a.size * a.itemsize >= (limit_sum if grad_out is None else limit):
            total = t_sum(a, b, w, p, half, half_p, scale, grad_out)
        else:
            total = s_sum(a, b, w, p, half, half_p, scale, grad_out)
        if math.isfinite(total):
            return total
        return again(a, b, w, p, half, half_p)

    @register_jitable
    def grad_each(a, b, w, p, scale, one, grad_out):
        if a.size * a.itemsize >= limit:
            t_grad(a, b, w, None, p, scale, one, grad_out)
        else:
            s_grad(a, b, w, None, p, scale, one, grad_out)

    @register_jitable
    def hess_each(a, b, w, p, half, scale, hess_out):
        if a.size * a.itemsize >= limit:
            t_hess(a, b, w, p, half, scale, hess_out)
        else:
            s_hess(a, b, w, p, half, scale, hess_out)

    return loss_each, loss_sum, grad_each, hess_each


@functools.lru_cache(maxsize=None)
def _operations(loss):
    """The four operations of ``loss`` with a run-time flag ``l1``: smooth_l1 is exact L1
    when beta rounds to 0 or 1/beta overflows in the computation dtype (as
    ``_call.scalars`` decides; its shortcut of beta = 1 to huber's kernels gives the
    same bits, so compiled code keeps smooth_l1's)."""
    if loss == "huber":
        main = alt = kernel_adapter(_math.HUBER)
    else:
        main, alt = kernel_adapter(_math.SMOOTH_L1), kernel_adapter(_math.L1)
    m_each, m_sum, m_grad, m_hess = main
    a_each, a_sum, a_grad, a_hess = alt

    @register_jitable
    def loss_each(l1, a, b, w, p, half, half_p, loss_out, grad_out):
        if l1:
            a_each(a, b, w, p, half, half_p, loss_out, grad_out)
        else:
            m_each(a, b, w, p, half, half_p, loss_out, grad_out)

    @register_jitable
    def loss_sum(l1, a, b, w, p, half, half_p, scale, grad_out):
        if l1:
            return a_sum(a, b, w, p, half, half_p, scale, grad_out)
        return m_sum(a, b, w, p, half, half_p, scale, grad_out)

    @register_jitable
    def grad_each(l1, a, b, w, p, scale, one, grad_out):
        if l1:
            a_grad(a, b, w, p, scale, one, grad_out)
        else:
            m_grad(a, b, w, p, scale, one, grad_out)

    @register_jitable
    def hess_each(l1, a, b, w, p, half, scale, hess_out):
        if l1:
            a_hess(a, b, w, p, half, scale, hess_out)
        else:
            m_hess(a, b, w, p, half, scale, hess_out)

    return loss_each, loss_sum, grad_each, hess_each


# -- argument handling in compiled code ----------------------------------------------------

@register_jitable
def _reduction_code(reduction):
    if reduction == "none":
        return NONE
    if reduction == "mean":
        return MEAN
    if reduction == "sum":
        return SUM
    raise ValueError("invalid value for reduction (expected 'none', 'mean' or 'sum')")


def _operand(x, n, one):
    """``x`` as the kernels read it: a flat C-contiguous array of ``one``'s dtype (a view
    when it is one already), a number repeated ``n`` times, or None."""


@overload(_operand)
def _operand_of_type(x, n, one):
    if isinstance(x, types.Array):
        if x.dtype == one:
            return lambda x, n, one: x.ravel()
        dtype = as_dtype(one)
        return lambda x, n, one: x.ravel().astype(dtype)
    if isinstance(x, types.Number):
        ft = one  # a Python number takes the dtype: rounded to it, as NumPy does
        return lambda x, n, one: np.full(n, ft(x))
    return lambda x, n, one: None


def _shape_matches(x, shape):
    """True for a number or None; for an array, whether it has ``shape``."""


@overload(_shape_matches)
def _shape_matches_of_type(x, shape):
    if isinstance(x, types.Array):
        if x.ndim != len(shape):
            return lambda x, shape: False
        return lambda x, shape: x.shape == shape
    return lambda x, shape: True


@register_jitable
def _extent(x):
    """The [first, last) byte addresses of array ``x``'s elements."""
    lo = hi = x.ctypes.data
    if x.size == 0:
        return lo, lo
    for k in range(x.ndim):
        step = (x.shape[k] - 1) * x.strides[k]
        if step < 0:
            lo += step
        else:
            hi += step
    return lo, hi + x.itemsize


def _overlaps(out, x):
    """Whether array ``out`` shares memory with ``x`` (False for a number or None)."""


@overload(_overlaps)
def _overlaps_of_type(out, x):
    if isinstance(x, types.Array):
        def overlaps(out, x):
            lo, hi = _extent(out)
            x_lo, x_hi = _extent(x)
            return lo < x_hi and x_lo < hi
        return overlaps
    return lambda out, x: False


def _result_buffer(out, shape, one, input, target, weight):
    """Where a result of ``shape`` goes: ``out`` (checked) or a new array."""


@overload(_result_buffer)
def _result_buffer_of_type(out, shape, one, input, target, weight):
    if not isinstance(out, types.Array):
        dtype = as_dtype(one)
        return lambda out, shape, one, input, target, weight: np.empty(shape, dtype)

    def checked(out, shape, one, input, target, weight):
        if not _shape_matches(out, shape):
            raise ValueError("out must have input's shape")
        if _overlaps(out, input) or _overlaps(out, target) or _overlaps(out, weight):
            raise ValueError("out shares memory with an operand: nbloss never writes into "
                             "its inputs")
        return out
    return checked


def _refuse_out(out):
    """Raise ValueError when ``out`` is an array: a reduced loss is a scalar."""


@overload(_refuse_out)
def _refuse_out_of_type(out):
    if isinstance(out, types.Array):
        def refuse(out):
            raise ValueError("out= is only for reduction='none'")
        return refuse
    return lambda out: None


def _parameter_check(loss, name, ft):
    """``check(param) -> (p, l1)``: the parameter checked as ``_validate`` checks it
    (ValueError) and rounded to ``ft``, and whether the loss is exact L1 there."""
    if loss == "smooth_l1":
        nan_message = f"{name}: beta must not be NaN"
        range_message = f"{name} does not support negative values for beta"

        @register_jitable
        def check(beta):
            if beta != beta:
                raise ValueError(nan_message)
            if beta < 0:
                raise ValueError(range_message)
            p = ft(beta)
            return p, p == 0 or not np.isfinite(ft(1) / p)
        return check
    nan_message = f"{name}: delta must not be NaN"
    range_message = f"{name} does not support non-positive values for delta"

    @register_jitable
    def check(delta):
        if delta != delta:
            raise ValueError(nan_message)
        if not delta > 0:
            raise ValueError(range_message)
        return ft(delta), False
    return check


# -- typing ------------------------------------------------------------------------------

def _absent(t):
    """None, as a numba type (or an omitted argument whose default is None)."""
    return (t is None or isinstance(t, types.NoneType)
            or (isinstance(t, types.Omitted) and t.value is None))


def _literal_reduction(reduction):
    """The reduction's value when known at compile time, else None."""
    if isinstance(reduction, str):  # the default, as numba's typing passes it
        return reduction
    if isinstance(reduction, types.StringLiteral):
        return reduction.literal_value
    if isinstance(reduction, types.Omitted):
        return reduction.value
    return None


def _float_array(t):
    return isinstance(t, types.Array) and isinstance(t.dtype, types.Float) and t.dtype.bitwidth in (32, 64)


def _check_types(name, op, input, target, param, reduction, weight, out):
    """The computation float type; raises TypingError naming what is wrong."""
    where = f"nbloss.{name} in compiled code"
    if not _float_array(input):
        raise errors.TypingError(f"{where}: input must be a float32 or float64 array, got {input}")
    if not (_float_array(target) or isinstance(target, (types.Float, types.Integer))):
        raise errors.TypingError(f"{where}: target must be a float32 or float64 array or a "
                                 f"number, got {target}")
    value = param.value if isinstance(param, types.Omitted) else param
    if not isinstance(value, (types.Float, types.Integer, float, int)):
        raise errors.TypingError(f"{where}: the parameter must be a real number, got {param}")
    if not isinstance(reduction, (types.UnicodeType, types.StringLiteral, types.Omitted, str)):
        raise errors.TypingError(f"{where}: reduction must be a string, got {reduction}")
    if not (_absent(weight) or _float_array(weight)):
        raise errors.TypingError(f"{where}: weight must be None or a float32 or float64 "
                                 f"array, got {weight}")
    arrays = [t for t in (input, target, weight) if isinstance(t, types.Array)]
    ft = types.float64 if any(t.dtype == types.float64 for t in arrays) else types.float32
    if not _absent(out) and not (isinstance(out, types.Array) and out.dtype == ft
                                 and out.layout == "C"):
        raise errors.TypingError(f"{where}: out must be None or a C-contiguous {ft} array "
                                 f"(the computation dtype), got {out}")
    if op in ("loss", "value_and_grad") and _literal_reduction(reduction) is None:
        raise errors.TypingError(f"{where}: reduction must be a constant string here (the "
                                 "result is an array for 'none' and a scalar otherwise), "
                                 "e.g. reduction='sum'")
    return ft


def implementation(name, loss, op, input, target, param, reduction, weight, out):
    """The compiled body ``(input, target, param, reduction, weight, out)`` of public
    function ``name`` (``loss``, operation ``op``) for these numba types."""
    ft = _check_types(name, op, input, target, param, reduction, weight, out)
    check = _parameter_check(loss, name, ft)
    loss_each, loss_sum, grad_each, hess_each = _operations(loss)

    @register_jitable
    def prologue(input, target, param, reduction, weight):
        """(p, l1, reduction code, a, b, w, half, half_p, scale, one): the host call's
        operands and scalars."""
        p, l1 = check(param)
        red = _reduction_code(reduction)
        if not _shape_matches(target, input.shape):
            raise ValueError("target must be a number or an array of input's shape (compiled "
                             "code does not broadcast)")
        if not _shape_matches(weight, input.shape):
            raise ValueError("weight must be None or an array of input's shape")
        one = ft(1)
        n = input.size
        half = ft(0.5)
        scale = ft(1.0 / n) if red == MEAN and n else one
        return (p, l1, red, _operand(input, n, one), _operand(target, n, one),
                _operand(weight, n, one), half, half * p, scale, one)

    @register_jitable
    def to_result(total, n, red):
        """``_call.total_to_result``: the float64 total divided for 'mean', rounded."""
        if red == MEAN:
            total = total / n if n else np.nan
        return ft(total)

    reduced = _literal_reduction(reduction) != "none"
    if op == "loss" and not reduced:
        def body(input, target, param, reduction, weight, out):
            p, l1, red, a, b, w, half, half_p, scale, one = prologue(input, target, param,
                                                                      reduction, weight)
            buf = _result_buffer(out, input.shape, one, input, target, weight)
            loss_each(l1, a, b, w, p, half, half_p, buf.ravel(), None)
            return buf
    elif op == "loss":
        def body(input, target, param, reduction, weight, out):
            p, l1, red, a, b, w, half, half_p, scale, one = prologue(input, target, param,
                                                                      reduction, weight)
            _refuse_out(out)
            return to_result(loss_sum(l1, a, b, w, p, half, half_p, one, None), a.size, red)
    elif op == "value_and_grad" and not reduced:
        def body(input, target, param, reduction, weight, out):
            p, l1, red, a, b, w, half, half_p, scale, one = prologue(input, target, param,
                                                                      reduction, weight)
            grad = _result_buffer(out, input.shape, one, input, target, weight)
            value = np.empty_like(grad)
            loss_each(l1, a, b, w, p, half, half_p, value.ravel(), grad.ravel())
            return value, grad
    elif op == "value_and_grad":
        def body(input, target, param, reduction, weight, out):
            p, l1, red, a, b, w, half, half_p, scale, one = prologue(input, target, param,
                                                                      reduction, weight)
            grad = _result_buffer(out, input.shape, one, input, target, weight)
            total = loss_sum(l1, a, b, w, p, half, half_p, scale, grad.ravel())
            return to_result(total, a.size, red), grad
    elif op == "grad":
        def body(input, target, param, reduction, weight, out):
            p, l1, red, a, b, w, half, half_p, scale, one = prologue(input, target, param,
                                                                      reduction, weight)
            grad = _result_buffer(out, input.shape, one, input, target, weight)
            grad_each(l1, a, b, w, p, scale, one, grad.ravel())
            return grad
    else:
        def body(input, target, param, reduction, weight, out):
            p, l1, red, a, b, w, half, half_p, scale, one = prologue(input, target, param,
                                                                      reduction, weight)
            hess = _result_buffer(out, input.shape, one, input, target, weight)
            hess_each(l1, a, b, w, p, half, scale, hess.ravel())
            return hess
    return register_jitable(body)
