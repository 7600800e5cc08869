"""The NumPy-facing layer: check and normalise the arguments once, run one kernel over
flat buffers, wrap the result. Kernels never see shapes or strings; this layer never
loops over elements.

Formulas (x = input - target, z = |x|, N = the broadcast element count):

- ``smooth_l1(x; beta) = 0.5 z^2 / beta if z < beta else z - 0.5 beta`` (exact L1 at beta = 0)
- ``huber(x; delta)    = 0.5 z^2 if z < delta else delta (z - 0.5 delta)``
- reductions: 'none' (elementwise), 'sum', 'mean' (sum / N; NaN when N = 0), each
  element multiplied by ``weight`` first when one is given;
- dtypes: one computation dtype for all the arithmetic, from the float operands
  (``_validate.result_dtypes``); integer and bool operands and ``grad_output`` take it.
"""

import functools
import importlib
import math
import numbers
from typing import NamedTuple

import numpy as np

from . import _math
from . import _validate as v

_backends = {}


def _backend(name):
    """``nbloss._cpu``, ``nbloss._device`` or ``nbloss._dask``, imported on first use, not
    at ``import nbloss``: numba with the first call, CUDA only when a device array
    arrives, Dask's layer only with a Dask array."""
    if name not in _backends:
        try:
            _backends[name] = importlib.import_module(f"nbloss.{name}")
        except ImportError as exc:
            if name == "_cpu":
                raise
            raise RuntimeError(f"a CUDA device array was passed, but numba's CUDA target cannot "
                               f"be loaded ({exc}); install 'nbloss[cuda12]' or "
                               "'nbloss[cuda13]' to match the driver") from exc
    return _backends[name]


def _cpu():
    return _backend("_cpu")


_FLOAT32, _FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)


@functools.lru_cache(maxsize=256)
def _parameters(loss, param, dtype):
    """(kernel kind, parameter, 0.5, 1) of ``loss`` ('smooth_l1', 'huber' or 'l1') in
    ``dtype``; cached: deciding the kind costs more than a small loss does."""
    if loss == "smooth_l1":
        kind = v.smooth_l1_kind(param, dtype)
        if kind == _math.SMOOTH_L1 and param == 1.0:
            # beta = 1, the default: smooth_l1 is huber with delta = 1 operation for
            # operation (x / 1 == x exactly, 1 * y == y), bit for bit, minus two divisions
            # per element, which bound the kernel's speed while the data is in cache
            kind = _math.HUBER
    else:
        kind = _math.HUBER if loss == "huber" else _math.L1
    return kind, dtype.type(param), dtype.type(0.5), dtype.type(1)


@functools.lru_cache(maxsize=64)
def _reduction_scale(dtype, n, mean):
    """1/N in ``dtype`` for 'mean' (N > 0), else 1; cached: a NumPy scalar costs about
    0.2 us to make, a tenth of a small call's handling."""
    return dtype.type(1.0 / n) if mean and n else dtype.type(1)


class _Plan(NamedTuple):
    """What a host call runs, fixed by its loss, parameter, dtype, size and reduction:
    the kernel scalars (see :func:`_parameters`; ``half_p`` = half * p in the dtype), the
    reduction's factor on each gradient element, and the CPU kernels of the loss's kind
    for this size and dtype (``sum_kernels``: for ``loss_sum`` without a gradient, whose
    threading threshold is higher)."""
    p: np.floating
    half: np.floating
    half_p: np.floating
    one: np.floating
    scale: np.floating
    kernels: object
    sum_kernels: object

    def loss_sum(self, a, b, w):
        """float64 sum(w * loss(a - b)) over flat operands (``w`` may be None)."""
        return self.sum_kernels.loss_sum(a, b, w, self.p, self.half, self.half_p, self.one,
                                         None)

    def loss_sum_and_grad(self, a, b, w, grad, scale=None):
        """float64 sum(w * loss(a - b)), and ``grad`` (C-contiguous) = scale * w *
        dloss(a - b) in the same pass; ``scale`` defaults to the reduction's factor."""
        return self.kernels.loss_sum(a, b, w, self.p, self.half, self.half_p,
                                     self.scale if scale is None else scale, _flat(grad))

    def loss_each(self, a, b, w, loss_out, grad_out=None):
        """``loss_out`` = w * loss(a - b), and ``grad_out`` = w * dloss(a - b) in the same
        pass when given (C-contiguous buffers of N elements)."""
        self.kernels.loss_each(a, b, w, self.p, self.half, self.half_p, _flat(loss_out),
                               None if grad_out is None else _flat(grad_out))

    def grad_each(self, a, b, w, go, g0, out, scale=None):
        """``out`` (C-contiguous) = scale * dloss(a - b) * (g0 * w * go); ``go`` (the
        upstream gradient) may be None, ``scale`` defaults to the reduction's factor."""
        self.kernels.grad_each(a, b, w, go, self.p, self.scale if scale is None else scale,
                               g0, _flat(out))


