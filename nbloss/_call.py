"""What every backend's call shares: the loss spec, the operands' dtypes and shapes, the
rounding of a reduction's total, and the contract (:class:`Call`) that the host
(``_host.HostCall``), CUDA (``_device.DeviceCall``) and Dask (``_dask.DaskCall``) calls
implement.

A leaf of the package: it imports NumPy, ``_math`` and ``_validate`` only, never a
backend, so every backend can import it.
"""

import functools
import math
from typing import NamedTuple

import numpy as np

from . import _math
from . import _validate as v


class Scalars(NamedTuple):
    """A loss's kernel kind and scalars in one dtype: the parameter ``p`` (beta or delta),
    0.5, 1 and 0.5 * p (the CUDA kernels take it precomputed)."""
    kind: int
    p: np.floating
    half: np.floating
    one: np.floating
    half_p: np.floating


@functools.lru_cache(maxsize=256)
def scalars(loss, param, dtype):
    """The :class:`Scalars` of ``loss`` ('smooth_l1', 'huber' or 'l1') in ``dtype``;
    cached: deciding the kind costs more than a small loss does."""
    if loss == "smooth_l1":
        kind = v.smooth_l1_kind(param, dtype)
        if kind == _math.SMOOTH_L1 and param == 1.0:
            # beta = 1, the default: smooth_l1 is huber with delta = 1 operation for
            # operation (x / 1 == x exactly, 1 * y == y), bit for bit, minus two divisions
            # per element, which bound the kernel's speed while the data is in cache
            kind = _math.HUBER
    else:
        kind = _math.HUBER if loss == "huber" else _math.L1
    p, half = dtype.type(param), dtype.type(0.5)
    return Scalars(kind, p, half, dtype.type(1), half * p)


class LossSpec(NamedTuple):
    """Which loss a call computes: ``loss`` ('smooth_l1', 'huber' or 'l1') and its
    ``param`` (beta or delta, already checked). Small and picklable: Dask's chunk tasks
    carry it."""
    loss: str
    param: float

    def scalars(self, dtype):
        """The kernel kind and scalars in ``dtype`` (see :func:`scalars`)."""
        return scalars(self.loss, self.param, dtype)


CHECKED_SPECS: dict[tuple[str, float], "LossSpec"] = {}  # float parameters already checked


def loss_spec(loss, param):
    """``LossSpec(loss, param)``, the parameter checked (``_validate.check_beta`` or
    ``check_delta``: the exception for a bad one). A checked spec is kept under its
    (float) parameter, and a float parameter is looked up there first: the check and the
    spec cost more than a small loss does."""
    spec = CHECKED_SPECS.get((loss, param)) if type(param) is float else None
    if spec is not None:
        return spec
    if loss == "smooth_l1":
        param = v.check_beta(param)
    elif loss == "huber":
        param = v.check_delta(param)
    spec = LossSpec(loss, param)
    # 0.0 and -0.0 are one key: leave the zeros out rather than answer one for the other
    if param != 0 and len(CHECKED_SPECS) < 1024:
        CHECKED_SPECS[loss, param] = spec
    return spec


@functools.lru_cache(maxsize=64)
def reduction_scale(dtype, n, mean):
    """1/N in ``dtype`` for 'mean' (N > 0), else 1: the reduction's factor on each
    gradient element; cached: a NumPy scalar costs about 0.2 us to make, a tenth of a
    small call's handling."""
    return dtype.type(1.0 / n) if mean and n else dtype.type(1)


def _overflows_at(dtype):
    """The least float64 that rounds to inf in ``dtype``: its largest finite value plus
    half an ulp there (inf for float64)."""
    info = np.finfo(dtype)
    return math.inf if dtype == v.FLOAT64 else float(info.max) + 2.0 ** (info.maxexp - info.nmant - 2)


_ROUNDING = {dtype: (dtype.type(1), _overflows_at(dtype)) for dtype in v.FLOAT_DTYPES}


