"""The CUDA backend: the ``_call.Call`` of a call whose operands live on a GPU (numba device arrays, CuPy arrays, torch CUDA tensors: anything exporting
``__cuda_array_interface__``, viewed without a copy).

Arguments are checked on the host from shapes and dtypes alone; broadcasting, reductions
and the sums of broadcast gradients run as kernels on the caller's stream
(``stream=``, default: the default stream). Nothing is copied between host and device,
and nothing waits for the GPU.

Results come back in the caller's array type (:data:`RESULT_TYPES`, keyed by the top
module of the deciding operand's type, :func:`deciding_operand`): CuPy arrays for CuPy,
torch CUDA tensors on the operand's device for torch, numba device arrays for numba and
for any other type; 'mean'/'sum' as 0-d arrays of that type. The kernels write numba
device arrays, which are wrapped without a copy; ``out=`` is returned as given.
"""

import sys

import numpy as np
from numba import cuda

from . import _call, _cuda
from . import _validate as v

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def check_available():
    """Raise a clear error where CUDA device arrays cannot be computed on."""
    if not cuda.is_available():
        raise RuntimeError("a CUDA device array was passed, but numba finds no usable CUDA GPU "
                           "(driver or CUDA libraries missing); install "
                           "'nbloss[cuda12]' or 'nbloss[cuda13]' to match the driver")


def as_device_array(value, name):
    """A numba view (no copy) of a device array."""
    if getattr(value, "__cuda_ndarray__", False):  # numba's own (and the simulator's)
        return value
    try:
        return cuda.as_cuda_array(value)
    except Exception as exc:  # torch refuses tensors that require grad, with advice
        raise TypeError(f"{name}: cannot view {type(value).__name__} as a CUDA array: {exc}") from exc


def _span(array):
    """(first, last) byte address of a contiguous device array."""
    iface = getattr(array, "__cuda_array_interface__", None)
    if iface is None:  # the simulator's arrays wrap NumPy arrays
        iface = array._ary.__array_interface__
    start = iface["data"][0]
    return start, start + array.nbytes


def _c_strides(shape):
    strides, step = [], 1
    for d in reversed(shape):
        strides.append(step)
        step *= d
    return tuple(reversed(strides))


def as_stream(stream):
    """A numba stream from ``stream=``: None (the default stream), a numba stream, a CuPy
    or torch stream, or a raw ``cudaStream_t`` handle as an int."""
    if stream is None:
        return cuda.default_stream()
    if type(stream).__module__.startswith("numba"):  # numba's own (or the simulator's)
        return stream
    if isinstance(stream, int) and not isinstance(stream, bool):
        return cuda.external_stream(stream)
    for attribute in ("ptr", "cuda_stream"):  # CuPy, torch
        handle = getattr(stream, attribute, None)
        if isinstance(handle, int):
            return cuda.external_stream(handle)
    raise TypeError(f"stream must be a numba, CuPy or torch CUDA stream or a raw handle, "
                    f"got {type(stream).__name__}")


class _Export:
    """A device array's ``__cuda_array_interface__`` with no stream to wait for, and a
    reference that keeps the array alive: CuPy and torch wrap it without a copy and
    without synchronising (CuPy would wait on the host for a stream named there). The
    result is ordered on the call's stream, as the kernels that wrote it."""

    __slots__ = ("array",)

    def __init__(self, array):
        self.array = array

    @property
    def __cuda_array_interface__(self):
        return dict(self.array.__cuda_array_interface__, stream=None)


def _as_numba(result, like):
    return result


def _as_cupy(result, like):
    cupy = sys.modules["cupy"]
    if not result.size:  # no memory to wrap: numba exports a null pointer
        return cupy.empty(result.shape, result.dtype)
    return cupy.asarray(_Export(result))


def _as_torch(result, like):
    torch = sys.modules["torch"]
    if not result.size:
        return torch.empty(tuple(result.shape), dtype=getattr(torch, result.dtype.name),
                           device=like.device)
    return torch.as_tensor(_Export(result), device=like.device)


# How a result (a numba device array) becomes the caller's type, by the top module of the
# deciding operand's type; a type not listed gets numba device arrays. The modules are
# taken from sys.modules: an operand of theirs means they are imported already.
RESULT_TYPES = {"numba": _as_numba, "cupy": _as_cupy, "torch": _as_torch}


def deciding_operand(operands):
    """The operand whose array type the results take: of ``operands`` (input, target,
    weight; None for no weight), the first device array with at least one dimension, else
    the first device array. Python numbers and 0-d arrays do not decide while an array
    with dimensions is there."""
    arrays = [op for op in operands if op is not None and v.is_device_array(op)]
    return next((op for op in arrays if len(op.shape)), arrays[0] if arrays else None)