@functools.lru_cache(maxsize=256)
def _plan(loss, param, dtype, n, reduction):
    """The :class:`_Plan` of a host call; cached: looking its parts up one by one cost
    about 0.4 us a call, a sixth of a small call's handling."""
    kind, p, half, one = _parameters(loss, param, dtype)
    cpu = _cpu()
    return _Plan(p, half, half * p, one, _reduction_scale(dtype, n, reduction == "mean"),
                 cpu.kernels(kind, n, dtype.itemsize),
                 cpu.kernels(kind, n, dtype.itemsize, sum_only=True))


def _same_float_arrays(input, target):
    """Two ndarrays of one float32/float64 dtype and one shape: the common case, which
    needs no normalisation. (NumPy's native float dtypes are singletons, so ``is``
    suffices; any other dtype object takes the general path.)"""
    return (type(input) is np.ndarray and type(target) is np.ndarray
            and (input.dtype is _FLOAT32 or input.dtype is _FLOAT64)
            and target.dtype is input.dtype and input.shape == target.shape)


def _overflows_at(dtype):
    """The least float64 that rounds to inf in ``dtype``: its largest finite value plus
    half an ulp there (inf for float64)."""
    info = np.finfo(dtype)
    return math.inf if dtype == v.FLOAT64 else float(info.max) + 2.0 ** (info.maxexp - info.nmant - 2)


_ROUNDING = {dtype: (dtype.type(1), _overflows_at(dtype)) for dtype in v.FLOAT_DTYPES}


def _reduced(total, n, reduction, dtype):
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


def _flat(buf):
    """A C-contiguous buffer as the kernels' 1-D view (itself when already 1-D)."""
    return buf if buf.ndim == 1 else buf.reshape(-1)


class CallBase:
    """What every backend's call (host ``_Call``, ``_device.DeviceCall``,
    ``_dask.DaskCall``) derives from its own ``grad_full``, ``hess_full``,
    ``value_and_grad_full`` and ``finish(full, shape, out, negate)``."""

    __slots__ = ()

    @property
    def scale(self):
        """The reduction's factor on each element's gradient: 1/N for 'mean', else 1."""
        return _reduction_scale(self.dtype, self.n, self.reduction == "mean")

    def grad(self, out=None):
        return self.finish(self.grad_full(out), self.input_shape, out)

    def value_and_grad(self, out=None):
        value, full = self.value_and_grad_full(out)
        return value, self.finish(full, self.input_shape, out)

    def split(self, full, keep=False):
        """(grad_input, grad_target) from the gradient w.r.t. input in the broadcast
        shape: each summed to its operand's shape, the target's negated. ``keep``: ``full``
        stays ours (a criterion's saved gradient), so grad_input is a copy where no sum
        or cast makes a new array: what the caller gets is the caller's to change."""
        grad_input = self.finish(full, self.input_shape, None)
        if keep and grad_input is full:
            grad_input = self.copy(full)
        return grad_input, self.finish(full, self.target_shape, None, negate=True)

    def copy(self, array):
        """A new array with ``array``'s values (the backend's own kind of array)."""
        return array.copy()

    def backward(self):
        return self.split(self.grad_full())

    def hess_diag(self, out=None):
        return self.finish(self.hess_full(out), self.input_shape, out)

    def backward_from(self, full, grad_output):
        """The criterion's backward: ``full`` is the gradient saved by the forward; any
        other upstream gradient than the number 1 recomputes it from the inputs with that
        factor (``_upstream``)."""
        if isinstance(grad_output, (numbers.Real, np.generic)) and grad_output == 1:
            return self.split(full, keep=True)
        self._upstream(grad_output)
        return self.backward()