def total_to_result(total, n, reduction, dtype):
    """A kernel's float64 sum (a Python float) as the result: divided by N for 'mean' (NaN
    when N = 0), rounded to a NumPy scalar of ``dtype``: beyond its range +-inf, without
    NumPy's overflow warning, as torch and the CUDA kernels give it. (Raised as an error,
    that warning would come after a fused kernel wrote ``out=``.)"""
    if reduction == "mean":
        total = total / n if n else np.nan
    one, limit = _ROUNDING[dtype]
    if not -limit < total < limit and total == total:
        total = math.copysign(math.inf, total)
    # NumPy rounds a Python float to the scalar's dtype before multiplying (NEP 50), so
    # this is ``dtype.type(total)`` in a third of the time
    return one * total


def broadcast_layout(shape, strides, itemsize, to):
    """(shape, strides) of a 2-D to 4-D view that reads an array of ``shape`` and
    ``strides`` (bytes) broadcast to ``to`` in C order, when the broadcast and the
    strides reduce to two to four axes whose last one has stride 0 (a value broadcast
    along the row) or ``itemsize``; else None (one strided axis, ``x[::2]``, and five
    axes or more, as of a five-dimensional operand broadcast along alternate axes, are
    copied). How the host and CUDA kernels read an operand broadcast along some axes of
    the loss, in place."""
    lead = len(to) - len(shape)
    axes = []  # (length, stride) of the broadcast's axes, merged where one continues another
    for i, length in enumerate(to):
        if length == 1:
            continue
        stride = 0 if i < lead or shape[i - lead] == 1 else strides[i - lead]
        if axes and axes[-1][1] == stride * length:
            axes[-1] = (axes[-1][0] * length, stride)
        else:
            axes.append((length, stride))
    if not 2 <= len(axes) <= 4 or axes[-1][1] not in (0, itemsize) or 0 in to:
        return None
    return tuple(length for length, _ in axes), tuple(stride for _, stride in axes)


