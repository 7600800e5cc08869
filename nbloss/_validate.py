"""Argument checks and normalisation shared by every public entry point.

Everything here runs before any kernel touches memory, so a call that fails its checks
leaves ``out=`` and the inputs exactly as they were.
"""

import functools
import math
import numbers
import os
import sys
import warnings

import numpy as np

from . import _math

REDUCTIONS = ("none", "mean", "sum")
FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))
FLOAT16, FLOAT32, FLOAT64 = FLOAT_DTYPES

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class CacheWarning(UserWarning):
    """numba's disk cache could not be used for some of nbloss's kernels (no writable
    cache folder, an entry that could not be loaded, or a failed write): nbloss compiled
    them in memory instead, and the message says what to fix. Issued once per process
    and kind of fault."""


@functools.lru_cache(maxsize=256)
def _in_package(filename):
    # cached: a warning issued on every call (a broadcast's shape warning) walks several
    # frames, and the path arithmetic cost more than the rest of a small call
    return os.path.dirname(os.path.abspath(filename)) == _PACKAGE_DIR


def warn(message, category=UserWarning):
    """Warn with the caller's line, the first frame outside this package."""
    level = 2  # 1 is this function, 2 its caller
    frame = sys._getframe(1)
    while frame is not None and _in_package(frame.f_code.co_filename):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)


def check_reduction(reduction):
    """'none', 'mean' or 'sum'; torch's deprecated 'elementwise_mean' is 'mean', with
    torch's warning."""
    if isinstance(reduction, str):
        if reduction in REDUCTIONS:
            return reduction
        if reduction == "elementwise_mean":
            warn("reduction='elementwise_mean' is deprecated. Please use reduction='mean' instead.")
            return "mean"
    raise ValueError(f"{reduction} is not a valid value for reduction "
                     "(expected 'none', 'mean' or 'sum')")


def legacy_reduction(size_average, reduce, reduction, fn="smooth_l1_loss"):
    """torch's mapping of the deprecated ``size_average``/``reduce`` flags, with its
    warning: None counts as True; both -> 'mean', ``reduce`` alone -> 'sum',
    ``reduce=False`` -> 'none'. Anything but None or a bool raises TypeError: torch takes
    any value for its truth, so ``SmoothL1Loss(0.5)``, meant as beta, is 'mean' with
    beta 1 there."""
    if size_average is None and reduce is None:
        return reduction
    for name, flag in (("size_average", size_average), ("reduce", reduce)):
        if flag is not None and not isinstance(flag, (bool, np.bool_)):
            where = " (torch's deprecated flag, the first positional argument)" if (
                name == "size_average" and fn == "SmoothL1Loss") else " (torch's deprecated flag)"
            meant = (f"for a beta of {flag!r} pass beta={flag!r}, for a reduction pass "
                     if isinstance(flag, numbers.Real) else "pass ")
            raise TypeError(f"{fn}: {name} must be a bool or None, got {flag!r}{where}; "
                            f"{meant}reduction='none', 'mean' or 'sum'")
    size_average = True if size_average is None else size_average
    reduce = True if reduce is None else reduce
    if size_average and reduce:
        reduction = "mean"
    elif reduce:
        reduction = "sum"
    else:
        reduction = "none"
    warn(f"size_average and reduce args will be deprecated, please use reduction='{reduction}' instead.")
    return reduction


def python_float(value, what):
    """``float(value)``, with an error naming ``what`` for a number beyond float64's
    range (a Python int of 1025 bits or more)."""
    try:
        return float(value)
    except OverflowError:
        size = f"a {value.bit_length()}-bit int" if isinstance(value, int) else type(value).__name__
        raise OverflowError(f"{what} ({size}) is beyond float64's range (about 1.8e308, "
                            "2**1024); nbloss computes in float16, float32 or float64") from None


