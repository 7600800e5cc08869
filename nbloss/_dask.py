"""The API layer for Dask arrays: lazy, chunk by chunk, on nbloss's own kernels.

Imported only when a Dask array reaches nbloss (``import nbloss`` never imports dask).
Every operand is broadcast to the loss shape and aligned with the chunks of the leading
Dask operand (input, else target); a Dask operand chunked differently is rechunked, with
a warning, since that moves data. Each chunk task runs an ordinary nbloss call on the
chunk's NumPy arrays:

- 'none' losses, gradients and Hessian diagonals are Dask arrays with those chunks;
- 'mean'/'sum' are 0-d Dask arrays: each chunk's weighted losses summed in float64 by
  the kernel, the partial sums added by Dask's tree reduction in float64, divided by the
  element count (known from the shape) and cast to the result dtype at the end;
- ``*_value_and_grad`` runs the fused kernel once per chunk: the loss partial and the
  gradient chunk are two views of one task's result, so computing both together
  (``dask.compute(value, grad)``) reads every chunk once.
"""

import dask.array as da
import numpy as np

from . import _validate as v
from ._losses import CallBase


def _no_out(out):
    if out is not None:
        raise ValueError("out= is not supported for Dask arrays (results are lazy)")


def _finish(total, n, reduction, out_dtype):
    """float64 total -> the reduction's result in ``out_dtype`` (NaN: the mean of nothing)."""
    if reduction == "mean":
        total = total / n if n else np.float64(np.nan)
    return np.asarray(total, dtype=out_dtype)


def _chunk_call(a, b, w, go, spec):
    """An ordinary (NumPy) nbloss call on one chunk."""
    from ._losses import new_call
    loss, param, reduction = spec
    return new_call(a, b, loss, param, reduction, w, grad_output=go, warn_shapes=False)


def _chunk_elementwise(a, b, w=None, go=None, *, spec, op, scale):
    call = _chunk_call(a, b, w, go, spec)
    if op == "loss":
        return call.loss()
    if op == "hess":
        return call.hess_full(scale=scale)
    return call.grad_full(scale=scale)


def _chunk_fused(a, b, w, *, spec, scale, with_grad):
    """(float64 partial sum of the losses, gradient chunk or None): one pass."""
    return _chunk_call(a, b, w, None, spec).sum_and_grad(scale, with_grad)


