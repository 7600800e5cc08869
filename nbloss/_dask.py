"""The Dask backend: the ``_call.Call`` of a call on Dask arrays, lazy, chunk by chunk,
on nbloss's own kernels.

Imported only when a Dask array reaches nbloss (``import nbloss`` never imports dask).
The loss's chunks along each axis are those of the first Dask operand (input, target,
weight, or a backward's grad_output) that has the axis at its full length. Every operand keeps its own size (see
``DaskCall._unexpanded``): chunked like the loss along the axes it has, one chunk of
length 1 along those it is broadcast along, which each chunk call reads in place; a Dask
operand chunked differently along its own axes is rechunked, with a warning, since that
moves data. Each chunk task runs the call of another backend on
the chunk's arrays: ``_host.HostCall`` for NumPy chunks, ``_device.DeviceCall`` for
CuPy chunks (or any chunk type that exports ``__cuda_array_interface__``), results in
the chunk's type.

- 'none' losses, gradients and Hessian diagonals are Dask arrays with those chunks;
- 'mean'/'sum' are 0-d Dask arrays: each chunk's weighted losses summed into a float64
  by the kernel, the partial sums added by Dask's tree reduction in float64 (on the device
  for CuPy chunks), divided by the element count (known from the shape) and cast to the
  result dtype at the end;
- ``*_value_and_grad`` runs the fused kernel once per chunk: the loss partial and the
  gradient chunk are two views of one task's result, so computing both together
  (``dask.compute(value, grad)``) reads every chunk once.
"""

import math
import sys

import dask.array as da
import numpy as np

from . import _call, _host
from . import _validate as v


def _no_out(out):
    if out is not None:
        raise ValueError("out= is not supported for Dask arrays (results are lazy)")


def _total_to_result(total, n, reduction, out_dtype):
    """The float64 total -> the reduction's result in ``out_dtype`` (NaN: the mean of
    nothing), a 0-d array of the partial sums' type, rounded as on the host."""
    if isinstance(total, (np.generic, np.ndarray, float)):
        return np.asarray(_call.total_to_result(float(total), n, reduction, out_dtype))
    if reduction == "mean":
        total = total / n if n else total * np.nan
    return total.astype(out_dtype)  # a CuPy 0-d array stays on the device


def _as_chunk(result, like):
    """A call's result in the chunk type of ``like``: NumPy as it is; a numba device
    array (what the CUDA path returns) wrapped, without a copy, as an array of ``like``'s
    library (``cupy.asarray``) unless ``like`` is a numba array itself."""
    if isinstance(result, np.ndarray) or getattr(like, "__cuda_ndarray__", False):
        return result
    return _library(like).asarray(result)


def _contiguous(chunk):
    """A device chunk as a C-contiguous array of its library (a copy only when needed)."""
    if getattr(chunk, "__cuda_ndarray__", False) or chunk.flags.c_contiguous:
        return chunk
    return _library(chunk).ascontiguousarray(chunk)


def _library(array):
    """The array library (module) that ``array`` belongs to: ``cupy`` for a CuPy array."""
    return sys.modules[type(array).__module__.split(".")[0]]


def _first(pair):
    return pair[0]


def _second(pair):
    return pair[1]


def _first_array(*chunks):
    """The first chunk that is an array (operands may be Python numbers or None)."""
    return next(c for c in chunks if c is not None and not isinstance(c, (int, float)))


def _chunk_call(a, b, w, upstream, spec, reduction):
    """An ordinary call on one chunk: a ``_host.HostCall`` of NumPy chunks, a
    ``_device.DeviceCall`` of device ones (``upstream``: the chunk's upstream gradient,
    or None)."""
    if any(v.is_device_array(c) for c in (a, b, w)):
        from ._device import DeviceCall
        call = DeviceCall(a, b, spec, reduction, w, warn_shapes=False)
    else:
        call = _host.HostCall(a, b, spec, reduction, w, warn_shapes=False)
    if upstream is not None:
        call.set_upstream(upstream)
    return call


def _chunk_elementwise(a, b, w=None, upstream=None, *, spec, reduction, op, scale):
    """One chunk of an elementwise result: 'loss', 'grad' or 'hess'."""
    call = _chunk_call(a, b, w, upstream, spec, reduction)
    if op == "loss":
        result = call.loss()
    elif op == "hess":
        result = call.hess_full(scale=scale)
    else:
        result = call.grad_full(scale=scale)
    return _as_chunk(result, _first_array(a, b, w, upstream))


def _chunk_loss_and_grad(a, b, w=None, upstream=None, *, spec):
    """(the chunk's losses, their gradient) from one fused pass, in the chunk type."""
    like = _first_array(a, b, w)
    value, grad = _chunk_call(a, b, w, None, spec, "none").value_and_grad_full()
    return _as_chunk(value, like), _as_chunk(grad, like)