def _real_scalar(value, name, fn):
    if type(value) is float and value == value:  # the common case, cheaply
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: {name} must be a real number, got {value!r}")
    value = python_float(value, f"{fn}: {name}")
    if math.isnan(value):
        raise ValueError(f"{fn}: {name} must not be NaN, got {name}=nan")
    return value


def check_criterion_reduction(reduction, param):
    """A criterion's ``reduction``, with a TypeError for a number: ``HuberLoss(0.5)``
    means ``reduction=0.5`` in torch's order, where ``delta=0.5`` was meant."""
    if isinstance(reduction, numbers.Real) and not isinstance(reduction, (bool, np.bool_)):
        raise TypeError(f"reduction must be 'none', 'mean' or 'sum', got {reduction!r} (the "
                        f"first positional argument); for a {param} of {reduction!r} pass "
                        f"{param}={reduction!r}")
    return check_reduction(reduction)


def check_beta(beta, fn="smooth_l1_loss"):
    beta = _real_scalar(beta, "beta", fn)
    if beta < 0:
        raise ValueError(f"{fn} does not support negative values for beta (got beta={beta!r})")
    return beta


def check_delta(delta, fn="huber_loss"):
    delta = _real_scalar(delta, "delta", fn)
    if delta <= 0:
        raise ValueError(f"{fn} does not support non-positive values for delta (got delta={delta!r})")
    return delta


def smooth_l1_kind(beta, dtype):
    """Smooth L1 in ``dtype``, or exact L1 when beta is 0 or so small that 1/beta
    overflows there (torch routes beta == 0 to l1_loss; the quadratic branch would
    divide by zero and give NaN or -1 gradients at x == 0)."""
    b = dtype.type(beta)
    with np.errstate(over="ignore", divide="ignore"):
        if b == 0 or not np.isfinite(dtype.type(1) / b):
            return _math.L1
    return _math.SMOOTH_L1


def is_device_array(obj):
    """A CUDA array: it exports ``__cuda_array_interface__`` (CuPy, torch, numba) or is
    one of numba's own (the CUDA simulator's arrays export nothing)."""
    return hasattr(obj, "__cuda_array_interface__") or getattr(obj, "__cuda_ndarray__", False) is True


def is_dask_array(obj):
    """A Dask array; without importing dask (if dask.array is not loaded, obj is none)."""
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(obj, dask_array.Array)


def refuse_masked(value, name):
    """A masked array's mask would be ignored (NumPy functions read ``.data``): refuse
    it, saying how to get what was meant."""
    if not isinstance(value, np.ma.MaskedArray):
        return
    if name in ("input", "target"):
        advice = (f"pass {name}.data with weight=~{name}.mask (masked elements then add 0; "
                  f"'mean' still divides by the element count: use 'sum' / {name}.count()), "
                  f"or {name}.compressed() with the other operand's matching elements")
    else:
        what = "weight" if name == "weight" else "gradient"
        advice = f"pass {name}.filled(0) to give the masked elements no {what}"
    raise TypeError(f"{name} is a numpy.ma.MaskedArray; nbloss would ignore its mask, so it "
                    f"refuses it: {advice}")


def is_python_number(value):
    """A Python int or float: NumPy's weak scalar. Not a bool, not a NumPy scalar
    (``np.float64`` subclasses ``float``), which is a typed 0-d array."""
    return isinstance(value, (int, float)) and not isinstance(value, (bool, np.generic))


def _is_integer(operand):
    """An integer or bool array operand (a Python number is weak, never one)."""
    return isinstance(operand.for_dtype, np.dtype) and operand.for_dtype.kind in "biu"


