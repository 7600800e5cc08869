"""Parallel CPU kernels over flat contiguous buffers.

Every kernel takes 1-D C-contiguous arrays of one length ``n`` (``a`` = input,
``b`` = target, optional ``w`` = weight and ``go`` = upstream gradient, each may be
float32 or float64; numba promotes mixed pairs as NumPy does) and scalars already in the
computation dtype. Shapes, broadcasting, dtypes and validation live in ``_losses``.

Reductions are deterministic: the elements are cut into fixed blocks of ``BLOCK_BYTES`` of
the widest operand (2048 float32 or 1024 float64 elements); each block's losses are summed
by a loop whose order depends only on the block's length (float64 losses in float64,
float32 losses in float32 over runs of ``FLOAT32_RUN`` and the runs in float64), and the
block sums are added left to right in float64. Nothing depends on how many threads ran the
blocks or where the buffers are, so results are bit-identical for any
``numba.set_num_threads``.

``forward_sum`` computes and sums a block's losses in one loop (``_block_loss_sum``);
``fused_sum`` runs the same loop writing each element's gradient too: loss, gradient and
reduction in one pass over memory. The two loops are vectorised separately, so their sums
may differ in the last bits. A reduction allocates one float64 per block (0.1% of the
input's bytes): no N-sized temporary.

Each kernel is compiled twice: threaded (``prange``) and serial (the same code with
``prange`` acting as ``range``), and the size in bytes picks one (:func:`kernels`).
"""

import contextlib
import types as pytypes
from typing import NamedTuple

from . import _tbb

_tbb.load_tbb()  # before numba can choose its threading layer: TBB, not OpenMP

import numpy as np  # noqa: E402
import llvmlite.binding as llvm  # noqa: E402
from numba import prange, types  # noqa: E402
from numba.core.compiler import CompilerBase, DefaultPassBuilder  # noqa: E402
from numba.core.compiler_machinery import register_pass  # noqa: E402
from numba.core.typed_passes import BaseNativeLowering  # noqa: E402
from numba.extending import overload  # noqa: E402

from . import _jit, _math  # noqa: E402
# numba.njit, with a disk cache that a faulty or unwritable cache cannot break (_jit)
from ._jit import njit  # noqa: E402

# bytes of the widest operand per reduction block: each float64 lane of a block's vector
# sum then adds at most 128 terms, and the block sums take 0.1% of the input's bytes.
# Measured on 2 cores: 16 and 32 KB within noise of 8 KB ('mean' and fused, 1e4-1e7).
BLOCK_BYTES = 8192
# below these many bytes per operand (elements times the computation dtype's size) the
# serial kernels run: waking the thread pool (3-4 us with TBB on 2 cores) costs more than
# the second core gains. Crossovers measured on 2 cores, serial and threaded kernels
# interleaved in one process: the plain reduction near 90k float32 and 55k float64
# elements, the elementwise and fused kernels near 60-75k float32 and 40k float64 (a
# vector holds half as many float64 elements, so each costs about twice as much).
PARALLEL_MIN_BYTES = 288 * 1024
PARALLEL_MIN_BYTES_SUM = 384 * 1024
# a block sum adds float32 losses in float32 over runs of this many elements, and each run's
# sum in float64. Converting every float32 loss to float64 (a lane shuffle and two
# conversions per 16 elements) was the block loop's bottleneck. A run is 128 SIMD partial
# sums of 4 terms combined in a tree: about 10 float32 roundings on any term's path, so a
# run of non-negative terms is within 10 * 2**-24 of its exact sum (measured over random
# inputs: 1e-8 relative typical, 6e-8 at most; a float32 result is then the correctly
# rounded sum or 1 ulp from it). Measured on 2 cores, serial float32 'mean' blocks: 0.6x
# the time in L1, 0.8x at 1e5 elements; 256 was as fast in cache, but LLVM unrolled it
# fully and its loads out of order streamed 9-23% slower from DRAM at 1e7.
FLOAT32_RUN = 512


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


class BlockSumCompiler(WideVectorCompiler):
    """:class:`WideVectorCompiler` for the block sums, whose array arguments never overlap
    one that the function writes (LLVM's ``noalias`` on each data pointer): otherwise a
    runtime alias check chooses between a vector and a scalar loop, which add in different
    orders (seen: a 1-ulp change with the address of the gradient buffer). nbloss's
    kernels can promise it: ``out=`` may not share memory with an input (``_validate``),
    and every other output is freshly allocated."""

    def define_pipelines(self):
        self.state.flags.noalias = True
        return super().define_pipelines()


# No fastmath flags in the kernels: nnan/ninf would fold away NaN and inf handling.
_OPTIONS = dict(cache=True, error_model="numpy", fastmath=False,
                pipeline_class=WideVectorCompiler)
# the block sums: only their additions may be reordered
_SUM_OPTIONS = dict(_OPTIONS, fastmath={"reassoc", "nsz"},
                    pipeline_class=BlockSumCompiler)

element = _math.compile_for(njit(**_OPTIONS))
forward_at = element.forward_at
loss_and_grad_at = element.loss_and_grad_at
grad_at = element.grad_at
hess_at = element.hess_at


def _block_length(a, b, w):
    """Elements per reduction block: ``BLOCK_BYTES`` of the widest operand."""


@overload(_block_length, jit_options=_jit.overload_options(_OPTIONS))
def _block_length_of_types(a, b, w):
    # a compile-time constant of each signature: read from the arrays at run time
    # (``a.itemsize``), the block length left the loops' trip counts unknown and the fused
    # kernel ran 7-40% slower
    length = min(block_length(str(t.dtype)) for t in (a, b, w) if isinstance(t, types.Array))
    return lambda a, b, w: length


