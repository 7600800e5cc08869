"""Parallel CPU kernels over flat contiguous buffers.

Every kernel takes 1-D C-contiguous arrays of one length ``n`` (``a`` = input,
``b`` = target, optional ``w`` = weight and ``go`` = upstream gradient, each may be
float32 or float64; numba promotes mixed pairs as NumPy does) and scalars already in the
computation dtype. Shapes, broadcasting, dtypes and validation live in ``_losses``.

Reductions are deterministic: the elements are cut into fixed blocks of ``BLOCK_BYTES`` of
the widest operand (2048 float32 or 1024 float64 elements); each block's losses are summed
in float64 by a store-free loop whose order depends only on the block's length, and the
block sums are added left to right. Nothing depends on how many threads ran the blocks or
where the buffers are, so results are bit-identical for any ``numba.set_num_threads``.

``forward_sum`` computes and sums a block's losses in one loop (``_block_loss_sum``).
``fused_sum`` computes the loss, its gradient and the reduction in one pass over memory:
per block, one elementwise loop writes the gradient and stores the losses in a small
buffer that stays in the L1 cache, then ``_block_sum`` adds them up. The two loops that
sum are vectorised separately, so a sum from ``fused_sum`` may differ from
``forward_sum``'s in its last bits (seen with float64 weights). A 'mean'/'sum' allocates one
float64 per block (0.1% of the input's bytes) and ``fused_sum`` one block-sized
buffer per run of blocks: no N-sized temporary.

Each kernel is compiled twice: threaded (``prange``) and serial (the same code with
``prange`` acting as ``range``), and the size picks one (:func:`kernels`).
"""

import contextlib
import types as pytypes
from typing import NamedTuple

from . import _tbb

_tbb.load_tbb()  # before numba can choose its threading layer: TBB, not OpenMP

import numpy as np  # noqa: E402
import numba  # noqa: E402
import llvmlite.binding as llvm  # noqa: E402
from numba import njit, prange, types  # noqa: E402
from numba.core.compiler import CompilerBase, DefaultPassBuilder  # noqa: E402
from numba.core.compiler_machinery import register_pass  # noqa: E402
from numba.core.typed_passes import BaseNativeLowering  # noqa: E402
from numba.extending import overload  # noqa: E402

from . import _math  # noqa: E402

# bytes of the widest operand per reduction block. A fused block (input, target, gradient
# and the losses buffer: 32 KB) then stays in a 48 KB L1 cache between the loop that
# writes it and the loop that sums the losses. Measured on 2 cores: 16 KB per operand was
# 4-22% slower fused, 4 KB no faster overall (float64 fused up to 11% faster, 'mean' 1-3%
# slower).
BLOCK_BYTES = 8192
# below these many elements the serial kernels run: waking the thread pool (about 3 us
# with TBB) costs more than a cheap loss gains from it. Crossovers measured on 2 cores
# with TBB: 65-80k elements for the elementwise kernels and the plain reductions, 40k
# for the fused loss-and-gradient reduction, which does twice the work per element.
PARALLEL_MIN = 1 << 16
PARALLEL_MIN_FUSED = 40_000
# runs of consecutive blocks per thread in a threaded reduction (see chunks())
CHUNKS_PER_THREAD = 4


# -- compilation ---------------------------------------------------------------------------

_wide_depth = 0


@contextlib.contextmanager
def _wide_vectors():
    """LLVM's loop vectoriser told to size its vectors by the narrowest type in a loop
    instead of the widest (``-vectorizer-maximize-bandwidth``), while this block runs.

    A float32 loss summed in float64 is otherwise vectorised 8 lanes wide (the float64
    accumulator fills a 512-bit register), and its float32 arithmetic then runs at half
    width: measured on AVX-512, a float32 'mean' is 14-25% faster with 16 lanes. The
    option is global to LLVM, so it is set only while numba lowers nbloss's own functions,
    under numba's compiler lock (no other compilation runs meanwhile), and reset after."""
    global _wide_depth
    if _wide_depth == 0:
        llvm.set_option("", "-vectorizer-maximize-bandwidth=true")
    _wide_depth += 1
    try:
        yield
    finally:
        _wide_depth -= 1
        if _wide_depth == 0:
            llvm.set_option("", "-vectorizer-maximize-bandwidth=false")


_WIDENED = {}


def _widened(lowering):
    """The lowering pass ``lowering`` (a numba pass class) run under :func:`_wide_vectors`;
    LLVM optimises a function's module when numba lowers it."""
    if lowering not in _WIDENED:
        @register_pass(mutates_CFG=True, analysis_only=False)
        class Widened(lowering):
            _name = "nbloss_wide_" + lowering._name

            def run_pass(self, state):
                with _wide_vectors():
                    return super().run_pass(state)

        _WIDENED[lowering] = Widened
    return _WIDENED[lowering]


