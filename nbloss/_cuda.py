"""CUDA kernels (numba.cuda) over flat contiguous device buffers.

Imported only when a device array reaches nbloss: ``import nbloss`` never loads CUDA.
One loss kind's kernels (:class:`Kernels`) have the names and arguments of their ``_cpu``
twins (arrays of the loss's element count: 1-D C-contiguous, or read in place where an
operand is broadcast, 1-D with stride 0 for one value or a 2-D to 4-D view (see
:func:`value_at`); optional arrays as None, scalars in the computation dtype; see
``_cpu``'s docstring for what each computes) and compute each element with the same ``_math``
functions, compiled here as CUDA device functions, so an elementwise result is the CPU's
to the bit: ``loss_each``, ``loss_sum``, ``grad_each``,
``hess_each``. One difference: a kernel cannot return a value, so ``loss_sum`` takes one
more argument, ``block_sums`` (float64, one per block of the grid), and writes there the
sum of each block's losses instead of returning their total; :func:`add_block_sums`
then adds them.

Every kernel is a grid-stride loop over a grid of at most ``MAX_BLOCKS`` blocks of
``THREADS`` threads. The grid depends on the element count alone, never on the GPU, and
reductions are deterministic: each thread accumulates its elements in float64 in index
order, each block sums its threads in a fixed tree (:func:`_block_sum`) into one block
sum, and :func:`add_block_sums`, launched as one block, sums those in the same fixed way.
No float atomics: the same input gives the same bits on every run and every GPU. (How
the CPU and CUDA kernels are built: ``docs/kernels.md``.)
"""

import math

import numpy as np
from numba import config, cuda, float64
from numba.core.extending import overload

from . import _math

SIMULATOR = bool(config.ENABLE_CUDASIM)
# the simulator has no warp intrinsics: the same tree runs there through shared memory
USE_SHUFFLE = not SIMULATOR
# the simulator runs one OS thread per CUDA thread: a small grid keeps it usable
THREADS = 64 if SIMULATOR else 256
MAX_BLOCKS = 2 if SIMULATOR else 1024
WARP = 32
FULL_MASK = 0xFFFFFFFF

_OPTIONS = dict(cache=not SIMULATOR, fastmath=False)


def value_at(x, i):
    """Element ``i`` in C order of an operand as the kernels read it: a 1-D array (with
    stride 0 for one value broadcast over the loss), or a 2-D to 4-D view of the loss's
    elements, stride 0 along the axes it is broadcast along (``_device``), whose position
    is found by index arithmetic: nothing of the loss's size is made for it."""
    return x[i] if x.ndim == 1 else x[np.unravel_index(i, x.shape)]  # the simulator's


@overload(value_at, target="cuda")
def _value_at_of_type(x, i):
    if x.ndim == 1:
        return lambda x, i: x[i]
    if x.ndim == 2:
        def at_2d(x, i):
            row = i // x.shape[1]
            return x[row, i - row * x.shape[1]]
        return at_2d

    if x.ndim == 3:
        def at_3d(x, i):
            row = i // x.shape[2]
            outer = row // x.shape[1]
            return x[outer, row - outer * x.shape[1], i - row * x.shape[2]]
        return at_3d

    def at_4d(x, i):
        row = i // x.shape[3]
        mid = row // x.shape[2]
        outer = mid // x.shape[1]
        return x[outer, mid - outer * x.shape[1], row - mid * x.shape[2], i - row * x.shape[3]]
    return at_4d


element = _math.compile_for(cuda.jit(device=True), value_at=value_at)
loss_at = element.loss_at
grad_at = element.grad_at
hess_at = element.hess_at