class Call:
    """One call's arguments, checked and laid out for one backend's kernels, and the
    operations on them. The attributes every backend sets (``_resolve`` sets the dtypes
    and shapes):

    - ``spec`` (:class:`LossSpec`) and ``reduction``;
    - ``dtype`` (the computation dtype) and ``out_dtype`` (the result dtype);
    - ``input_shape``, ``target_shape``, ``shape`` (the broadcast one) and ``n`` (its
      element count);
    - ``upstream`` (the upstream gradient as the kernels read it, or None) and
      ``upstream_value`` (a scalar that multiplies every element), set by
      :meth:`set_upstream`.

    A backend implements the methods that raise ``NotImplementedError`` here; the public
    operations (``grad``, ``value_and_grad``, ``backward``, ``backward_from``,
    ``hess_diag``) are written once, from them.
    """

    __slots__ = ()
    # whether out= is a numpy.ndarray (the host backend's results), which a criterion
    # may pass back as the next forward's gradient buffer
    takes_ndarray_out = False

    def _resolve(self, x, y, w, warn_shapes, shapes=None):
        """Set the dtypes and shapes from the operands ``x``, ``y`` and ``w`` (None: no
        weight), each with ``for_dtype`` and ``is_python_scalar`` (as
        ``_validate.Operand``); ``shapes``: the (input, target, weight) shapes where the
        operands do not have them as ``.shape``. Warns as torch does when input and target
        differ in shape, unless one is a Python number (an explicit broadcast, with no
        torch twin) or not ``warn_shapes``; checks that the weight broadcasts to the loss."""
        if shapes is None:
            shapes = (x.shape, y.shape, None if w is None else w.shape)
        self.dtype, self.out_dtype = v.result_dtypes(x, y, w)
        self.input_shape, self.target_shape = shapes[0], shapes[1]
        self.shape = v.broadcast_shape(self.input_shape, self.target_shape)
        if (warn_shapes and self.input_shape != self.target_shape
                and not (x.is_python_scalar or y.is_python_scalar)):
            v.warn_shape_mismatch(self.input_shape, self.target_shape)
        if w is not None:
            v.check_broadcasts_to(shapes[2], self.shape, "weight")
        self.n = math.prod(self.shape)

    @property
    def scale(self):
        """The reduction's factor on each element's gradient: 1/N for 'mean', else 1."""
        return reduction_scale(self.dtype, self.n, self.reduction == "mean")

    # -- what a backend provides -----------------------------------------------------------

    def set_upstream(self, grad_output):
        """Check ``grad_output`` against the loss (a scalar for 'mean'/'sum', an array
        broadcastable to the loss for 'none') and set ``upstream`` and
        ``upstream_value`` from it, replacing any earlier upstream gradient."""
        raise NotImplementedError

    def loss(self, out=None):
        """The loss: a scalar for 'mean'/'sum', the elementwise losses for 'none' (into
        ``out`` when given)."""
        raise NotImplementedError

    def grad_full(self, out=None, scale=None):
        """The gradient w.r.t. input in the broadcast shape, times the upstream gradient
        (into ``out`` when it fits); ``scale`` replaces the reduction's factor (a Dask
        chunk's is the whole array's)."""
        raise NotImplementedError

    def hess_full(self, out=None, scale=None):
        """The Hessian's diagonal w.r.t. input in the broadcast shape (``out``, ``scale``:
        as in :meth:`grad_full`)."""
        raise NotImplementedError

    def value_and_grad_full(self, out=None):
        """(the loss, the gradient w.r.t. input in the broadcast shape) from one fused
        pass."""
        raise NotImplementedError

    def loss_sum(self, with_grad, scale):
        """(the float64 sum of the weighted losses, ``scale`` times the gradient in the
        broadcast shape or None) from one pass: a Dask chunk's share of a reduction. The
        sum is a Python float on the host, a 0-d float64 array on a device."""
        raise NotImplementedError

    def sum_to(self, full, shape, out=None, negate=False):
        """``full``, of the broadcast shape, summed back to ``shape`` (over the axes along
        which an operand was broadcast), negated if ``negate``, in the result dtype, and
        into ``out`` when given."""
        raise NotImplementedError

    def times_upstream(self, full):
        """A new array: ``full``, a gradient in the broadcast shape saved by a forward
        pass (upstream gradient 1), times the upstream gradient set since, element by
        element (``full * upstream_value * upstream``); the inputs are not read again."""
        raise NotImplementedError

    def copy(self, array):
        """A new array with ``array``'s values (the backend's own kind of array)."""
        return array.copy()

    # -- written once, from the above ------------------------------------------------------

    def grad(self, out=None):
        return self.sum_to(self.grad_full(out), self.input_shape, out)

    def value_and_grad(self, out=None):
        value, full = self.value_and_grad_full(out)
        return value, self.sum_to(full, self.input_shape, out)

    def hess_diag(self, out=None):
        return self.sum_to(self.hess_full(out), self.input_shape, out)

    def split(self, full, keep=False):
        """(grad_input, grad_target) from the gradient w.r.t. input in the broadcast
        shape: each summed to its operand's shape, the target's negated. ``keep``: ``full``
        stays ours (a criterion's saved gradient), so grad_input is a copy where no sum
        or cast makes a new array: what the caller gets is the caller's to change."""
        grad_input = self.sum_to(full, self.input_shape)
        if keep and grad_input is full:
            grad_input = self.copy(full)
        return grad_input, self.sum_to(full, self.target_shape, negate=True)

    def backward(self, grad_output):
        """(grad_input, grad_target) of the loss, times ``grad_output``."""
        self.set_upstream(grad_output)
        return self.split(self.grad_full())

    def backward_from(self, full, grad_output):
        """A criterion's backward: ``full`` is the gradient saved by the forward (upstream
        gradient 1); ``grad_output`` replaces the call's upstream gradient, and unless it
        is a plain 1 the saved gradient is multiplied by it (:meth:`times_upstream`), as torch's autograd does with what the
        forward saved: inputs changed since do not change the result."""
        self.set_upstream(grad_output)
        if self.upstream is None and self.upstream_value == 1:
            return self.split(full, keep=True)
        return self.split(self.times_upstream(full))
