"""CPU kernels (numba, serial and threaded) over flat contiguous buffers.

Every kernel takes 1-D C-contiguous arrays of one length ``n`` (``a`` = input, ``b`` =
target, optional ``w`` = weight and ``upstream`` = upstream gradient; each may be float32
or float64, numba promotes mixed pairs as NumPy does; ``a``, ``b`` and ``w`` may also be
0-d arrays, one value read for every element, compiled as variants of their own) and
scalars whose values are in the computation dtype, the promoted dtype of ``a`` and
``b``: ``p`` (beta or delta), ``half`` = 0.5 and ``half_p`` = half * p, passed as Python
floats and converted by each kernel.
Shapes, broadcasting, dtypes and validation live in ``_host``. One loss kind's kernels
(:class:`Kernels`), with x = a - b and the formulas of ``_math``:

- ``loss_each(a, b, w, p, half, half_p, loss_out, grad_out)``: loss_out = w * loss(x);
  and grad_out = w * dloss(x) in the same pass when grad_out is not None;
- ``loss_sum(a, b, w, p, half, half_p, scale, grad_out)``: returns the float64
  sum(w * loss(x)); and writes grad_out = scale * w * dloss(x) in the same pass when
  grad_out is not None (with None, numba compiles a variant without the gradient and
  ``scale`` is unused). Where the sum it returns is not finite, the caller takes
  ``loss_sum_again(a, b, w, p, half, half_p)`` (:class:`Variants`) instead: float32 lanes
  that overflow must not make it inf where the float64 sum is finite;
- ``grad_each(a, b, w, upstream, p, scale, upstream_value, grad_out)``: grad_out =
  scale * dloss(x) * (upstream_value * w * upstream), ``upstream_value`` a scalar;
- ``hess_each(a, b, w, p, half, scale, hess_out)``: hess_out = scale * w * d2loss(x),
  the Hessian's diagonal.

``_cuda`` has the same kernels with the same names and arguments, with one difference: a
CUDA kernel cannot return a value, so its ``loss_sum`` takes one more argument,
``block_sums``, and writes there the float64 sum of each CUDA block's elements, which
``_cuda.add_block_sums`` then adds.

Optional arrays (``w``, ``upstream``, ``grad_out``) may be None: numba compiles that
variant with the branch removed.

Reductions are deterministic: the elements are cut into fixed blocks of ``BLOCK_BYTES`` of
the widest operand (2048 float32 or 1024 float64 elements); each block's losses are summed
in an order written in the source (:func:`_block_loss_sum`: SIMD lanes, pairwise folds,
float32 runs of ``FLOAT32_RUN`` carried into float64), with no fastmath flag that would
let LLVM reorder an addition, and the block sums are added left to right in float64.
Nothing depends on how many threads ran the blocks, where the buffers are, how LLVM
optimised or inlined the code, or whether numba compiled it or loaded it from its disk
cache: results are bit-identical in every case. ``loss_sum`` computes a block's losses,
its gradient if asked, and their sum in one loop: one pass over memory. A reduction
allocates one float64 per block (0.1% of the input's bytes): no N-sized temporary.

Each kernel is compiled twice: threaded (``prange``) and serial (the same code with
``prange`` acting as ``range``), and the size in bytes picks one (:func:`kernels`). The
host makes its kernel calls through :func:`kernel_calls`: numba's dispatchers, or for the common
operands the serial kernels' compiled entry points (:class:`DirectCalls`).
How the kernels are built, and the measurements behind each constant: ``docs/kernels.md``.
"""

import math
from typing import NamedTuple

from . import _tbb

_tbb.load_tbb()  # before numba can choose its threading layer: TBB, not OpenMP

import numpy as np  # noqa: E402
import numba  # noqa: E402
from numba import prange  # noqa: E402

from . import _jit, _math  # noqa: E402
# numba.njit, with a disk cache that a faulty or unwritable cache cannot break (_cache)
from ._jit import block_of, njit, part, serial_twin, size_of  # noqa: E402