def _chunk_loss_sum(a, b, w=None, upstream=None, *, spec, scale, with_grad, ndim):
    """(the float64 partial sum of the losses as an array of ``ndim`` ones, the gradient
    chunk or None), in the chunk type, from one pass."""
    like = _first_array(a, b, w)
    total, grad = _chunk_call(a, b, w, None, spec, "sum").loss_sum(with_grad, scale)
    if isinstance(total, float):
        partial = np.full((1,) * ndim, total)
    else:
        partial = _as_chunk(total, like).reshape((1,) * ndim)
    return partial, None if grad is None else _as_chunk(grad, like)


def _known_shape(x, name):
    """Refuse a Dask array whose chunk sizes are unknown (NaN, as after ``x[x > 0]``):
    broadcasting and the element count need them."""
    if any(math.isnan(d) for d in x.shape):
        raise ValueError(f"{name} is a Dask array of unknown chunk sizes (shape {x.shape}, as "
                         f"after boolean indexing): call {name}.compute_chunk_sizes() first")


def _chunk_library(x, name):
    """'numpy' or 'cuda': where the chunks of Dask array ``x`` live (refused otherwise)."""
    meta = x._meta
    if type(meta) is np.ndarray:
        return "numpy"
    if v.is_device_array(meta):
        return "cuda"
    raise TypeError(f"{name} is a Dask array of {type(meta).__module__}.{type(meta).__name__} "
                    "chunks; nbloss takes Dask arrays of NumPy chunks or of CUDA arrays "
                    "(CuPy)")


