"""The host backend: a call on NumPy data (and anything NumPy converts), run by the
``_cpu`` kernels over flat buffers.

:class:`HostCall` implements ``_call.Call``. Its constructor checks and normalises the
operands once: two ndarrays of one float32/float64 dtype and shape, or such an ndarray
and a Python number as target (the common cases), are taken as they are; anything else
(lists, NumPy scalars, broadcasting, integer, bool and float16 data, mixed dtypes, the
other byte order, non-contiguous layouts, a weight) is converted as the kernels read it.
An operand that is one value broadcast over the loss goes to the kernels as a 0-d array,
read for every element. Every operation then runs one
kernel and delivers the result in the caller's shape and dtype.
"""

import math
from typing import NamedTuple

import numpy as np

from . import _call, _cpu, _sum_to
from . import _validate as v

_FLOAT32, _FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)
# integers up to this size convert to float64 exactly, so to float32 with one rounding, as
# NumPy converts an integer operand; larger ones take the general path
_EXACT_INT_LIMIT = 2 ** 53
_OPERAND_NAMES = ("input", "target", "weight")


class _Plan(NamedTuple):
    """What a host call runs, fixed by its loss, parameter, dtype, size and reduction:
    the kernel scalars (``_call.Scalars``), the reduction's factor on each gradient
    element (``scale``), and the kernel calls of the loss's kind for this size and dtype
    (``_cpu.kernel_calls``): ``calls`` for any operands, ``direct`` (by the target's ndim) for
    the types that ``_cpu.DirectCalls`` takes. Flat, not nested: each attribute lookup
    costs a small call. The scalars are Python floats holding values of the dtype, as
    the kernels take them."""
    kind: int
    p: float
    half: float
    half_p: float
    one: float
    scale: float
    calls: _cpu.DispatchedCalls
    direct: "tuple[_cpu.DirectCalls | _cpu.DispatchedCalls, _cpu.DirectCalls | _cpu.DispatchedCalls]"


_PLANS: dict[tuple, "_Plan"] = {}  # (spec, dtype, n, reduction) -> _Plan


def _plan(spec, dtype, n, reduction):
    """The :class:`_Plan` of a host call; cached (a dict: an ``lru_cache`` lookup costs
    twice as much), as looking its parts up one by one costs about 0.4 us a call, a
    sixth of a small call's handling."""
    key = (spec, dtype, n, reduction)
    plan = _PLANS.get(key)
    if plan is None:
        plan = _new_plan(spec, dtype, n, reduction)
        if len(_PLANS) < 1024:  # a bound on what a loop over many sizes keeps
            _PLANS[key] = plan
    return plan


def _new_plan(spec, dtype, n, reduction):
    s = spec.scalars(dtype)
    return _Plan(s.kind, float(s.p), float(s.half), float(s.half_p), float(s.one),
                 float(_call.reduction_scale(dtype, n, reduction == "mean")),
                 *_cpu.kernel_calls(s.kind, n, dtype))


def kernel_operand(array, shape):
    """``array`` (of a float dtype the kernels take) broadcast to ``shape`` (a tuple) as
    the kernels read it, without a copy where they can:

    - 1-D C-contiguous (itself or a view) when it has the shape and layout;
    - one value read for every element (a 0-d copy) when it holds one value and the loss
      more;
    - a read-only 2-D to 4-D view of the loss's elements in C order (see
      ``_call.broadcast_layout``): a ``(rows, 1)`` or ``(1, cols)`` target against a
      ``(rows, cols)`` input, a column slice, a ``(1, C, 1, 1)`` weight against an
      ``(N, C, H, W)`` input. The kernels copy it block by block into a buffer on their
      stack (``_jit.block_of``);
    - else a flat copy.
    """
    if array.shape == shape and array.flags.c_contiguous:
        return _flat(array)
    if array.size == 1:
        if math.prod(shape) > 1:
            return np.array(array.reshape(()))  # a copy: writeable, C-contiguous, ours
        return v.flat_array(np.broadcast_to(array, shape))
    key = (array.shape, array.strides, array.itemsize, shape)
    layout = _LAYOUTS.get(key, False)
    if layout is False:  # cached: working it out costs more than a small call's kernel
        layout = _call.broadcast_layout(*key)
        if len(_LAYOUTS) < 1024:
            _LAYOUTS[key] = layout
    if layout is None:
        return v.flat_array(np.broadcast_to(array, shape))
    if array.flags.c_contiguous:  # the quick way (as_strided costs 2 us)
        view = np.ndarray(layout[0], array.dtype, array, 0, layout[1])
    else:
        view = np.lib.stride_tricks.as_strided(array, *layout)
    view.flags.writeable = False  # one numba type for every such view
    return view