# Why each value, and the measurements behind it: docs/kernels.md, "Constants".
# bytes of the widest operand per reduction block: the block sums take 0.1% of the input
BLOCK_BYTES = 8192
# bytes per operand from which the threaded kernels run: below, waking the pool costs more
PARALLEL_MIN_BYTES = 288 * 1024
# the same for loss_sum without a gradient, which does less work per byte
PARALLEL_MIN_BYTES_SUM = 384 * 1024
# float32 losses are added in float32 over runs of this many elements, each run's sum in float64
FLOAT32_RUN = 512
# a block sum's partial sums in the loss's dtype: enough independent additions to hide latency
LANE_BYTES = 256
# float64 sums the lanes are folded into after each run
WIDE_LANES = 16


def block_length(dtype):
    """Elements per reduction block for operands of ``dtype``."""
    return BLOCK_BYTES // np.dtype(dtype).itemsize


def lane_count(dtype):
    """Partial sums a block sum keeps for losses of ``dtype``."""
    return LANE_BYTES // np.dtype(dtype).itemsize


def run_shape(dtype):
    """(lanes, rows per run) of a block sum of losses of ``dtype``: a run is
    ``FLOAT32_RUN`` elements for float32, a whole block for float64."""
    lanes = lane_count(dtype)
    run = FLOAT32_RUN if dtype == np.float32 else block_length(np.float64)
    return lanes, run // lanes


# -- compilation ---------------------------------------------------------------------------

_OPTIONS = _jit.OPTIONS
_SUM_OPTIONS = _jit.NOALIAS_OPTIONS

element = _math.compile_for(njit(**_OPTIONS), value_at=_jit.value_at)
loss_at = element.loss_at
grad_at = element.grad_at
hess_at = element.hess_at

# Compile-time constants of each signature (_jit.type_constant). The block length: read
# from the arrays at run time, it left the loops' trip counts unknown (fused: 7-40% slower)
_block_length = _jit.type_constant(
    lambda a, b, w: min(block_length(d) for d in (a, b, w) if d is not None))
# 1 and 0 in a float's dtype: the unweighted kernels' ``* t`` by 1 then folds away
_one_like = _jit.type_constant(lambda dtype: dtype.type(1))
_zero_like = _jit.type_constant(lambda dtype: dtype.type(0))
# a kernel's scalar argument in the computation dtype, the arrays' (exact: the host passes
# Python floats that hold values of that dtype, as numba's dispatcher types a Python float
# in about a fifth of the time of a NumPy scalar: 0.3 us of a 1e3-element call)
_scalar = _jit.as_promoted
_run_shape = _jit.type_constant(run_shape)
# a block sum's lanes and float64 sums on the stack: LLVM keeps them in vector registers
_lane_array = _jit.stack_array(lane_count)
_wide_array = _jit.stack_array(lambda dtype: WIDE_LANES, np.float64)
# lanes[k] += lanes[k + h] down to WIDE_LANES lanes, then wide[k] += lanes[k]: as vectors
_fold_lanes = _jit.fold_into(lane_count, WIDE_LANES)
# where block_of copies a block of a 2-D to 4-D operand (one broadcast along axes): room for
# the longest block, float32's
_scratch = _jit.scratch_array(lambda dtype: block_length(np.float32))