class Operand:
    """One array argument: the caller's values as an ndarray (``array``: a view of an
    ndarray or of any subclass but a masked array, not converted; a new array for a
    Python number or a list), and ``for_dtype``, what decides the computation dtype (see
    :func:`result_dtypes`): a Python number itself (weak, as in NumPy: float32 array -
    1.0 is float32), else the array's dtype (NumPy scalars are typed 0-d arrays)."""

    __slots__ = ("array", "for_dtype")

    @property
    def is_python_scalar(self):
        return not isinstance(self.for_dtype, np.dtype)

    @property
    def is_float_array(self):
        return isinstance(self.for_dtype, np.dtype) and self.for_dtype.kind == "f"

    def __init__(self, value, name):
        if is_device_array(value):
            raise TypeError(f"{name} is a CUDA device array: mix of host and device arrays, "
                            "or the CUDA backend is not available")
        if isinstance(value, bool):
            raise TypeError(f"{name} is a Python bool: pass a number, or an array "
                            f"(np.asarray({value}) for a bool operand)")
        if is_python_number(value):
            self.array, self.for_dtype = np.asarray(python_float(value, name)), value
            return
        if isinstance(value, (list, tuple)):
            array = _from_sequence(value, name)
        elif isinstance(value, (np.ndarray, np.generic)):
            refuse_masked(value, name)
            array = np.asarray(value)  # a subclass (np.memmap, np.matrix) read as an ndarray
        else:
            try:
                array = np.asarray(value)
            except Exception as exc:  # pragma: no cover - depends on the foreign object
                raise TypeError(f"{name} must be an array-like of floats, got {type(value).__name__}") from exc
        dtype = array.dtype
        if not (dtype.kind in "biu" or (dtype.kind == "f" and dtype.itemsize in (2, 4, 8))):
            raise TypeError(f"{name} must be a float16, float32 or float64 array (or an integer "
                            f"or bool one beside a float operand), got dtype {dtype}")
        self.array, self.for_dtype = array, dtype


def _from_sequence(value, name):
    """A list or tuple as an array; Python ints (of any size: NumPy makes an object array
    beyond 64 bits) become float64, NumPy's float default."""
    try:
        array = np.asarray(value)
    except ValueError as exc:
        if "inhomogeneous" not in str(exc):
            raise
        raise ValueError(f"{name} is a ragged nested {type(value).__name__}: its rows differ in "
                         "length (or nest to different depths), so it is no array; pad it "
                         "or pass an array") from None
    if array.dtype.kind in "iu":
        return array.astype(np.float64)
    if array.dtype.kind == "O" and all(isinstance(x, numbers.Real) and not isinstance(x, bool)
                                       for x in array.flat):
        return np.array([python_float(x, name) for x in array.flat]).reshape(array.shape)
    return array  # not numbers (None, say): refused by its dtype


def result_dtypes(input, target, weight=None):
    """(computation dtype, result dtype) of a call's operands (``Operand``s or the CUDA
    layer's).

    The float operands decide, by NumPy's ``result_type``: arrays by their dtype (NumPy
    scalars are typed 0-d arrays), Python numbers weak (Python ints alone: float64). An
    integer or bool array takes that dtype without deciding it, torch's category rule
    (int64 beside float32 is float32), and so does ``grad_output``. float16 is computed
    in float32 and returned as float16, like torch's CPU kernels."""
    if _is_integer(input) and _is_integer(target):
        raise TypeError(f"input ({input.for_dtype}) and target ({target.for_dtype}) are both "
                        "integer or bool arrays; the loss needs a floating-point input or "
                        "target (torch raises NotImplementedError, 'not implemented for "
                        "Long'): convert one, e.g. input.astype(np.float32)")
    dtype = np.result_type(*(op.for_dtype for op in (input, target, weight)
                             if op is not None and not _is_integer(op)))
    if dtype.kind != "f":  # only Python ints: compute in float64
        dtype = FLOAT64
    compute = FLOAT32 if dtype == FLOAT16 else dtype
    return compute, dtype


def broadcast_shape(input_shape, target_shape):
    try:
        return np.broadcast_shapes(input_shape, target_shape)
    except ValueError:
        raise ValueError(f"input of shape {input_shape} and target of shape {target_shape} "
                         "do not broadcast together") from None