def result_type(like):
    """The function that wraps a numba device array as ``like``'s type."""
    return RESULT_TYPES.get(type(like).__module__.partition(".")[0], _as_numba)


class _Operand:
    """An operand of a device call: a device array, or a Python number that broadcasts
    (weak for the dtype, as on the CPU). Host arrays, NumPy scalars (host 0-d arrays)
    included, are refused: no hidden copies."""

    __slots__ = ("array", "for_dtype", "shape")

    def __init__(self, value, name):
        if isinstance(value, bool):
            raise TypeError(f"{name} is a Python bool: pass a number or a device array")
        if v.is_python_number(value):
            self.array, self.for_dtype, self.shape = None, value, ()
            return
        if not v.is_device_array(value):
            raise TypeError(f"{name} is a host {type(value).__name__} but another operand is a "
                            "CUDA device array: nbloss does not copy between host and device; "
                            "move it first (numba.cuda.to_device, cupy.asarray, tensor.cuda()), "
                            "or pass a scalar as a Python number")
        array = as_device_array(value, name)
        if array.dtype not in _DTYPES:
            raise TypeError(f"{name} is a {array.dtype} device array; on CUDA nbloss computes "
                            "in float32 or float64")
        if array.size > 1 and not array.is_c_contiguous():
            raise ValueError(f"{name} is a non-contiguous device array (shape {array.shape}, "
                             f"strides {array.strides}); pass a C-contiguous copy")
        self.array, self.for_dtype, self.shape = array, array.dtype, tuple(array.shape)

    @property
    def is_python_scalar(self):
        return self.array is None