class _Call(CallBase):
    """One call's arguments, checked, broadcast and flattened for the kernels.

    ``loss`` is 'smooth_l1', 'huber' or 'l1' and ``param`` its beta or delta, already
    checked.
    """

    __slots__ = ("reduction", "dtype", "out_dtype", "shape", "input_shape", "target_shape",
                 "a", "b", "w", "sources", "n", "plan", "go", "g0")

    def __init__(self, input, target, loss, param, reduction, weight=None, grad_output=None,
                 warn_shapes=True):
        self.reduction = v.check_reduction(reduction)
        if weight is None and _same_float_arrays(input, target):
            # at 1e3 elements the general path below costs several times the kernel
            self.dtype = self.out_dtype = input.dtype
            self.shape = self.input_shape = self.target_shape = input.shape
            self.a = v.flat_array(input)
            self.b = v.flat_array(target)
            self.w = None
            self.sources = ((input, "input"), (target, "target"))
        else:
            self._normalise(input, target, weight, warn_shapes)
        self.n = self.a.size
        self.plan = _plan(loss, param, self.dtype, self.n, self.reduction)
        self.g0 = self.plan.one
        self.go = None
        if grad_output is not None:
            go = v.upstream_gradient(grad_output, self.reduction, self.shape, self.dtype,
                                     self.out_dtype)
            if go.ndim:
                self.go = v.flat(go, self.shape)
            else:
                self.g0 = go[()]

    @property
    def scale(self):
        return self.plan.scale

    def _normalise(self, input, target, weight, warn_shapes):
        """Any operands: Python numbers and lists, NumPy scalars, broadcasting, integer,
        bool and float16 data, mixed dtypes, the other byte order, non-contiguous
        layouts, a weight. All arithmetic happens in the computation dtype."""
        x, y = v.Operand(input, "input"), v.Operand(target, "target")
        w = None if weight is None else v.Operand(weight, "weight")
        self.dtype, self.out_dtype = v.result_dtypes(x, y, w)
        self.input_shape, self.target_shape = x.array.shape, y.array.shape
        self.shape = v.broadcast_shape(self.input_shape, self.target_shape)
        # torch's warning; a Python number is an explicit broadcast, with no torch twin
        if (warn_shapes and self.input_shape != self.target_shape
                and not (x.is_python_scalar or y.is_python_scalar)):
            v.warn_shape_mismatch(self.input_shape, self.target_shape)
        # the kernels take input - target in the wider of the two arrays' dtypes: when
        # neither has the computation dtype (float32 operands with a float64 weight), both
        # are converted. A Python number takes the dtype as in NumPy (float32 - 0.3 is
        # computed in float32), an integer array as in torch.
        widen = x.array.dtype == self.dtype or y.array.dtype == self.dtype
        self.a = self._kernel_operand(x, widen)
        self.b = self._kernel_operand(y, widen)
        sources = [(x.array, "input"), (y.array, "target")]
        self.w = None
        if w is not None:
            v.check_broadcasts_to(w.array.shape, self.shape, "weight")
            self.w = self._kernel_operand(w)
            sources.append((w.array, "weight"))
        self.sources = tuple(sources)

    def _kernel_operand(self, op, widen=True):
        """Operand ``op`` as the kernels read it (see ``v.in_dtype``): flat, of the loss's
        shape, in the computation dtype; an integer array or a Python number, which take
        the dtype, rounded to the result dtype first."""
        via = None if op.is_float_array else self.out_dtype
        return v.flat(v.in_dtype(op.array, self.dtype, widen, via), self.shape)

    # -- results -------------------------------------------------------------------------

    def reduced(self, total):
        return _reduced(total, self.n, self.reduction, self.out_dtype)

    def buffer(self, out, shape):
        """Where a kernel writes an array of ``shape``: straight into ``out`` when it is
        C-contiguous in the computation dtype, else a new array (copied to ``out`` by
        ``finish``)."""
        if out is not None:
            v.check_out(out, shape, self.out_dtype, self.sources)
            if out.dtype == self.dtype and out.flags.c_contiguous and tuple(shape) == self.shape:
                return out
        return np.empty(self.shape, self.dtype)

    def finish(self, full, shape, out, negate=False):
        """Sum a broadcast-shape result back to ``shape``, cast to the result dtype and
        deliver it into ``out`` if one was given."""
        result = full if full.shape == shape else v.sum_to_shape(full, shape)
        if negate:
            result = np.negative(result)
        if result.dtype != self.out_dtype:
            # float32 -> float16 into a new array: NumPy's overflow warning, raised as an
            # error, then leaves out= as it was
            result = result.astype(self.out_dtype)
        if out is None or result is out:
            return result
        np.copyto(out, result)
        return out

    # -- operations ----------------------------------------------------------------------

    def loss(self, out=None):
        plan = self.plan
        if self.reduction != "none":
            if out is not None:
                raise ValueError(f"out= is only for reduction='none', not '{self.reduction}'")
            return self.reduced(plan.loss_sum(self.a, self.b, self.w))
        buf = self.buffer(out, self.shape)
        plan.loss_each(self.a, self.b, self.w, buf)
        return self.finish(buf, self.shape, out)

    def grad_full(self, out=None, scale=None):
        """The gradient w.r.t. input in the broadcast shape (into ``out`` when it fits);
        ``scale`` replaces the reduction's factor (a Dask chunk's is the whole array's)."""
        buf = self.buffer(out, self.input_shape)
        self.plan.grad_each(self.a, self.b, self.w, self.go, self.g0, buf, scale)
        return buf

    def value_and_grad_full(self, out=None):
        """(loss, gradient w.r.t. input in the broadcast shape) from one fused kernel."""
        plan = self.plan
        gbuf = self.buffer(out, self.input_shape)
        if self.reduction == "none":
            value = np.empty(self.shape, self.dtype)
            plan.loss_each(self.a, self.b, self.w, value, gbuf)
            value = value.astype(self.out_dtype, copy=False)
        else:
            value = self.reduced(plan.loss_sum_and_grad(self.a, self.b, self.w, gbuf))
        return value, gbuf

    def backward_from(self, full, grad_output):
        """The criterion's backward: ``full`` is the gradient saved by the forward, times
        the upstream gradient, split between input and target."""
        go = v.upstream_gradient(grad_output, self.reduction, self.shape, self.dtype,
                                 self.out_dtype)
        if go.ndim == 0 and go == 1:
            return self.split(full, keep=True)
        return self.split(full * go)

    def hess_full(self, out=None, scale=None):
        plan = self.plan
        buf = self.buffer(out, self.input_shape)
        plan.kernels.hess_each(self.a, self.b, self.w, plan.p, plan.half,
                               plan.scale if scale is None else scale, _flat(buf))
        return buf

    def sum_and_grad(self, scale, with_grad):
        """(float64 sum of the weighted losses, ``scale`` times the gradient in the
        broadcast shape, or None) from one pass: a Dask chunk's share of a reduction."""
        if not with_grad:
            return self.plan.loss_sum(self.a, self.b, self.w), None
        grad = np.empty(self.shape, self.dtype)
        return self.plan.loss_sum_and_grad(self.a, self.b, self.w, grad, scale), grad