@njit(**_SUM_OPTIONS)
def _block_loss_sum(kind, a, b, w, p, half, half_p, scale, grad_out, lo, hi):
    """sum(w * loss(a - b)) over the block [lo, hi) as a float64; and grad_out =
    scale * w * dloss(a - b) there in the same loop when grad_out is not None.

    The order of the additions is written here, and nowhere else: with L lanes, element
    ``r * L + k`` of a run is added to lane ``k`` in the loss's dtype; after each run the
    lanes are folded pairwise (``lanes[k] += lanes[k + h]``) down to ``WIDE_LANES`` and
    added to as many float64 sums; at the end of the block those are added in a pairwise
    tree, then the last ``n % L`` elements one by one in float64. No fastmath flag lets
    LLVM reorder an addition, so every compilation of this function (its own, a copy
    inlined into a kernel, one loaded from numba's disk cache) gives the same bits for
    the same n = hi - lo; the lanes are independent, so the loop over k still
    vectorises.
    """
    # slices indexed from 0: numba then knows no index is negative, and the loop
    # vectorises (about 2.5x faster than indexing a[lo + m])
    ab, bb = block_of(a, lo, hi, _scratch(a)), block_of(b, lo, hi, _scratch(b))
    wb, gb = block_of(w, lo, hi, _scratch(w)), part(grad_out, lo, hi)
    # a constant here, not an argument: the unweighted gradient's ``* t`` by it folds away
    one = _one_like(half)
    zero = _zero_like(half)
    lanes_count, rows_per_run = _run_shape(half)
    lanes = _lane_array(half)
    wide = _wide_array(half)
    for k in range(WIDE_LANES):
        wide[k] = 0.0
    n = hi - lo
    rows = n // lanes_count
    for first in range(0, rows, rows_per_run):
        for k in range(lanes_count):
            lanes[k] = zero
        # the run's own slices, indexed from 0 (see above)
        lo_run, hi_run = first * lanes_count, min(first + rows_per_run, rows) * lanes_count
        ar, br = part(ab, lo_run, hi_run), part(bb, lo_run, hi_run)
        wr, gr = part(wb, lo_run, hi_run), part(gb, lo_run, hi_run)
        for r in range(0, hi_run - lo_run, lanes_count):
            for k in range(lanes_count):
                lanes[k] += loss_at(kind, r + k, ar, br, wr, p, half, half_p, one, scale, gr)
        _fold_lanes(lanes, wide)
    h = WIDE_LANES // 2
    while h:
        for k in range(h):
            wide[k] += wide[k + h]
        h //= 2
    total = wide[0]
    done = rows * lanes_count
    ar, br = part(ab, done, n), part(bb, done, n)
    wr, gr = part(wb, done, n), part(gb, done, n)
    for m in range(n - done):
        total += loss_at(kind, m, ar, br, wr, p, half, half_p, one, scale, gr)
    return total


@njit(**_OPTIONS)
def _block_loss_sum_wide(kind, a, b, w, p, half, half_p, n):
    """sum(w * loss(a - b)) over ``n`` elements with every term added in float64, in
    order."""
    one = _one_like(half)
    total = 0.0
    for m in range(n):
        total += loss_at(kind, m, a, b, w, p, half, half_p, one, one, None)
    return total


class Kernels(NamedTuple):
    """One loss kind's kernels, compiled one way (serial or threaded); what each computes:
    the module's docstring."""
    loss_each: object
    loss_sum: object
    grad_each: object
    hess_each: object


class Variants(NamedTuple):
    """One loss kind's kernels, compiled serial and threaded (see :func:`kernels`), and
    ``loss_sum_again``, serial, which a caller runs where ``loss_sum``'s total is not
    finite: a kernel of its own, compiled only when a sum first needs it (inside
    ``loss_sum`` it added a fifth to the compile time of every reduction)."""
    serial: Kernels
    parallel: Kernels
    loss_sum_again: object