def _part(x, lo, hi):
    """x[lo:hi], or None when x is None."""


@overload(_part, jit_options=_jit.overload_options(_OPTIONS))
def _part_of_type(x, lo, hi):
    # chosen by type: ``x[lo:hi] if x is not None else None`` is typed Optional(array) when
    # x is an array, which the block loop would check at run time
    if x is types.none:
        return lambda x, lo, hi: None
    return lambda x, lo, hi: x[lo:hi]


def _constant_like(value):
    """A jitted function of a float ``x`` that returns ``value`` in x's type, as a
    compile-time constant."""
    def constant_like(x):
        """``value`` in the type of the float ``x``."""

    @overload(constant_like, jit_options=_jit.overload_options(_OPTIONS))
    def constant_of_type(x):
        constant = np.dtype(str(x)).type(value)
        return lambda x: constant

    return constant_like


# constants, not run-time values: the unweighted kernels' ``* t`` by 1 folds away
# (``half + half`` cost one multiply per element)
_one_like = _constant_like(1)
_zero_like = _constant_like(0)


def _run_length(x):
    """Elements a block sum adds in the type of the float ``x`` before adding them to its
    float64 total: ``FLOAT32_RUN`` for float32, a whole block for float64."""


@overload(_run_length, jit_options=_jit.overload_options(_OPTIONS))
def _run_length_of_type(x):
    length = FLOAT32_RUN if str(x) == "float32" else block_length(np.float64)
    return lambda x: length


def block_length(dtype):
    """Elements per reduction block for operands of ``dtype``."""
    return BLOCK_BYTES // np.dtype(dtype).itemsize


@njit(**_SUM_OPTIONS)
def _block_loss_sum(kind, a, b, w, p, half, scale, grad_out, lo, hi):
    """sum(w * loss(a - b)) over the block [lo, hi) as a float64; and grad_out =
    scale * w * dloss(a - b) there in the same loop when grad_out is not None.

    A float32 loss is summed in float32 over runs of ``FLOAT32_RUN`` elements and each
    run's sum is added in float64 (see ``FLOAT32_RUN``); a float64 loss is added in
    float64 directly. Only the additions may be reordered (``reassoc``), which lets the
    compiler keep SIMD partial sums; the loss and gradient are computed by a strict
    callee. The order of the additions depends on hi - lo alone (see
    :class:`BlockSumCompiler`). With and without the gradient the loop is vectorised
    separately, so the two sums may differ in their last bits. Index loops on purpose:
    numba's array iterator (``for v in values``) does not vectorise (measured 10x slower).
    """
    # slices indexed from 0: numba then knows no index is negative, and the loop
    # vectorises (about 2.5x faster than indexing a[lo + m])
    ab, bb, wb, gb = a[lo:hi], b[lo:hi], _part(w, lo, hi), _part(grad_out, lo, hi)
    # a constant here, not an argument: the unweighted gradient's ``* t`` by it folds away
    one = _one_like(half)
    half_p = half * p
    run = _run_length(half)
    n = hi - lo
    whole = n - n % run
    total = 0.0
    for start in range(0, whole, run):
        # a constant trip count: one vectorised loop, then one horizontal sum per run
        run_sum = _zero_like(half)
        for m in range(start, start + run):
            run_sum += loss_and_grad_at(kind, m, ab, bb, wb, p, half, half_p, one, scale, gb)
        total += run_sum
    # the rest, each term in float64; sliced to index from 0 again (see above)
    ar, br, wr, gr = ab[whole:], bb[whole:], _part(wb, whole, n), _part(gb, whole, n)
    for m in range(n - whole):
        total += loss_and_grad_at(kind, m, ar, br, wr, p, half, half_p, one, scale, gr)
    return total


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
        one = _one_like(half)
        n = a.size
        block = _block_length(a, b, w)
        block_sums = np.empty((n + block - 1) // block, np.float64)
        for j in prange(block_sums.size):
            # no gradient to write: its scale (one) is unused
            block_sums[j] = _block_loss_sum(k, a, b, w, p, half, one, None,
                                            j * block, min(n, (j + 1) * block))
        return _ordered_sum(block_sums)

    def fused_sum(a, b, w, p, half, scale, grad_out):
        """sum(w * loss(a - b)) in float64 and grad_out = scale * w * dloss(a - b), in one
        pass"""
        k = spec[0]
        n = a.size
        block = _block_length(a, b, w)
        block_sums = np.empty((n + block - 1) // block, np.float64)
        for j in prange(block_sums.size):
            block_sums[j] = _block_loss_sum(k, a, b, w, p, half, scale,
                                            grad_out, j * block, min(n, (j + 1) * block))
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
    # threaded: a fork waits for them; serial in a child where TBB is unusable (_tbb)
    parallel = Kernels(*(_tbb.fork_safe(njit(parallel=True, **_OPTIONS)(f), s)
                         for f, s in zip(fns, serial)))
    return Variants(serial, parallel)


FAMILIES = {kind: _family(kind) for kind in (_math.SMOOTH_L1, _math.HUBER, _math.L1)}


def kernels(kind, n, itemsize, sum_only=False):
    """The kernels to run over ``n`` elements of loss ``kind`` computed in a dtype of
    ``itemsize`` bytes: threaded from ``PARALLEL_MIN_BYTES`` per operand on
    (``PARALLEL_MIN_BYTES_SUM`` for ``forward_sum``, ``sum_only``), serial below."""
    limit = PARALLEL_MIN_BYTES_SUM if sum_only else PARALLEL_MIN_BYTES
    return FAMILIES[kind][n * itemsize >= limit]