class DeviceCall(_call.Call):
    """One call's operands on the device, flat and broadcast for the ``_cuda`` kernels;
    the same operations and results as ``_host.HostCall``, as device arrays."""

    def __init__(self, input, target, spec, reduction, weight=None, warn_shapes=True,
                 stream=None):
        check_available()
        self.spec = spec
        self.reduction = v.check_reduction(reduction)
        self.stream = as_stream(stream)
        x, y = _Operand(input, "input"), _Operand(target, "target")
        w = None if weight is None else _Operand(weight, "weight")
        self._resolve(x, y, w, warn_shapes)
        self.sources = [(op.array, name) for op, name in ((x, "input"), (y, "target"), (w, "weight"))
                        if op is not None and op.array is not None]
        # the kernels take input - target in the wider of the two arrays' dtypes: when
        # neither has the computation dtype (float32 arrays beside a float64 weight), both
        # are converted at their own size first, as on the host
        if x.array is not None and y.array is not None and self.dtype not in (x.for_dtype, y.for_dtype):
            x.array, y.array = self._converted(x.array, self.dtype), self._converted(y.array, self.dtype)
        self.a, self.b = self._flat(x), self._flat(y)
        self.w = None if w is None else self._flat(w)
        self.scalars = spec.scalars(self.dtype)
        self.kernels = _cuda.FAMILIES[self.scalars.kind]
        self.upstream, self.upstream_value = None, self.scalars.one
        self.like = deciding_operand((input, target, weight))
        self.wrap = result_type(self.like)

    # -- results in the caller's array type ------------------------------------------------
    # The operations the public functions run end here; the gradient that
    # value_and_grad_full returns stays a numba array (summed, saved by a criterion).

    def give(self, result, out=None):
        """``result`` (a numba device array) as the caller's: ``out`` itself when given,
        else wrapped, without a copy, in the deciding operand's array type."""
        return out if out is not None else self.wrap(result, self.like)

    def grad(self, out=None):
        return self.give(super().grad(out), out)

    def value_and_grad(self, out=None):
        value, grad = super().value_and_grad(out)
        return value, self.give(grad, out)

    def hess_diag(self, out=None):
        return self.give(super().hess_diag(out), out)

    def backward(self, grad_output):
        return tuple(self.give(g) for g in super().backward(grad_output))

    def backward_from(self, full, grad_output):
        return tuple(self.give(g) for g in super().backward_from(full, grad_output))

    # -- device helpers ------------------------------------------------------------------

    def _empty(self, shape, dtype):
        return cuda.device_array(shape, dtype, stream=self.stream)

    def _launch(self, kernel, n):
        return kernel[_cuda.blocks(n), _cuda.THREADS, self.stream]

    def _flat(self, op):
        """``op`` broadcast to the call's shape as the kernels read it: a 1-D view when it
        has that shape already; a 1-D view with stride 0 of its one element when it holds
        one value (a Python number: a device array of one element made for it); a 2-D to
        4-D view with stride 0 along the broadcast axes where ``_call.broadcast_layout``
        finds one (``_cuda.value_at`` reads it by index arithmetic); else (five axes or
        more) a contiguous copy made on the device."""
        if op.array is not None and op.shape == self.shape:
            return op.array.reshape(self.n)
        if op.array is None or op.array.size == 1:
            one = op.array
            if self.n == 0:
                return self._empty(0, self.dtype if one is None else one.dtype)
            if one is None:
                one = self._empty(1, self.dtype)
                self._launch(_cuda.fill, 1)(one, self.dtype.type(op.for_dtype))
            return self._repeated(one) if self.n > 1 else one.reshape(1)
        array = op.array
        layout = _call.broadcast_layout(op.shape, array.strides, array.dtype.itemsize, self.shape)
        if layout is not None:
            return self._view(array, *layout)
        out = self._empty(self.n, op.array.dtype)
        # the operand's strides in the call's dimensions: 0 where it is broadcast
        lead = len(self.shape) - len(op.shape)
        own = _c_strides(op.shape)
        strides = tuple(0 if k < lead or op.shape[k - lead] == 1 else own[k - lead]
                        for k in range(len(self.shape)))
        self._launch(_cuda.expand, self.n)(op.array.reshape(op.array.size), (1,) + self.shape,
                                           (0,) + strides, out)
        return out

    def _converted(self, array, dtype):
        """A new C-contiguous device array of ``array``'s shape and values in ``dtype``
        (exact when widening, rounded when narrowing)."""
        out = self._empty(array.shape, dtype)
        if array.size:
            self._launch(_cuda.convert, array.size)(array.reshape(array.size), out.reshape(array.size))
        return out

    def _repeated(self, one):
        """``self.n`` elements that all read the one element of the device array ``one``
        (stride 0): the kernels read a broadcast value for every index, and nothing of
        the loss's size is allocated or written."""
        return self._view(one, (self.n,), (0,))

    def _view(self, array, shape, strides):
        """A read-only view of the C-contiguous device array ``array`` with ``shape`` and
        ``strides`` (bytes; 0 along broadcast axes), without a copy."""
        if _cuda.SIMULATOR:
            from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray

            return FakeCUDAArray(np.lib.stride_tricks.as_strided(
                array._ary, shape, strides, writeable=False), stream=self.stream)
        from numba.cuda.cudadrv.devicearray import DeviceNDArray

        return DeviceNDArray(shape, strides, array.dtype, stream=self.stream,
                             gpu_data=array.gpu_data)

    def set_upstream(self, grad_output):
        """A host number (0-d) multiplies every element; a device array broadcastable to
        the loss ('none'), or of one element ('mean'/'sum'), is read on the device."""
        if v.is_device_array(grad_output):
            go = _Operand(grad_output, "grad_output")
            if self.reduction == "none":
                v.check_broadcasts_to(go.shape, self.shape, "grad_output")
            elif go.array.size != 1:
                raise ValueError(f"grad_output of a '{self.reduction}' loss must be a scalar, "
                                 f"got shape {go.shape}")
            else:
                go.shape = ()
                go.array = go.array.reshape(1)
            if go.for_dtype != self.out_dtype:  # rounded to the result dtype, as on the host
                go.array = self._converted(go.array, self.out_dtype)
            self.upstream, self.upstream_value = self._flat(go), self.scalars.one
            return
        if isinstance(grad_output, np.ndarray) and grad_output.ndim:
            _Operand(grad_output, "grad_output")  # raises: a host array
        go = v.upstream_gradient(grad_output, "sum", (), self.dtype, self.out_dtype)
        self.upstream, self.upstream_value = None, go[()]

    def check_out(self, out, shape):
        out = as_device_array(out, "out") if v.is_device_array(out) else out
        if not getattr(out, "__cuda_ndarray__", False):
            raise TypeError(f"out must be a CUDA device array when the operands are, "
                            f"got {type(out).__name__}")
        if tuple(out.shape) != tuple(shape):
            raise ValueError(f"out has shape {tuple(out.shape)}, expected {tuple(shape)}")
        if out.dtype != self.out_dtype:
            raise TypeError(f"out has dtype {out.dtype}, expected {self.out_dtype}")
        if out.size > 1 and not out.is_c_contiguous():
            raise ValueError("out must be a C-contiguous device array")
        lo, hi = _span(out)
        for src, name in self.sources:
            s_lo, s_hi = _span(src)
            if out.nbytes and src.nbytes and lo < s_hi and s_lo < hi:
                raise ValueError(f"out shares memory with {name}: nbloss never writes into its inputs")
        return out

    # -- where results go ------------------------------------------------------------------

    def copy(self, array):
        """A new device array with ``array``'s values, copied on the call's stream."""
        result = self._empty(array.shape, array.dtype)
        result.copy_to_device(array, stream=self.stream)
        return result

    def _buffer(self, out, shape):
        """Where a kernel writes a result of the broadcast shape: ``out`` when it has that
        shape, else a new array (summed into ``out`` by :meth:`sum_to`)."""
        if out is not None:
            out = self.check_out(out, shape)
            if tuple(shape) == self.shape:
                return out
        return self._empty(self.shape, self.dtype)

    def sum_to(self, full, shape, out=None, negate=False):
        shape = tuple(shape)
        if shape == self.shape and not negate:
            return full
        result = self._empty(shape, self.out_dtype) if out is None else out
        lead = len(self.shape) - len(shape)
        padded = (1,) * lead + shape
        strides = _c_strides(self.shape)
        kept = [k for k in range(len(self.shape)) if padded[k] == self.shape[k]]
        summed = [k for k in range(len(self.shape)) if padded[k] != self.shape[k]]
        count = int(np.prod([self.shape[k] for k in summed], dtype=np.int64))
        if count >= _cuda.THREADS and result.size < count:
            kernel = _cuda.sum_to_by_blocks[max(1, min(result.size, 1 << 16)), _cuda.THREADS,
                                            self.stream]
        else:
            kernel = self._launch(_cuda.sum_to, result.size)
        kernel(
            full.reshape(full.size),
            (1,) + tuple(self.shape[k] for k in kept), (0,) + tuple(strides[k] for k in kept),
            (1,) + tuple(self.shape[k] for k in summed), (0,) + tuple(strides[k] for k in summed),
            count, -1.0 if negate else 1.0, result.reshape(result.size))
        return result

    def times_upstream(self, full):
        result = self._empty(self.shape, self.dtype)
        self._launch(_cuda.multiply, self.n)(full.reshape(self.n), self.upstream,
                                             self.upstream_value, result.reshape(self.n))
        return result

    # -- operations: one kernel each (and the block sums' sum for a reduction) ----------

    def _loss_sum(self, grad_out, scale=None, divisor=None, dtype=None):
        """The 'mean'/'sum' as a 0-d device array, writing ``grad_out`` in the same pass.
        ``scale``, ``divisor`` and ``dtype`` replace the call's gradient factor, the
        reduction's divisor and the result dtype (a Dask chunk's float64 partial sum)."""
        s = self.scalars
        nblocks = _cuda.blocks(self.n)
        block_sums = self._empty(nblocks, np.float64)
        self._launch(self.kernels.loss_sum, self.n)(
            self.a, self.b, self.w, s.p, s.half, s.half_p,
            self.scale if scale is None else scale, grad_out, block_sums)
        total = self._empty(1, self.out_dtype if dtype is None else dtype)
        if divisor is None:
            divisor = float(self.n) if self.reduction == "mean" else 1.0
        _cuda.add_block_sums[1, _cuda.THREADS, self.stream](block_sums, nblocks, divisor, total)
        return total.reshape(())

    def _loss_each(self, loss_out, grad_out):
        s = self.scalars
        self._launch(self.kernels.loss_each, self.n)(
            self.a, self.b, self.w, s.p, s.half, s.half_p, loss_out.reshape(self.n),
            None if grad_out is None else grad_out.reshape(self.n))

    def loss(self, out=None):
        if self.reduction != "none":
            if out is not None:
                raise ValueError(f"out= is only for reduction='none', not '{self.reduction}'")
            return self.give(self._loss_sum(None))
        buf = self._buffer(out, self.shape)
        self._loss_each(buf, None)
        return self.give(buf, out)

    def grad_full(self, out=None, scale=None):
        buf = self._buffer(out, self.input_shape)
        self._launch(self.kernels.grad_each, self.n)(
            self.a, self.b, self.w, self.upstream, self.scalars.p,
            self.scale if scale is None else scale, self.upstream_value, buf.reshape(self.n))
        return buf

    def hess_full(self, out=None, scale=None):
        s = self.scalars
        buf = self._buffer(out, self.input_shape)
        self._launch(self.kernels.hess_each, self.n)(
            self.a, self.b, self.w, s.p, s.half, self.scale if scale is None else scale,
            buf.reshape(self.n))
        return buf

    def value_and_grad_full(self, out=None):
        gbuf = self._buffer(out, self.input_shape)
        if self.reduction == "none":
            value = self._empty(self.shape, self.dtype)
            self._loss_each(value, gbuf)
            return self.give(value), gbuf
        return self.give(self._loss_sum(gbuf.reshape(self.n))), gbuf

    def loss_sum(self, with_grad, scale):
        grad = self._empty(self.shape, self.dtype) if with_grad else None
        total = self._loss_sum(None if grad is None else grad.reshape(self.n), scale=scale,
                               divisor=1.0, dtype=np.float64)
        return total, grad