class DaskCall(_call.Call):
    """One call's operands as Dask arrays aligned to the loss's shape and chunks; the same
    operations and results as ``_host.HostCall``, as lazy Dask arrays."""

    def __init__(self, input, target, spec, reduction, weight=None, warn_shapes=True,
                 stream=None, grad_output=None):
        """``grad_output``: a backward's, when it may be the one Dask array (the loss's
        chunks and chunk type are then its own); ``set_upstream`` takes it."""
        if stream is not None:
            raise ValueError("stream= is only for CUDA device arrays, not Dask arrays")
        self.spec = spec
        self.reduction = v.check_reduction(reduction)
        ops = {"input": input, "target": target}
        if weight is not None:
            ops["weight"] = weight
        lead_name, lead = next((name, x) for name, x in (*ops.items(), ("grad_output", grad_output))
                               if v.is_dask_array(x))
        self.meta = lead._meta
        self.on_device = _chunk_library(lead, lead_name) == "cuda"
        x, y, w = (self._dtype_source(ops[name], name) if name in ops else None
                   for name in ("input", "target", "weight"))
        self._resolve(x, y, w, warn_shapes, (np.shape(input), np.shape(target),
                                             np.shape(weight)))
        # (a grad_output of unknown chunk sizes is refused by set_upstream, not here)
        self.chunks = self._loss_chunks([x for x in (*ops.values(), grad_output)
                                         if v.is_dask_array(x) and not math.isnan(sum(x.shape))])
        self.a = self._aligned(input, "input")
        self.b = self._aligned(target, "target")
        self.w = None if weight is None else self._aligned(weight, "weight")
        # a Dask array aligned like the operands, in the computation dtype, or None
        self.upstream, self.upstream_value = None, spec.scalars(self.dtype).one

    def _dtype_source(self, x, name):
        """What ``np.result_type`` should see for operand ``x`` (validated like on the CPU);
        the operands' chunks must all live where the leading operand's do."""
        if v.is_dask_array(x):
            _known_shape(x, name)
            if (_chunk_library(x, name) == "cuda") != self.on_device:
                where = ("CUDA arrays", "NumPy arrays")
                raise TypeError(f"{name}'s chunks are {where[self.on_device]} but the loss's "
                                f"are {where[not self.on_device]}: chunk every operand alike "
                                "(x.map_blocks(cupy.asarray) or x.map_blocks(cupy.asnumpy))")
            x = np.empty(0, x.dtype)  # Operand checks the dtype
        elif self.on_device and not v.is_python_number(x):
            if not v.is_device_array(x):
                raise TypeError(f"{name} is a host {type(x).__name__} but the loss's chunks are "
                                "CUDA arrays: nbloss does not copy between host and device; "
                                "pass a CuPy array, a Dask array of them, or a Python number")
            x = np.empty(0, x.dtype)
        return v.Operand(x, name)

    def _aligned(self, x, name):
        """``x`` broadcast to the loss shape as a Dask array with the call's chunks (a
        Python number stays a number: the chunk calls broadcast it)."""
        if v.is_python_number(x):
            return x
        if not v.is_dask_array(x):
            if not self.on_device:  # as the CPU reads it (a list of ints is float64)
                return self._unexpanded(v.Operand(x, name).array)
            # a CuPy array: one chunk on the device, broadcast and cut by Dask
            x = da.broadcast_to(da.from_array(x, chunks=x.shape, asarray=False), self.shape)
            x = x.rechunk(self.chunks)
        else:
            x = self._unexpanded(x, name)
        if self.on_device:  # the CUDA kernels take C-contiguous chunks (broadcast views are not)
            x = x.map_blocks(_contiguous, dtype=x.dtype, meta=x._meta)
        return x

    def _loss_chunks(self, arrays):
        """The loss's chunks: along each axis, those of the first of the Dask ``arrays``
        that has the axis at the loss's length (one chunk where none has)."""
        chunks = []
        for k, whole in enumerate(self.shape):
            own = (x.chunks[k - len(self.shape) + x.ndim] for x in arrays
                   if k - len(self.shape) + x.ndim >= 0 and x.shape[k - len(self.shape) + x.ndim] == whole)
            # an axis of length 1 is one chunk, whatever an operand's (Dask allows (1, 0))
            chunks.append(next(own, (whole,)) if whole != 1 else (1,))
        return tuple(chunks)

    def _unexpanded(self, x, name=None):
        """Operand ``x`` (a NumPy array, or a Dask array named ``name``) as a Dask
        array of its own elements, chunked like the loss along the axes it has, in one
        chunk of length 1 along those it is broadcast along: ``map_blocks`` hands that
        chunk to every chunk call there, which reads it in place
        (``_host.kernel_operand``). (``da.from_array`` copies its argument: of the
        broadcast array, that was a copy of the loss's size; a Dask array broadcast and
        rechunked to the loss's chunks was copied to the loss's size chunk by chunk.) A
        Dask array chunked otherwise along its own axes is rechunked, with a warning."""
        dask = v.is_dask_array(x)
        if 0 in self.shape:
            x = da.broadcast_to(x, self.shape) if dask else np.broadcast_to(x, self.shape)
            return x.rechunk(self.chunks) if dask else da.from_array(x, chunks=self.chunks)
        if dask:
            ones = tuple((1,) if length == 1 else c for length, c in zip(x.shape, x.chunks))
            if ones != x.chunks:  # a length-1 axis chunked (1, 0): one chunk, nothing moved
                x = x.rechunk(ones)
        x = x.reshape((1,) * (len(self.shape) - x.ndim) + x.shape)
        chunks = tuple(chunks if length == whole else (length,)
                       for length, whole, chunks in zip(x.shape, self.shape, self.chunks))
        if not dask:
            return da.from_array(x, chunks=chunks)
        if x.chunks != chunks:
            v.warn(f"{name}'s chunks differ from those of the loss ({name} {x.chunksize} "
                   f"vs {tuple(max(c) for c in chunks)}): rechunked to match, which "
                   "moves data; chunk the operands alike to avoid it")
            x = x.rechunk(chunks)
        return x

    def _meta(self, dtype, ndim=None):
        """An empty array of the chunks' type: what ``map_blocks`` should expect."""
        return da.utils.meta_from_array(self.meta, len(self.shape) if ndim is None else ndim,
                                        dtype=dtype)

    def set_upstream(self, grad_output):
        """A number multiplies every element, as does a NumPy array of one element; a
        Dask array ('none': broadcastable to the loss; 'mean'/'sum': of one element, read
        by each chunk call as its one value) or a NumPy array ('none') is aligned like
        the operands, and each chunk call rounds its chunk as the host does (to the
        result dtype, then in the computation dtype)."""
        dask = v.is_dask_array(grad_output)
        if dask:  # its shape known, its dtype one of an operand, its chunks the loss's kind
            self._dtype_source(grad_output, "grad_output")
        shape = np.shape(grad_output)
        if not dask and (len(shape) == 0 or self.reduction != "none"):
            # the host's checks and rounding: one value, of any shape for 'mean'/'sum'
            go = v.upstream_gradient(grad_output, "sum" if len(shape) == 0 else self.reduction,
                                     self.shape, self.dtype, self.out_dtype)
            self.upstream, self.upstream_value = None, go[()]
            return
        if self.reduction == "none":
            v.check_broadcasts_to(shape, self.shape, "grad_output")
        elif math.prod(shape) != 1:
            raise ValueError(f"grad_output of a '{self.reduction}' loss must be a scalar, "
                             f"got shape {shape}")
        elif 0 in self.shape:  # an empty loss: nothing to multiply (the host's answer)
            self.upstream, self.upstream_value = None, self.spec.scalars(self.dtype).one
            return
        else:  # one lazy value: each chunk call reads it as its one upstream value
            # (rechunked first: Dask's reshape fails on a (1, 0) chunking)
            grad_output = grad_output.rechunk((1,) * grad_output.ndim).reshape(())
        # each chunk call rounds its chunk as the host does (to the result dtype), on the
        # host or the device: Dask's astype would need the chunks' library to have one
        self.upstream = self._aligned(grad_output, "grad_output")
        self.upstream_value = self.spec.scalars(self.dtype).one

    # -- building blocks ---------------------------------------------------------------

    def _map(self, chunk_fn, dtype, **kw):
        """``da.map_blocks`` of ``chunk_fn(a, b, w, upstream, **kw)`` over the aligned
        operands: the Dask ones by chunk, the rest (numbers, None) as they are."""
        upstream = self.upstream_value if self.upstream is None else self.upstream
        operands = {"a": self.a, "b": self.b, "w": self.w, "upstream": upstream}
        names = [name for name, x in operands.items() if v.is_dask_array(x)]
        arrays = [operands.pop(name) for name in names]
        fixed = operands

        def on_chunks(*chunks, **extra):
            return chunk_fn(**dict(zip(names, chunks)), **fixed, **extra)

        # the loss's chunks, stated: map_blocks would take an axis's chunks from the first
        # array when every array has one block there, and the first (the input) may be a
        # NumPy operand of length 1 along it (_unexpanded)
        return da.map_blocks(on_chunks, *arrays, dtype=dtype, chunks=self.chunks, **kw)

    def _elementwise(self, op, scale=None):
        dtype = self.out_dtype if op == "loss" else self.dtype
        return self._map(_chunk_elementwise, dtype, spec=self.spec, reduction=self.reduction,
                         op=op, scale=scale, meta=self._meta(dtype))

    def _loss_sum(self, with_grad):
        """(the reduction as a 0-d Dask array, the gradient or None) from one task per
        chunk. A Dask task has one result, so each returns the pair (float64 partial sum,
        gradient chunk) in a 0-d object array, from which the partials and the gradient
        are two views: computing both together reads each chunk once."""
        ndim = len(self.shape)
        pairs = self._map(_chunk_loss_sum, object, spec=self.spec, scale=self.scale,
                          with_grad=with_grad, ndim=ndim, meta=np.empty((0,) * ndim, object))
        partials = da.map_blocks(_first, pairs, chunks=tuple((1,) * len(c) for c in self.chunks),
                                 dtype=np.float64, meta=self._meta(np.float64))
        total = partials.sum(dtype=np.float64)  # Dask's tree reduction
        value = da.map_blocks(_total_to_result, total, n=self.n, reduction=self.reduction,
                              out_dtype=self.out_dtype, dtype=self.out_dtype,
                              meta=self._meta(self.out_dtype, ndim=0))
        grad = None
        if with_grad:
            grad = da.map_blocks(_second, pairs, dtype=self.dtype, meta=self._meta(self.dtype))
        return value, grad

    def sum_to(self, full, shape, out=None, negate=False):
        _no_out(out)
        full = v.sum_to_shape(full, shape)
        if negate:
            full = -full
        return full.astype(self.out_dtype, copy=False)

    def times_upstream(self, full):
        return full * (self.upstream_value if self.upstream is None else self.upstream)

    # -- operations (``scale`` is the whole array's: each chunk's call would use its own)

    def loss(self, out=None):
        _no_out(out)
        if self.reduction == "none":
            return self._elementwise("loss")
        return self._loss_sum(with_grad=False)[0]

    def grad_full(self, out=None, scale=None):
        _no_out(out)
        return self._elementwise("grad", self.scale if scale is None else scale)

    def hess_full(self, out=None, scale=None):
        _no_out(out)
        return self._elementwise("hess", self.scale if scale is None else scale)

    def value_and_grad_full(self, out=None):
        _no_out(out)
        if self.reduction != "none":
            return self._loss_sum(with_grad=True)
        # one task per chunk, its result the pair (losses, gradient): see _loss_sum
        pairs = self._map(_chunk_loss_and_grad, object, spec=self.spec,
                          meta=np.empty((0,) * len(self.shape), object))
        return (da.map_blocks(_first, pairs, dtype=self.out_dtype, meta=self._meta(self.out_dtype)),
                da.map_blocks(_second, pairs, dtype=self.dtype, meta=self._meta(self.dtype)))

    def loss_sum(self, with_grad, scale):  # pragma: no cover - a chunk's call provides it
        raise TypeError("loss_sum is run on a Dask array's chunks, not on the array")