_COMMON_REDUCTIONS = frozenset(("mean", "sum", "none"))


def _entry(loss, op, input, target, param, reduction, weight, out, stream,
           size_average=None, reduce=None):
    """A public call of ``loss`` ('smooth_l1' or 'huber'); ``op`` is 'loss', 'grad' or
    'value_and_grad'. The most common call, two ndarrays of one float32/float64 dtype and
    shape with no optional argument, goes from the parameter check straight to the cached
    plan's kernel; any other goes through ``_Call`` (about 1 us longer for a reduction,
    a fifth of a fused call at 1e4 elements; about 2 us for a 'none' loss or a gradient,
    a fifth of one at 1e5)."""
    if (weight is out is stream is size_average is reduce is None
            and type(reduction) is str and reduction in _COMMON_REDUCTIONS
            and _same_float_arrays(input, target)):
        param = v.check_beta(param) if loss == "smooth_l1" else v.check_delta(param)
        a, b = v.flat_array(input), v.flat_array(target)
        plan = _plan(loss, param, input.dtype, a.size, reduction)
        if op == "grad":
            grad = np.empty(input.shape, input.dtype)
            plan.grad_each(a, b, None, None, plan.one, grad)
            return grad
        grad = np.empty(input.shape, input.dtype) if op == "value_and_grad" else None
        if reduction == "none":
            value = np.empty(input.shape, input.dtype)
            plan.loss_each(a, b, None, value, grad)
        elif grad is None:
            value = _reduced(plan.loss_sum(a, b, None), a.size, reduction, input.dtype)
        else:
            total = plan.loss_sum_and_grad(a, b, None, grad)
            value = _reduced(total, a.size, reduction, input.dtype)
        return value if grad is None else (value, grad)
    if loss == "smooth_l1":
        call = _smooth_l1_call(input, target, param, reduction, weight, size_average, reduce,
                               stream=stream)
    else:
        call = _huber_call(input, target, param, reduction, weight, stream=stream)
    if op == "grad":
        return call.grad(out)
    return call.value_and_grad(out) if op == "value_and_grad" else call.loss(out)


# -- the kinds and their parameters ------------------------------------------------------