def _family(kind):
    """The kernels of one loss kind. ``spec`` is a compile-time constant of each of
    them (numba freezes closure variables), so the branches on the kind fold away."""
    spec = (kind, element.stamp)
    # the scalars arrive as Python floats (see _scalar) and are used under other names:
    # numba gives a variable one type, and p = _scalar(p, a, b) would keep p a float64

    def loss_each(a, b, w, p, half, half_p, loss_out, grad_out):
        """loss_out = w * loss(a - b); and grad_out = w * dloss(a - b) in the same pass
        when grad_out is not None"""
        k = spec[0]
        p_, half_, half_p_ = _scalar(p, a, b), _scalar(half, a, b), _scalar(half_p, a, b)
        one = _one_like(half_)
        n = loss_out.size
        block = _block_length(a, b, w)
        for j in prange((n + block - 1) // block):
            lo, hi = j * block, min(n, (j + 1) * block)
            ab, bb = block_of(a, lo, hi, _scratch(a)), block_of(b, lo, hi, _scratch(b))
            wb, lb, gb = block_of(w, lo, hi, _scratch(w)), loss_out[lo:hi], part(grad_out, lo, hi)
            for i in range(hi - lo):
                lb[i] = loss_at(k, i, ab, bb, wb, p_, half_, half_p_, one, one, gb)

    def loss_sum(a, b, w, p, half, half_p, scale, grad_out):
        """sum(w * loss(a - b)) in float64; and grad_out = scale * w * dloss(a - b) in
        the same pass when grad_out is not None"""
        k = spec[0]
        p_, half_, half_p_ = _scalar(p, a, b), _scalar(half, a, b), _scalar(half_p, a, b)
        scale_ = _scalar(scale, a, b)
        n = max(size_of(a), size_of(b), size_of(w))
        block = _block_length(a, b, w)
        block_sums = np.empty((n + block - 1) // block, np.float64)
        for j in prange(block_sums.size):
            block_sums[j] = _block_loss_sum(k, a, b, w, p_, half_, half_p_, scale_, grad_out,
                                            j * block, min(n, (j + 1) * block))
        total = 0.0
        for s in block_sums:
            total += s
        return total

    def loss_sum_again(a, b, w, p, half, half_p):
        """loss_sum's total again, where it was not finite: each block whose sum is not
        finite summed with every term added in float64 first (float32 lanes that overflow
        must not make the total inf where the float64 sum is finite)"""
        k = spec[0]
        p_, half_, half_p_ = _scalar(p, a, b), _scalar(half, a, b), _scalar(half_p, a, b)
        one = _one_like(half_)
        n = max(size_of(a), size_of(b), size_of(w))
        block = _block_length(a, b, w)
        total = 0.0
        for lo in range(0, n, block):
            hi = min(n, lo + block)
            s = _block_loss_sum(k, a, b, w, p_, half_, half_p_, one, None, lo, hi)
            if not math.isfinite(s):
                s = _block_loss_sum_wide(k, block_of(a, lo, hi, _scratch(a)),
                                         block_of(b, lo, hi, _scratch(b)),
                                         block_of(w, lo, hi, _scratch(w)), p_, half_, half_p_,
                                         hi - lo)
            total += s
        return total

    def grad_each(a, b, w, upstream, p, scale, upstream_value, grad_out):
        """grad_out = scale * dloss(a - b) * (upstream_value * w * upstream)"""
        k = spec[0]
        p_, scale_ = _scalar(p, a, b), _scalar(scale, a, b)
        upstream_value_ = _scalar(upstream_value, a, b)
        n = grad_out.size
        block = _block_length(a, b, w)
        for j in prange((n + block - 1) // block):
            lo, hi = j * block, min(n, (j + 1) * block)
            ab, bb = block_of(a, lo, hi, _scratch(a)), block_of(b, lo, hi, _scratch(b))
            wb, ub = block_of(w, lo, hi, _scratch(w)), block_of(upstream, lo, hi, _scratch(upstream))
            gb = grad_out[lo:hi]
            for i in range(hi - lo):
                grad_at(k, i, ab, bb, wb, ub, p_, scale_, upstream_value_, gb)

    def hess_each(a, b, w, p, half, scale, hess_out):
        """hess_out = scale * w * d2loss(a - b), the diagonal of the Hessian"""
        k = spec[0]
        p_, scale_ = _scalar(p, a, b), _scalar(scale, a, b)
        one = _one_like(scale_)
        n = hess_out.size
        block = _block_length(a, b, w)
        for j in prange((n + block - 1) // block):
            lo, hi = j * block, min(n, (j + 1) * block)
            ab, bb = block_of(a, lo, hi, _scratch(a)), block_of(b, lo, hi, _scratch(b))
            wb, hb = block_of(w, lo, hi, _scratch(w)), hess_out[lo:hi]
            for i in range(hi - lo):
                hess_at(k, i, ab, bb, wb, p_, scale_, one, hb)

    fns = (loss_each, loss_sum, grad_each, hess_each)
    serial = Kernels(*(njit(**_OPTIONS)(serial_twin(f)) for f in fns))
    # threaded: a fork waits for them; serial in a child where TBB is unusable (_tbb)
    parallel = Kernels(*(_tbb.fork_safe(njit(parallel=True, **_OPTIONS)(f), s)
                         for f, s in zip(fns, serial)))
    return Variants(serial, parallel, njit(**_OPTIONS)(loss_sum_again))


FAMILIES = {kind: _family(kind) for kind in (_math.SMOOTH_L1, _math.HUBER, _math.L1)}


def kernels(kind, n, itemsize, sum_only=False):
    """The kernels to run over ``n`` elements of loss ``kind`` computed in a dtype of
    ``itemsize`` bytes: threaded from ``PARALLEL_MIN_BYTES`` per operand on
    (``PARALLEL_MIN_BYTES_SUM`` for ``loss_sum`` without a gradient, ``sum_only``),
    serial below."""
    limit = PARALLEL_MIN_BYTES_SUM if sum_only else PARALLEL_MIN_BYTES
    return FAMILIES[kind][n * itemsize >= limit]


# -- what a host call runs -------------------------------------------------------------------

# The kernel calls a host call makes, named by what they write: the kernel each runs, and
# its arguments after ``a`` and ``b`` as the direct entries take them ("f": a Python float,
# "out": a 1-D C-contiguous array of the dtype, None: None).
KERNEL_CALLS = {
    "loss_sum": ("loss_sum", (None, "f", "f", "f", "f", None)),  # the sum alone
    "loss_sum_grad": ("loss_sum", (None, "f", "f", "f", "f", "out")),
    "loss_each": ("loss_each", (None, "f", "f", "f", "out", None)),
    "loss_each_grad": ("loss_each", (None, "f", "f", "f", "out", "out")),
    "grad_each": ("grad_each", (None, None, "f", "f", "f", "out")),
    "hess_each": ("hess_each", (None, "f", "f", "f", "out")),
}


class DispatchedCalls:
    """The kernel calls (:data:`KERNEL_CALLS`) of one loss kind for one size and dtype,
    as numba's dispatchers: any operands (weights, broadcast views, upstream gradients)."""

    def __init__(self, kernels, sum_kernels):
        for name, (kernel, _) in KERNEL_CALLS.items():
            setattr(self, name, getattr(sum_kernels if name == "loss_sum" else kernels, kernel))


class _Entry:
    """A :class:`DirectCalls` attribute: the entry point, compiled (or loaded from the
    cache) on first use as the dispatcher would, then kept in the instance's ``__dict__``,
    where a later lookup finds it first."""

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, calls, owner=None):
        if calls is None:  # looked up on the class
            return self
        kernel, rest = KERNEL_CALLS[self.name]
        element = numba.from_dtype(calls.dtype)
        flat = numba.types.Array(element, 1, "C")
        kinds = {"f": numba.types.float64, "out": flat, None: numba.types.none}
        signature = (flat, numba.types.Array(element, calls.target_ndim, "C"),
                     *(kinds[arg] for arg in rest))
        entry = calls.__dict__[self.name] = getattr(calls.kernels, kernel).compile(signature)
        return entry


class DirectCalls:
    """The same calls of the serial kernels, as the compiled entry points of one argument
    signature, which numba's dispatcher would pick for the host's common operands: ``a``
    a 1-D C-contiguous, aligned, writeable array of ``dtype`` (``flags.carray``), ``b``
    such an array or (``target_ndim`` 0) a 0-d one, no weight, no upstream array, outputs
    like ``a``. The caller guarantees those types: an entry point converts its arguments
    by its signature and checks nothing. Skipping the dispatcher, which types every
    argument, saves 0.3-0.5 us a call (a fifth of a 1e3-element one)."""

    loss_sum, loss_sum_grad, loss_each = _Entry(), _Entry(), _Entry()
    loss_each_grad, grad_each, hess_each = _Entry(), _Entry(), _Entry()

    def __init__(self, kernels, dtype, target_ndim):
        self.kernels, self.dtype, self.target_ndim = kernels, dtype, target_ndim


_BY_VARIANT = {}  # (kind, threaded, threaded sum, dtype) -> what kernel_calls() returns


def kernel_calls(kind, n, dtype):
    """The :class:`DispatchedCalls` of loss ``kind`` over ``n`` elements computed in
    ``dtype``, and the calls for a 0-d and a 1-D target of the types :class:`DirectCalls`
    takes: those where the kernels run serial, the same :class:`DispatchedCalls` where
    they are threaded (from a few hundred KiB, where the dispatcher's cost is lost in the
    kernel's). One object per variant, so each entry compiles once a process."""
    itemsize = dtype.itemsize
    key = (kind, n * itemsize >= PARALLEL_MIN_BYTES, n * itemsize >= PARALLEL_MIN_BYTES_SUM,
           dtype)
    found = _BY_VARIANT.get(key)
    if found is None:
        each = kernels(kind, n, itemsize)
        dispatched = DispatchedCalls(each, kernels(kind, n, itemsize, sum_only=True))
        direct = ((dispatched, dispatched) if each is not FAMILIES[kind].serial
                  else tuple(DirectCalls(each, dtype, ndim) for ndim in (0, 1)))
        found = _BY_VARIANT[key] = (dispatched, direct)
    return found