class WideVectorCompiler(CompilerBase):
    """numba's nopython pipeline with its lowering pass run under :func:`_wide_vectors`
    (``njit(pipeline_class=WideVectorCompiler)``)."""

    def define_pipelines(self):
        pm = DefaultPassBuilder.define_nopython_pipeline(self.state)
        pm.passes = [(_widened(p) if issubclass(p, BaseNativeLowering) else p, d)
                     for p, d in pm.passes]
        pm.finalize()
        return [pm]


# No fastmath flags in the kernels: nnan/ninf would fold away NaN and inf handling, and
# reassoc in a loop that also stores would let a runtime alias check pick between two
# summation orders (seen: a 1-ulp change with the address of the gradient buffer).
_OPTIONS = dict(cache=True, error_model="numpy", fastmath=False,
                pipeline_class=WideVectorCompiler)
# the store-free block sums: only their additions may be reordered
_SUM_OPTIONS = dict(_OPTIONS, fastmath={"reassoc", "nsz"})

element = _math.compile_for(njit(**_OPTIONS))
loss = element.loss
forward_at = element.forward_at
loss_and_grad_at = element.loss_and_grad_at
grad_at = element.grad_at
hess_at = element.hess_at


@njit(**_OPTIONS)
def _element_loss(kind, a, b, w, p, half, half_p):
    """w * loss(a - b), or loss(a - b) when w is None: the strict part of the sum below."""
    v = loss(kind, a - b, p, half, half_p)
    if w is not None:
        v = v * w
    return v


@njit(**_SUM_OPTIONS)
def _block_loss_sum(kind, a, b, w, p, half, half_p):
    """sum(w * loss(a - b)) over one block, accumulated in float64.

    Only the additions may be reordered (``reassoc``), which lets the compiler keep SIMD
    partial sums; the loss itself is computed by a strict callee. The order then depends
    on len(a) alone: the loop stores nothing, so no runtime alias check can send it down
    a scalar path with another order (seen when a loop also stored gradients: the sum
    changed with the address of the gradient buffer). Index loops on purpose: numba's
    array iterator (``for v in values``) does not vectorise (measured 10x slower).
    """
    acc = 0.0
    if w is None:
        for m in range(a.size):
            acc += _element_loss(kind, a[m], b[m], None, p, half, half_p)
    else:
        for m in range(a.size):
            acc += _element_loss(kind, a[m], b[m], w[m], p, half, half_p)
    return acc


def _block_length(a, b, w):
    """Elements per reduction block: ``BLOCK_BYTES`` of the widest operand."""


@overload(_block_length, jit_options=_OPTIONS)
def _block_length_of_types(a, b, w):
    # a compile-time constant of each signature: read from the arrays at run time
    # (``a.itemsize``), the block length left the loops' trip counts unknown and the fused
    # kernel ran 7-40% slower
    length = min(block_length(str(t.dtype)) for t in (a, b, w) if isinstance(t, types.Array))
    return lambda a, b, w: length


def _one_like(x):
    """1 in the type of the float ``x``."""


@overload(_one_like, jit_options=_OPTIONS)
def _one_like_of_type(x):
    # a constant, so that the unweighted kernels' ``* t`` by it folds away; ``half + half``
    # is a run-time value and cost one multiply per element
    one = np.dtype(str(x)).type(1)
    return lambda x: one


def block_length(dtype):
    """Elements per reduction block for operands of ``dtype``."""
    return BLOCK_BYTES // np.dtype(dtype).itemsize


@njit(**_SUM_OPTIONS)
def _block_sum(values):
    """sum(values) over one block, accumulated in float64, in an order that depends on
    len(values) alone (see ``_block_loss_sum``)."""
    acc = 0.0
    for m in range(values.size):
        acc += np.float64(values[m])
    return acc


@njit(**_OPTIONS)
def _ordered_sum(block_sums):
    total = 0.0
    for s in block_sums:
        total += s
    return total


def _serial_clone(fn):
    """``fn`` under another qualified name: numba's cache index ignores compile flags, so
    a serial and a threaded dispatcher of one function would overwrite each other's
    cache entries."""
    serial = pytypes.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                                fn.__defaults__, fn.__closure__)
    serial.__qualname__ = fn.__qualname__ + "_serial"
    return serial


class Kernels(NamedTuple):
    forward_none: object
    forward_sum: object
    fused_sum: object
    grad: object
    hess: object


class Variants(NamedTuple):
    """One loss kind's kernels, compiled serial and threaded (see :func:`kernels`)."""
    serial: Kernels
    parallel: Kernels