def torch_size(shape):
    return f"torch.Size([{', '.join(str(d) for d in shape)}])"


def warn_shape_mismatch(input_shape, target_shape):
    """torch's UserWarning, word for word (shapes in torch's notation)."""
    warn(_shape_mismatch_message(tuple(input_shape), tuple(target_shape)))


@functools.lru_cache(maxsize=64)
def _shape_mismatch_message(input_shape, target_shape):
    # cached: a loop that broadcasts on purpose is warned at every call, as in torch
    return (f"Using a target size ({torch_size(target_shape)}) that is different to the input "
            f"size ({torch_size(input_shape)}). This will likely lead to incorrect results due "
            "to broadcasting. Please ensure they have the same size.")


def check_broadcasts_to(shape, loss_shape, name):
    try:
        ok = np.broadcast_shapes(shape, loss_shape) == tuple(loss_shape)
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name} of shape {shape} does not broadcast to the loss shape {tuple(loss_shape)}")


def upstream_gradient(value, reduction, loss_shape, dtype, result_dtype):
    """``grad_output`` checked against the loss it multiplies: a scalar (0-d) for
    'mean'/'sum', an array broadcastable to the loss for 'none'; rounded to the result
    dtype, as torch casts it to the loss's, and given in the computation ``dtype``."""
    go = Operand(value, "grad_output").array
    if reduction == "none":
        check_broadcasts_to(go.shape, loss_shape, "grad_output")
    elif go.size != 1:
        raise ValueError(f"grad_output of a '{reduction}' loss must be a scalar, got shape {go.shape}")
    else:
        go = go.reshape(())
    return in_dtype(go, dtype, via=result_dtype)


def flat_array(array):
    """``array`` as a 1-D C-contiguous array: itself, a view, or a copy when not
    C-contiguous."""
    if array.flags.c_contiguous:
        return array if array.ndim == 1 else array.reshape(-1)
    return np.ascontiguousarray(array).reshape(-1)


def in_dtype(array, dtype, widen=True, via=None):
    """``array`` as the kernels read it: itself in ``dtype``, or float32 beside a
    float64 computation when ``widen`` (the kernels widen each element exactly); else
    a converted copy (integers, bool, float16, the other byte order, a Python number's
    float64 in float32). ``via``: a dtype to round to first, the result dtype for what
    takes the dtype without deciding it (torch converts an integer operand and the
    upstream gradient to the loss's dtype, NumPy a weak scalar to the array's: float16
    rounds 4097 to 4096 before the float32 arithmetic)."""
    if via is not None and array.dtype != via:
        array = array.astype(via)
    if array.dtype == dtype or (widen and array.dtype == FLOAT32 and dtype == FLOAT64):
        return array
    return array.astype(dtype)


def check_out(out, shape, dtype, operands):
    """``out=`` must be a writeable ndarray (not a masked one) of the result's shape and
    dtype, in either byte order, that shares no memory with the inputs."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if isinstance(out, np.ma.MaskedArray):
        raise TypeError("out is a numpy.ma.MaskedArray; nbloss would write its data and "
                        "ignore its mask: pass out.data")
    if out.shape != tuple(shape):
        raise ValueError(f"out has shape {out.shape}, expected {tuple(shape)}")
    if out.dtype != dtype and out.dtype.newbyteorder("=") != dtype:  # either byte order
        raise TypeError(f"out has dtype {out.dtype}, expected {dtype}")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    for op, name in operands:
        if op is not None and np.may_share_memory(out, op):
            raise ValueError(f"out shares memory with {name}: nbloss never writes into its inputs")


def sum_to_shape(grad, shape):
    """Sum a gradient of the broadcast shape back to an operand's shape."""
    shape = tuple(shape)
    if grad.shape == shape:
        return grad
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape) if d == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape) if axes else grad.reshape(shape)