class DaskCall(CallBase):
    """One call's arguments as aligned Dask arrays; the same operations and results as
    ``_losses._Call``, as lazy Dask arrays."""

    def __init__(self, input, target, loss, param, reduction, weight=None, grad_output=None,
                 warn_shapes=True, stream=None):
        if stream is not None:
            raise ValueError("stream= is only for CUDA device arrays, not Dask arrays")
        self.reduction = v.check_reduction(reduction)
        self.spec = (loss, param)
        ops = {"input": input, "target": target}
        if weight is not None:
            ops["weight"] = weight
        meta = {name: self._dtype_source(x, name) for name, x in ops.items()}
        self.dtype, self.out_dtype = v.result_dtypes(*meta.values())
        self.input_shape, self.target_shape = np.shape(input), np.shape(target)
        self.shape = v.broadcast_shape(self.input_shape, self.target_shape)
        if (warn_shapes and self.input_shape != self.target_shape
                and not any(isinstance(x, (int, float)) for x in (input, target))):
            v.warn_shape_mismatch(self.input_shape, self.target_shape)
        if weight is not None:
            v.check_broadcasts_to(np.shape(weight), self.shape, "weight")
        self.n = int(np.prod(self.shape, dtype=np.int64))
        lead = input if v.is_dask_array(input) else target
        self.chunks = da.broadcast_to(lead, self.shape).chunks
        self.a = self._aligned(input, "input")
        self.b = self._aligned(target, "target")
        self.w = None if weight is None else self._aligned(weight, "weight")
        self.go = None  # a number, or a Dask array aligned like the operands
        if grad_output is not None:
            self._upstream(grad_output)

    @staticmethod
    def _dtype_source(x, name):
        """What ``np.result_type`` should see for operand ``x`` (validated like on the CPU)."""
        if v.is_dask_array(x):
            if type(x._meta) is not np.ndarray:
                raise TypeError(f"{name} is a Dask array of {type(x._meta).__module__}."
                                f"{type(x._meta).__name__} chunks; nbloss takes Dask arrays of "
                                "NumPy chunks (for CuPy data, call nbloss on the CuPy arrays)")
            x = np.empty(0, x.dtype)  # Operand checks the dtype
        return v.Operand(x, name)

    def _aligned(self, x, name):
        """``x`` broadcast to the loss shape as a Dask array with the call's chunks (a
        Python number stays a number: the chunk calls broadcast it)."""
        if isinstance(x, (int, float)) and not isinstance(x, bool):
            return x
        if not v.is_dask_array(x):
            return da.from_array(np.broadcast_to(np.asarray(x), self.shape), chunks=self.chunks)
        x = da.broadcast_to(x, self.shape)
        if x.chunks != self.chunks:
            v.warn(f"{name}'s chunks differ from those of the loss ({name} {x.chunksize} vs "
                   f"{tuple(max(c) for c in self.chunks)}): rechunked to match, which moves "
                   "data; chunk the operands alike to avoid it")
            x = x.rechunk(self.chunks)
        return x

    def _upstream(self, grad_output):
        """A number multiplies every element; a Dask or NumPy array ('none' only) is
        aligned like the operands."""
        if np.ndim(grad_output) == 0 and not v.is_dask_array(grad_output):
            self.go = v.upstream_gradient(grad_output, "sum", (), self.dtype)[()]
        elif self.reduction != "none":
            raise ValueError(f"grad_output of a '{self.reduction}' loss must be a scalar, "
                             f"got shape {np.shape(grad_output)}")
        else:
            v.check_broadcasts_to(np.shape(grad_output), self.shape, "grad_output")
            self.go = self._aligned(grad_output, "grad_output")

    # -- building blocks ---------------------------------------------------------------

    def _map(self, fn, dtype, **kw):
        """``da.map_blocks(fn)`` over the aligned operands: Dask arrays by chunk, numbers
        and None by keyword, as they are."""
        operands = {"a": self.a, "b": self.b, "w": self.w, "go": self.go}
        names = [name for name, x in operands.items() if v.is_dask_array(x)]
        arrays = [operands.pop(name) for name in names]
        fixed = operands

        def run(*chunks, **extra):
            return fn(**dict(zip(names, chunks)), **fixed, **extra)

        return da.map_blocks(run, *arrays, dtype=dtype, **kw)

    def _elementwise(self, op, scale=None):
        spec = self.spec + ("none" if op == "loss" else self.reduction,)
        return self._map(_chunk_elementwise, self.out_dtype if op == "loss" else self.dtype,
                         spec=spec, op=op, scale=scale,
                         meta=np.empty((0,) * len(self.shape), self.dtype))

    def _fused(self, with_grad):
        """One task per chunk returning (float64 partial, gradient chunk)."""
        spec, scale = self.spec + ("sum",), self.scale

        def run(a, b, w=None, go=None):
            return _chunk_fused(a, b, w, spec=spec, scale=scale, with_grad=with_grad)

        fused = self._map(run, object, meta=np.empty((0,) * len(self.shape), object))
        ndim = len(self.shape)
        partials = da.map_blocks(lambda pair: np.full((1,) * ndim, pair[0]), fused,
                                 chunks=tuple((1,) * len(c) for c in self.chunks),
                                 dtype=np.float64, meta=np.empty((0,) * ndim, np.float64))
        total = partials.sum(dtype=np.float64)  # Dask's tree reduction
        value = da.map_blocks(_finish, total, n=self.n, reduction=self.reduction,
                              out_dtype=self.out_dtype, dtype=self.out_dtype,
                              meta=np.empty((), self.out_dtype))
        grad = None
        if with_grad:
            grad = da.map_blocks(lambda pair: pair[1], fused, dtype=self.dtype,
                                 meta=np.empty((0,) * ndim, self.dtype))
        return value, grad

    def finish(self, full, shape, out=None, negate=False):
        """The broadcast-shape ``full`` summed back to ``shape`` and cast to the result dtype."""
        _no_out(out)
        full = v.sum_to_shape(full, shape)
        if negate:
            full = -full
        return full.astype(self.out_dtype, copy=False)

    # -- operations (``scale`` is the whole array's: each chunk's call would use its own)

    def loss(self, out=None):
        _no_out(out)
        if self.reduction == "none":
            return self._elementwise("loss")
        return self._fused(with_grad=False)[0]

    def grad_full(self, out=None):
        _no_out(out)
        return self._elementwise("grad", self.scale)

    def hess_full(self, out=None):
        _no_out(out)
        return self._elementwise("hess", self.scale)

    def value_and_grad_full(self, out=None):
        _no_out(out)
        if self.reduction == "none":
            return self._elementwise("loss"), self._elementwise("grad", self.scale)
        return self._fused(with_grad=True)