_LAYOUTS: dict[tuple, "tuple | None"] = {}  # kernel_operand's key -> broadcast_layout


def _broadcasts_to(shape, to):
    """Whether an array of ``shape`` broadcasts to ``to`` (without growing it); cached:
    working it out costs a quarter of a small call's handling."""
    if shape == to:
        return True
    key = (shape, to)
    answer = _BROADCASTS.get(key)
    if answer is None:
        lead = len(to) - len(shape)
        answer = lead >= 0 and all(d == 1 or d == t for d, t in zip(shape, to[lead:]))
        if len(_BROADCASTS) < 1024:
            _BROADCASTS[key] = answer
    return answer


_BROADCASTS: dict[tuple, bool] = {}  # (shape, to) -> _broadcasts_to's answer


def _flat(buf):
    """A C-contiguous buffer as the kernels' 1-D view (itself when already 1-D)."""
    return buf if buf.ndim == 1 else buf.reshape(-1)


class HostCall(_call.Call):
    """One call's operands as the ``_cpu`` kernels read them: ``a`` (input), ``b``
    (target) and ``w`` (weight, or None), flat, C-contiguous, of the broadcast shape's
    element count, in the computation dtype (a float32 operand beside a float64 one
    stays float32: the kernels widen each element exactly); ``sources``: the caller's
    input, target (and weight) arrays, which ``out=`` may not overlap; ``calls``: the
    kernel calls it makes, the plan's ``direct`` ones where the operands have the types
    those take (see ``_cpu.DirectCalls``), else its dispatched ones."""

    __slots__ = ("spec", "reduction", "dtype", "out_dtype", "shape", "input_shape",
                 "target_shape", "n", "a", "b", "sources", "plan", "calls", "__dict__")
    # defaults that most calls keep, read from the class until set in the instance's
    # ``__dict__`` (each assignment costs a twentieth of a small call's handling)
    w = None
    upstream = None
    upstream_value = 1.0  # the plan's ``one``: the kernels take Python floats
    takes_ndarray_out = True

    def __init__(self, input, target, spec, reduction, weight=None, warn_shapes=True):
        self.spec = spec
        # the common cases need no conversion (at 1e3 elements _normalise costs several
        # times the kernel): a float32/float64 ndarray as input; as target an ndarray of
        # its dtype and shape, or broadcast to its shape, or a Python number, which takes
        # the array's dtype as in NumPy and is read as one value; no weight, or an ndarray
        # of the dtype broadcast to the shape. (NumPy's native float dtypes are
        # singletons, so ``is`` suffices: any other dtype object, the other byte order
        # say, takes the general path.)
        dtype = input.dtype if type(input) is np.ndarray else None
        b = None
        # whether a, b and w have the types the plan's direct calls take: views of ours
        # (no code of the caller's, which may run before the kernel does, can reshape
        # them) of ndarrays that are C-contiguous, aligned and writeable
        # (``flags.carray``), or a 0-d array of ours, and no weight
        direct = weight is None
        if (dtype is _FLOAT32 or dtype is _FLOAT64) and type(reduction) is str and (
                weight is None or (type(weight) is np.ndarray and weight.dtype is dtype
                                   and _broadcasts_to(weight.shape, input.shape))):
            shape = input.shape
            if type(target) is np.ndarray:
                if target.dtype is dtype and target.shape == shape:
                    if target.flags.carray:
                        b = target.view() if target.ndim == 1 else target.reshape(-1)
                    else:  # flattened, viewed or copied
                        b, direct = kernel_operand(target, shape), False
                    self.target_shape = shape
                    self.sources = (input, target)
                elif target.dtype is dtype and _broadcasts_to(target.shape, shape) and input.size > 1:
                    # a target broadcast along some axes of the input's shape, read in place
                    if warn_shapes:
                        v.warn_shape_mismatch(shape, target.shape)
                    b, direct = kernel_operand(target, shape), False
                    self.target_shape = target.shape
                    self.sources = (input, target)
            elif ((type(target) is float or (type(target) is int and -_EXACT_INT_LIMIT <= target <= _EXACT_INT_LIMIT))
                    and input.size > 1):
                b = np.array(target, dtype)  # 0-d: the kernels read it for every element
                self.target_shape = ()
                self.sources = (input,)
        if b is not None:
            if weight is not None:
                self.w = kernel_operand(weight, shape)
                self.sources += (weight,)
            self.dtype = self.out_dtype = dtype
            self.shape = self.input_shape = shape
            self.n = n = input.size
            if input.flags.carray:
                self.a = input.view() if input.ndim == 1 else input.reshape(-1)
            else:
                self.a, direct = kernel_operand(input, shape), False
            self.b = b
            # a plan is only made for a valid reduction: finding one checks it
            plan = _PLANS.get((spec, dtype, n, reduction))
            if plan is None:
                reduction = v.check_reduction(reduction)  # raises, or maps torch's old name
                plan = _plan(spec, dtype, n, reduction)
            self.calls = plan.direct[b.ndim] if direct else plan.calls
        else:
            reduction = v.check_reduction(reduction)
            self._normalise(input, target, weight, warn_shapes)
            plan = _plan(spec, self.dtype, self.n, reduction)
            self.calls = plan.calls
        self.reduction = reduction
        self.plan = plan

    def _normalise(self, input, target, weight, warn_shapes):
        """Any other operands, converted as the kernels read them; all arithmetic happens
        in the computation dtype."""
        x, y = v.Operand(input, "input"), v.Operand(target, "target")
        w = None if weight is None else v.Operand(weight, "weight")
        self._resolve(x, y, w, warn_shapes, (x.array.shape, y.array.shape,
                                             None if w is None else w.array.shape))
        # the kernels take input - target in the wider of the two arrays' dtypes: when
        # neither has the computation dtype (float32 operands with a float64 weight), both
        # are converted. A Python number takes the dtype as in NumPy (float32 - 0.3 is
        # computed in float32), an integer array as in torch.
        widen = x.array.dtype == self.dtype or y.array.dtype == self.dtype
        self.a = self._kernel_operand(x, widen)
        self.b = self._kernel_operand(y, widen)
        self.w = None if w is None else self._kernel_operand(w)
        self.sources = (x.array, y.array) if w is None else (x.array, y.array, w.array)

    def _kernel_operand(self, op, widen=True):
        """Operand ``op`` as the kernels read it: in the computation dtype (see
        ``v.in_dtype``; an integer array or a Python number, which take the dtype, rounded
        to the result dtype first), laid out for the loss's shape by
        :func:`kernel_operand` (read in place where it can: one value, or broadcast along
        some axes)."""
        via = None if op.is_float_array else self.out_dtype
        return kernel_operand(v.in_dtype(op.array, self.dtype, widen, via), self.shape)

    def set_upstream(self, grad_output):
        go = v.upstream_gradient(grad_output, self.reduction, self.shape, self.dtype,
                                 self.out_dtype)
        if go.size != 1:
            self.upstream, self.upstream_value = kernel_operand(go, self.shape), self.plan.one
            self.calls = self.plan.calls  # the direct calls take no upstream array
        else:  # one value, of any shape that broadcasts to the loss's: a scalar
            self.upstream, self.upstream_value = None, float(go.reshape(())[()])

    # -- where results go ---------------------------------------------------------------

    def _buffer(self, out, shape):
        """Where a kernel writes an array of the broadcast shape: straight into ``out``
        (checked against ``shape``, the result's) when it is that, C-contiguous and in the
        computation dtype, else a new array (copied to ``out`` by :meth:`sum_to`)."""
        if out is not None:
            v.check_out(out, shape, self.out_dtype, zip(self.sources, _OPERAND_NAMES))
            # an ndarray as the direct calls take it (C-contiguous, aligned, writeable)
            if (type(out) is np.ndarray and out.dtype == self.dtype and out.flags.carray
                    and tuple(shape) == self.shape):
                return out
        return np.empty(self.shape, self.dtype)

    def sum_to(self, full, shape, out=None, negate=False):
        if shape is self.shape and out is None and not negate and full.dtype is self.out_dtype:
            return full  # the common case: nothing to sum, negate, cast or copy
        # NumPy's sum, bit for bit, from a faster kernel where one applies
        result = _sum_to.sum_to_shape(full, shape)
        if result is None:
            result = v.sum_to_shape(full, shape)
        if negate:
            result = np.negative(result)
        # ``is not`` first: comparing dtypes costs a tenth of a small call
        if result.dtype is not self.out_dtype and result.dtype != self.out_dtype:
            # float32 -> float16 into a new array: NumPy's overflow warning, raised as an
            # error, then leaves out= as it was
            result = result.astype(self.out_dtype)
        if out is None or result is out:
            return result
        np.copyto(out, result)
        return out

    def times_upstream(self, full):
        if self.upstream is None:
            return full * self.upstream_value
        return full * self.upstream.reshape(self.shape)

    # -- operations: one kernel each ----------------------------------------------------

    def _loss_sum(self, grad_out=None, scale=None):
        """The kernel's float64 sum(w * loss(a - b)), writing ``grad_out`` = scale * w *
        dloss(a - b) in the same pass when given (``scale``: the reduction's factor
        unless given)."""
        plan = self.plan
        if grad_out is None:
            total = self.calls.loss_sum(self.a, self.b, self.w, plan.p, plan.half,
                                        plan.half_p, plan.one, None)
        else:
            total = self.calls.loss_sum_grad(self.a, self.b, self.w, plan.p, plan.half,
                                             plan.half_p,
                                             plan.scale if scale is None else float(scale),
                                             _flat(grad_out))
        if math.isfinite(total):
            return total
        return _cpu.FAMILIES[plan.kind].loss_sum_again(self.a, self.b, self.w, plan.p,
                                                       plan.half, plan.half_p)

    def _loss_each(self, loss_out, grad_out=None):
        """``loss_out`` = w * loss(a - b), and ``grad_out`` = w * dloss(a - b) in the same
        pass when given."""
        plan = self.plan
        if grad_out is None:
            self.calls.loss_each(self.a, self.b, self.w, plan.p, plan.half, plan.half_p,
                                 _flat(loss_out), None)
        else:
            self.calls.loss_each_grad(self.a, self.b, self.w, plan.p, plan.half, plan.half_p,
                                      _flat(loss_out), _flat(grad_out))

    def loss(self, out=None):
        if self.reduction != "none":
            if out is not None:
                raise ValueError(f"out= is only for reduction='none', not '{self.reduction}'")
            return _call.total_to_result(self._loss_sum(), self.n, self.reduction,
                                         self.out_dtype)
        buf = self._buffer(out, self.shape)
        self._loss_each(buf)
        return self.sum_to(buf, self.shape, out)

    def grad_full(self, out=None, scale=None):
        plan = self.plan
        buf = self._buffer(out, self.input_shape)
        self.calls.grad_each(self.a, self.b, self.w, self.upstream, plan.p,
                             plan.scale if scale is None else float(scale), self.upstream_value,
                             _flat(buf))
        return buf

    def hess_full(self, out=None, scale=None):
        plan = self.plan
        buf = self._buffer(out, self.input_shape)
        self.calls.hess_each(self.a, self.b, self.w, plan.p, plan.half,
                             plan.scale if scale is None else float(scale), _flat(buf))
        return buf

    def value_and_grad_full(self, out=None):
        gbuf = self._buffer(out, self.input_shape)
        if self.reduction == "none":
            value = np.empty(self.shape, self.dtype)
            self._loss_each(value, gbuf)
            return value.astype(self.out_dtype, copy=False), gbuf
        total = self._loss_sum(gbuf)
        return _call.total_to_result(total, self.n, self.reduction, self.out_dtype), gbuf

    def loss_sum(self, with_grad, scale):
        if not with_grad:
            return self._loss_sum(), None
        grad = np.empty(self.shape, self.dtype)
        return self._loss_sum(grad, scale), grad