def new_call(input, target, loss, param, reduction, weight=None, stream=None, **kw):
    """The call's arguments on the backend the data lives on: ``_Call`` for host data,
    ``_dask.DaskCall`` when any operand is a Dask array, ``_device.DeviceCall`` when any
    is a CUDA device array."""
    if not (type(input) is np.ndarray and type(target) is np.ndarray):
        if any(v.is_dask_array(op) for op in (input, target, weight)):
            return _backend("_dask").DaskCall(input, target, loss, param, reduction, weight,
                                              stream=stream, **kw)
        if any(v.is_device_array(op) for op in (input, target, weight)):
            return _backend("_device").DeviceCall(input, target, loss, param, reduction,
                                                  weight, stream=stream, **kw)
    if stream is not None:
        raise ValueError("stream= is only for CUDA device arrays; these operands are host data")
    return _Call(input, target, loss, param, reduction, weight, **kw)


def _smooth_l1_call(input, target, beta, reduction, weight, size_average=None, reduce=None,
                    **kw):
    reduction = v.legacy_reduction(size_average, reduce, reduction)
    return new_call(input, target, "smooth_l1", v.check_beta(beta), reduction, weight, **kw)


def _huber_call(input, target, delta, reduction, weight, **kw):
    return new_call(input, target, "huber", v.check_delta(delta), reduction, weight, **kw)


# -- public functions ----------------------------------------------------------------------

def smooth_l1_loss(input, target, beta=1.0, reduction="mean", *, weight=None, out=None,
                   stream=None, size_average=None, reduce=None):
    """Smooth L1 loss, torch's ``F.smooth_l1_loss``.

    ``0.5 x^2 / beta if |x| < beta else |x| - 0.5 beta`` with ``x = input - target``;
    beta = 0 is exact L1. ``weight`` (broadcastable to the loss) multiplies each element
    before the reduction; 'mean' divides by the element count, not by sum(weight).
    Returns a NumPy scalar for 'mean'/'sum', an array of the broadcast shape for 'none'
    (written into ``out`` when given).
    """
    return _entry("smooth_l1", "loss", input, target, beta, reduction, weight, out, stream,
                  size_average, reduce)


def huber_loss(input, target, delta=1.0, reduction="mean", *, weight=None, out=None, stream=None):
    """Huber loss, torch's ``F.huber_loss``.

    ``0.5 x^2 if |x| < delta else delta (|x| - 0.5 delta)`` with ``x = input - target``;
    ``huber(x; delta) = delta * smooth_l1(x; beta=delta)``. Reductions, ``weight`` and
    ``out`` as in :func:`smooth_l1_loss`.
    """
    return _entry("huber", "loss", input, target, delta, reduction, weight, out, stream)


def smooth_l1_loss_grad(input, target, beta=1.0, reduction="mean", *, weight=None, out=None,
                        stream=None, size_average=None, reduce=None):
    """d loss / d input of :func:`smooth_l1_loss`, in input's shape.

    Per element ``clip(x / beta, -1, 1)`` (``sign(x)``, 0 at x = 0, when beta = 0), times
    ``weight``, times 1/N for 'mean'; summed over axes along which input was broadcast.
    """
    return _entry("smooth_l1", "grad", input, target, beta, reduction, weight, out, stream,
                  size_average, reduce)


def huber_loss_grad(input, target, delta=1.0, reduction="mean", *, weight=None, out=None,
                    stream=None):
    """d loss / d input of :func:`huber_loss`: per element ``clip(x, -delta, delta)``,
    times ``weight``, times 1/N for 'mean', in input's shape."""
    return _entry("huber", "grad", input, target, delta, reduction, weight, out, stream)


def smooth_l1_loss_value_and_grad(input, target, beta=1.0, reduction="mean", *, weight=None,
                                  out=None, stream=None, size_average=None, reduce=None):
    """``(smooth_l1_loss(...), smooth_l1_loss_grad(...))`` in one pass over memory; ``out``
    receives the gradient. Shaped for ``scipy.optimize.minimize(fun, x0, jac=True)``."""
    return _entry("smooth_l1", "value_and_grad", input, target, beta, reduction, weight, out,
                  stream, size_average, reduce)


def huber_loss_value_and_grad(input, target, delta=1.0, reduction="mean", *, weight=None, out=None,
                              stream=None):
    """``(huber_loss(...), huber_loss_grad(...))`` in one pass over memory; ``out``
    receives the gradient."""
    return _entry("huber", "value_and_grad", input, target, delta, reduction, weight, out,
                  stream)