def _family(kind):
    """The kernels of one loss kind. ``spec`` is a compile-time constant of each of
    them (numba freezes closure variables), so the branches on the kind fold away.
    Optional arrays (``w``, ``go``, ``loss_out``, ``grad_out``) may be None: numba
    compiles that variant with the branch removed."""
    spec = (kind, element.stamp)

    def forward_none(a, b, w, p, half, loss_out, grad_out):
        """loss_out = w * loss(a - b) and/or grad_out = w * dloss(a - b), one pass"""
        k = spec[0]
        one = _one_like(half)
        half_p = half * p
        for i in prange(a.size):
            forward_at(k, i, a, b, w, p, half, half_p, one, loss_out, grad_out)

    def forward_sum(a, b, w, p, half):
        """sum(w * loss(a - b)) in float64"""
        k = spec[0]
        half_p = half * p
        n = a.size
        block = _block_length(a, b, w)
        nblocks = (n + block - 1) // block
        block_sums = np.empty(nblocks, np.float64)
        for j in prange(nblocks):
            lo = j * block
            hi = min(n, lo + block)
            # per-block slices, indexed from 0: numba then knows no index is negative,
            # and the loop vectorises (about 2.5x faster than indexing a[lo + m])
            if w is not None:
                wb = w[lo:hi]
            else:
                wb = None
            block_sums[j] = _block_loss_sum(k, a[lo:hi], b[lo:hi], wb, p, half, half_p)
        return _ordered_sum(block_sums)

    def fused_sum(a, b, w, p, half, scale, grad_out, chunks):
        """sum(w * loss(a - b)) in float64 and grad_out = scale * w * dloss(a - b), one
        pass. The blocks are dealt out in ``chunks`` runs of consecutive blocks (see
        :func:`chunks`), each with one buffer for its blocks' losses."""
        k = spec[0]
        one = _one_like(half)
        half_p = half * p
        n = a.size
        block = _block_length(a, b, w)
        nblocks = (n + block - 1) // block
        block_sums = np.empty(nblocks, np.float64)
        nchunks = min(nblocks, chunks)
        for c in prange(nchunks):
            losses = np.empty(min(n, block), grad_out.dtype)  # the computation dtype
            for j in range(c * nblocks // nchunks, (c + 1) * nblocks // nchunks):
                lo = j * block
                hi = min(n, lo + block)
                ab, bb, gb, lb = a[lo:hi], b[lo:hi], grad_out[lo:hi], losses[:hi - lo]
                if w is not None:
                    wb = w[lo:hi]
                else:
                    wb = None
                # one elementwise loop writes the losses (to the L1-resident buffer) and
                # the gradient; a store-free loop then sums the losses
                for m in range(hi - lo):
                    lb[m] = loss_and_grad_at(k, m, ab, bb, wb, p, half, half_p, one, scale, gb)
                block_sums[j] = _block_sum(lb)
        return _ordered_sum(block_sums)

    def grad(a, b, w, go, p, scale, g0, out):
        """out = scale * dloss(a - b) * (g0 * w * go)"""
        k = spec[0]
        for i in prange(a.size):
            grad_at(k, i, a, b, w, go, p, scale, g0, out)

    def hess(a, b, w, p, half, scale, out):
        """out = scale * w * d2loss(a - b), the diagonal of the Hessian"""
        k = spec[0]
        one = _one_like(half)
        for i in prange(a.size):
            hess_at(k, i, a, b, w, p, scale, one, out)

    fns = (forward_none, forward_sum, fused_sum, grad, hess)
    serial = Kernels(*(njit(**_OPTIONS)(_serial_clone(f)) for f in fns))
    parallel = Kernels(*(njit(parallel=True, **_OPTIONS)(f) for f in fns))
    return Variants(serial, parallel)


FAMILIES = {kind: _family(kind) for kind in (_math.SMOOTH_L1, _math.HUBER, _math.L1)}


def chunks(n):
    """How many runs of consecutive blocks ``fused_sum`` deals out over ``n`` elements: one
    for the serial kernel; for the threaded one ``CHUNKS_PER_THREAD`` per thread, so that
    the losses buffer is allocated a few times per call, not once per block, and a thread
    that falls behind leaves its share to the others. (A kernel that reads the thread count
    cannot be cached on disk by numba, so the caller passes it.)"""
    return CHUNKS_PER_THREAD * numba.get_num_threads() if n >= PARALLEL_MIN_FUSED else 1


def kernels(kind, n, fused=False):
    """The kernels to run over ``n`` elements of loss ``kind``: threaded from
    ``PARALLEL_MIN`` elements on (``PARALLEL_MIN_FUSED`` for ``fused_sum``), serial
    below."""
    return FAMILIES[kind][n >= (PARALLEL_MIN_FUSED if fused else PARALLEL_MIN)]