def blocks(n):
    """Blocks of the grid over ``n`` elements: enough to cover them, at most MAX_BLOCKS."""
    return max(1, min(MAX_BLOCKS, (n + THREADS - 1) // THREADS))


# -- deterministic block reduction ------------------------------------------------------

@cuda.jit(device=True)
def _warp_sum(acc):
    """The sum of ``acc`` over a warp's 32 lanes, valid in lane 0: lane l adds lane l + 16,
    then l + 8, l + 4, l + 2, l + 1 (shuffles: GPU only)."""
    offset = WARP // 2
    while offset > 0:
        acc += cuda.shfl_down_sync(FULL_MASK, acc, offset)
        offset //= 2
    return acc


@cuda.jit(device=True)
def _warp_sum_in_place(values, base):
    """:func:`_warp_sum` of ``values[base:base + 32]`` by one thread, in the same order of
    additions; the result in ``values[base]``."""
    offset = WARP // 2
    while offset > 0:
        for lane in range(offset):
            values[base + lane] += values[base + lane + offset]
        offset //= 2


@cuda.jit(device=True)
def _block_sum(acc, shared):
    """The sum of ``acc`` over the block (a multiple of 32 threads), valid in thread 0:
    each warp's sum, then the sum of the warp sums (zero-padded to 32), always in the same
    order. On a GPU with shuffles; in the simulator, which has no warp intrinsics, by
    thread 0 through shared memory, with the same additions in the same order (so the
    simulator's bits are the GPU's)."""
    tid = cuda.threadIdx.x
    nwarps = cuda.blockDim.x // WARP
    cuda.syncthreads()  # ``shared`` may still be read from a previous call
    if USE_SHUFFLE:
        acc = _warp_sum(acc)
        if tid % WARP == 0:
            shared[tid // WARP] = acc
        cuda.syncthreads()
        acc = shared[tid] if tid < nwarps else float64(0)
        return _warp_sum(acc)
    shared[tid] = acc
    cuda.syncthreads()
    if tid == 0:
        for w in range(nwarps):
            _warp_sum_in_place(shared, w * WARP)
        for w in range(WARP):
            shared[w] = shared[w * WARP] if w < nwarps else float64(0)
        _warp_sum_in_place(shared, 0)
    return shared[0]


@cuda.jit(**_OPTIONS)
def add_block_sums(block_sums, count, divisor, out):
    """``out[0] = sum(block_sums[:count]) / divisor`` (1 for 'sum', N for 'mean', 0 gives
    NaN: the mean of nothing), the block sums of ``loss_sum``; launched as one block."""
    shared = cuda.shared.array(THREADS, float64)
    acc = float64(0)
    for j in range(cuda.threadIdx.x, count, cuda.blockDim.x):
        acc += block_sums[j]
    acc = _block_sum(acc, shared)
    if cuda.threadIdx.x == 0:
        out[0] = acc / divisor if divisor != 0 else math.nan


# -- broadcasting and upstream helpers, for _device ----------------------------------------

@cuda.jit(device=True)
def _offset(r, shape, strides):
    """The element offset of C-order position ``r`` over ``shape`` under ``strides``."""
    offset = 0
    for k in range(len(shape) - 1, -1, -1):
        offset += (r % shape[k]) * strides[k]
        r //= shape[k]
    return offset


@cuda.jit(**_OPTIONS)
def expand(src, shape, strides, out):
    """``out`` (C order over ``shape``) = ``src`` broadcast: ``strides`` are src's element
    strides in ``shape``'s dimensions, 0 along broadcast ones."""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = src[_offset(i, shape, strides)]


@cuda.jit(**_OPTIONS)
def fill(out, value):
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = value


@cuda.jit(**_OPTIONS)
def convert(src, out):
    """``out = src`` in ``out``'s dtype (an exact widening, or a rounding)."""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        out[i] = src[i]


@cuda.jit(**_OPTIONS)
def multiply(full, upstream, upstream_value, out):
    """``out = full * upstream_value * upstream`` (``upstream`` may be None): a saved
    gradient times the upstream gradient, as the host's ``full * grad_output``."""
    for i in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        v = full[i] * upstream_value
        if upstream is not None:
            v = v * value_at(upstream, i)
        out[i] = v


@cuda.jit(**_OPTIONS)
def sum_to(full, kept_shape, kept_strides, summed_shape, summed_strides, count, sign, out):
    """``out[j] = sign * sum`` of the elements of ``full`` that broadcast from ``out[j]``:
    the kept dimensions locate ``out[j]``'s first element, and its thread adds the
    ``count`` positions over the summed dimensions in float64, in order, from +0.0
    (as NumPy does on the host). For many outputs with few terms each; ``count = 1``
    (nothing summed) is ``sign`` times the element itself, so a -0.0 negated is +0.0 as
    on the host (from +0.0 it would stay -0.0)."""
    for j in range(cuda.grid(1), out.size, cuda.gridsize(1)):
        base = _offset(j, kept_shape, kept_strides)
        if count == 1:
            out[j] = sign * full[base]
            continue
        acc = float64(0)
        for r in range(count):
            acc += full[base + _offset(r, summed_shape, summed_strides)]
        out[j] = sign * acc


@cuda.jit(**_OPTIONS)
def sum_to_by_blocks(full, kept_shape, kept_strides, summed_shape, summed_strides, count, sign,
                     out):
    """:func:`sum_to` for few outputs with many terms each: one block per output
    element, its threads' float64 sums added by :func:`_block_sum`."""
    shared = cuda.shared.array(THREADS, float64)
    for j in range(cuda.blockIdx.x, out.size, cuda.gridDim.x):
        base = _offset(j, kept_shape, kept_strides)
        acc = float64(0)
        for r in range(cuda.threadIdx.x, count, cuda.blockDim.x):
            acc += full[base + _offset(r, summed_shape, summed_strides)]
        acc = _block_sum(acc, shared)
        if cuda.threadIdx.x == 0:
            out[j] = sign * acc


# -- the loss kernels -------------------------------------------------------------------

class Kernels:
    """One loss kind's kernels (the ``_cpu.Kernels`` of CUDA)."""

    def __init__(self, kind):
        spec = (kind, element.stamp)  # compile-time constants of every kernel below

        def loss_each(a, b, w, p, half, half_p, loss_out, grad_out):
            """loss_out = w * loss(a - b); and grad_out = w * dloss(a - b) in the same
            pass when grad_out is not None"""
            k = spec[0]
            one = half + half
            for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
                loss_out[i] = loss_at(k, i, a, b, w, p, half, half_p, one, one, grad_out)

        def loss_sum(a, b, w, p, half, half_p, scale, grad_out, block_sums):
            """block_sums[block] = float64 sum of w * loss(a - b) over the block's elements;
            and grad_out = scale * w * dloss(a - b) in the same pass when grad_out is not
            None"""
            k = spec[0]
            one = half + half
            shared = cuda.shared.array(THREADS, float64)
            acc = float64(0)
            for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
                acc += loss_at(k, i, a, b, w, p, half, half_p, one, scale, grad_out)
            acc = _block_sum(acc, shared)
            if cuda.threadIdx.x == 0:
                block_sums[cuda.blockIdx.x] = acc

        def grad_each(a, b, w, upstream, p, scale, upstream_value, grad_out):
            """grad_out = scale * dloss(a - b) * (upstream_value * w * upstream)"""
            k = spec[0]
            for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
                grad_at(k, i, a, b, w, upstream, p, scale, upstream_value, grad_out)

        def hess_each(a, b, w, p, half, scale, hess_out):
            """hess_out = scale * w * d2loss(a - b), the diagonal of the Hessian"""
            k = spec[0]
            one = half + half
            for i in range(cuda.grid(1), a.size, cuda.gridsize(1)):
                hess_at(k, i, a, b, w, p, scale, one, hess_out)

        self.loss_each = cuda.jit(**_OPTIONS)(loss_each)
        self.loss_sum = cuda.jit(**_OPTIONS)(loss_sum)
        self.grad_each = cuda.jit(**_OPTIONS)(grad_each)
        self.hess_each = cuda.jit(**_OPTIONS)(hess_each)


FAMILIES = {kind: Kernels(kind) for kind in (_math.SMOOTH_L1, _math.HUBER, _math.L1)}