def smooth_l1_loss_backward(grad_output, input, target, beta=1.0, reduction="mean", *,
                            weight=None, stream=None, size_average=None, reduce=None):
    """The backward of :func:`smooth_l1_loss`, torch's autograd contract.

    ``grad_output`` is the upstream gradient: a scalar for 'mean'/'sum', an array
    broadcastable to the loss for 'none'; it is cast to the computation dtype and does
    not decide it (as torch casts it to the loss's). Returns ``(grad_input,
    grad_target)``, each in its operand's shape (summed over broadcast axes) and in the
    result dtype, an integer operand's too; ``grad_target = -grad_input`` before that sum.
    """
    return _smooth_l1_call(input, target, beta, reduction, weight, size_average, reduce,
                           grad_output=grad_output, warn_shapes=False, stream=stream).backward()


def huber_loss_backward(grad_output, input, target, delta=1.0, reduction="mean", *, weight=None,
                        stream=None):
    """The backward of :func:`huber_loss`: ``(grad_input, grad_target)`` as in
    :func:`smooth_l1_loss_backward`."""
    return _huber_call(input, target, delta, reduction, weight, grad_output=grad_output,
                       warn_shapes=False, stream=stream).backward()


def smooth_l1_loss_hess_diag(input, target, beta=1.0, reduction="mean", *, weight=None, out=None,
                             stream=None):
    """Diagonal of the Hessian of :func:`smooth_l1_loss` w.r.t. input (torch's double
    backward): ``(|x| < beta) / beta`` per element (0 on the boundary, 0 for beta = 0),
    times ``weight``, times 1/N for 'mean'; the mask multiplies, so a NaN or infinite
    weight gives NaN outside it, as in torch. The Hessian is diagonal, so
    ``hessp(v) = hess_diag * v``."""
    return _smooth_l1_call(input, target, beta, reduction, weight, stream=stream).hess_diag(out)


def huber_loss_hess_diag(input, target, delta=1.0, reduction="mean", *, weight=None, out=None,
                         stream=None):
    """Diagonal of the Hessian of :func:`huber_loss` w.r.t. input: ``(|x| < delta)`` per
    element, times ``weight`` (NaN or inf: as in :func:`smooth_l1_loss_hess_diag`), times
    1/N for 'mean'."""
    return _huber_call(input, target, delta, reduction, weight, stream=stream).hess_diag(out)


# -- criteria ------------------------------------------------------------------------------

class _Criterion:
    """``loss = crit(input, target)``, then ``crit.backward(grad_output=1.0)``.

    The forward runs the fused kernel, so the gradient is ready when ``backward`` is
    called: a training step reads input and target once.
    """

    _name = ""

    def __init__(self, reduction, param):
        self.reduction = v.check_reduction(reduction)
        self._param = param
        self._saved = None

    def _call(self, input, target, stream):  # pragma: no cover - overridden
        raise NotImplementedError

    def __call__(self, input, target, *, stream=None):
        call = self._call(input, target, stream)
        value, full_grad = call.value_and_grad_full()
        self._saved = (call, full_grad)
        return value

    forward = __call__

    def backward(self, grad_output=1.0):
        """``(grad_input, grad_target)`` of the last forward call, times ``grad_output``
        (a scalar for 'mean'/'sum', an array broadcastable to the loss for 'none'; cast
        to the computation dtype). New arrays on every call: the caller's to change."""
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before a forward call")
        call, full = self._saved
        return call.backward_from(full, grad_output)

    def __repr__(self):
        return f"{type(self).__name__}(reduction={self.reduction!r}, {self._name}={self._param!r})"


class SmoothL1Loss(_Criterion):
    """torch's ``nn.SmoothL1Loss``: ``loss = crit(input, target)``; ``crit.backward()``."""

    _name = "beta"

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        reduction = v.legacy_reduction(size_average, reduce, reduction)
        super().__init__(reduction, v.check_beta(beta))

    @property
    def beta(self):
        return self._param

    def _call(self, input, target, stream):
        return _smooth_l1_call(input, target, self._param, self.reduction, None, stream=stream)


class HuberLoss(_Criterion):
    """torch's ``nn.HuberLoss``: ``loss = crit(input, target)``; ``crit.backward()``."""

    _name = "delta"

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction, v.check_delta(delta))

    @property
    def delta(self):
        return self._param

    def _call(self, input, target, stream):
        return _huber_call(input, target, self._param, self.reduction, None, stream=stream)
