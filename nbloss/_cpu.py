"""Parallel CPU kernels over flat contiguous buffers.

Every kernel takes 1-D C-contiguous arrays of one length ``n`` (``a`` = input,
``b`` = target, optional ``w`` = weight and ``go`` = upstream gradient, each may be
float32 or float64; numba promotes mixed pairs as NumPy does) and scalars already in the
computation dtype. Shapes, broadcasting, dtypes and validation live in ``_losses``.

Reductions are deterministic: the elements are cut into fixed blocks of ``BLOCK``; each
block's float64 values are summed by ``_block_sum``, whose order depends only on the
block's length, and the block sums are added left to right. Nothing depends on how many
threads ran the blocks or on how the compiler vectorised the loop, so results are
bit-identical for any ``numba.set_num_threads``, and the fused kernel's sum equals the
plain loss's. The fused kernels compute the loss, its gradient and the reduction in one
pass over memory. A 'mean'/'sum' holds one float64 per block plus, per running thread,
one block of float64 values (32 KiB): no N-sized temporary.

Each kernel is compiled twice: threaded (``prange``) and serial (the same code with
``prange`` acting as ``range``), and ``PARALLEL_MIN`` picks between them.
"""

import inspect
import types
import zlib
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from . import _math

# elements per reduction block
BLOCK = 4096
# below this many elements the serial kernels run: waking the thread pool costs more
# than a cheap loss gains from it (see benchmarks/)
PARALLEL_MIN = 1 << 15

# No fastmath flags in the kernels: nnan/ninf would fold away NaN and inf handling, and
# reassoc in a loop that also stores would let a runtime alias check pick between two
# summation orders (seen: a 1-ulp change with the address of the gradient buffer).
_OPTIONS = dict(cache=True, error_model="numpy", fastmath=False)

loss = njit(**_OPTIONS)(_math.loss)
dloss = njit(**_OPTIONS)(_math.dloss)
d2loss = njit(**_OPTIONS)(_math.d2loss)

# numba's disk cache is invalidated when a kernel's own file changes, not when a
# function it calls from another file does: a stamp of _math.py in each kernel's
# closure makes an edit there invalidate the kernels too.
_MATH_STAMP = zlib.crc32(inspect.getsource(_math).encode())


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "nsz"})
def _block_sum(values):
    """A float64 sum that the compiler may pack into SIMD partial sums (reassoc). Its
    order depends on len(values) alone: the loop stores nothing, so no runtime alias
    check can switch it to another code path. This is why the kernels write a block's
    values here first instead of summing as they go."""
    acc = 0.0
    for v in values:
        acc += v
    return acc


@njit(**_OPTIONS)
def _ordered_sum(block_sums):
    total = 0.0
    for s in block_sums:
        total += s
    return total


class _Compiled(NamedTuple):
    parallel: object
    serial: object

    def __call__(self, n, *args):
        kernel = self.parallel if n >= PARALLEL_MIN else self.serial
        return kernel(*args)


def _compile(fn):
    """Threaded and serial dispatchers of one kernel. The serial one is a clone with
    its own qualified name: numba's cache index ignores compile flags, so two dispatchers
    of one function would overwrite each other's cache entries."""
    serial = types.FunctionType(fn.__code__, fn.__globals__, fn.__name__ + "_serial",
                                fn.__defaults__, fn.__closure__)
    serial.__qualname__ = fn.__qualname__ + "_serial"
    return _Compiled(njit(parallel=True, **_OPTIONS)(fn), njit(**_OPTIONS)(serial))


class _Family(NamedTuple):
    forward_none: _Compiled
    forward_sum: _Compiled
    grad: _Compiled
    hess: _Compiled


def _family(kind):
    """The kernels of one loss kind. ``spec`` is a compile-time constant of each of
    them (numba freezes closure variables), so the branches on the kind fold away.
    Optional arrays (``w``, ``go``, ``loss_out``, ``grad_out``) may be None: numba
    compiles that variant with the branch removed."""
    spec = (kind, _MATH_STAMP)

    def forward_none(a, b, w, p, half, loss_out, grad_out):
        """loss_out = w * loss(a - b) and/or grad_out = w * dloss(a - b), one pass"""
        k = spec[0]
        one = half + half
        for i in prange(a.size):
            x = a[i] - b[i]
            t = one
            if w is not None:
                t = w[i]
            if loss_out is not None:
                v = loss(k, x, p, half)
                if w is not None:
                    v = v * t
                loss_out[i] = v
            if grad_out is not None:
                grad_out[i] = dloss(k, x, p, one, t)

    def forward_sum(a, b, w, p, half, scale, grad_out):
        """sum(w * loss(a - b)) in float64 and, when grad_out is given, grad_out =
        scale * w * dloss(a - b) in the same pass"""
        k = spec[0]
        one = half + half
        n = a.size
        nblocks = (n + BLOCK - 1) // BLOCK
        block_sums = np.empty(nblocks, np.float64)
        for j in prange(nblocks):
            lo = j * BLOCK
            hi = min(n, lo + BLOCK)
            # per-block slices, indexed from 0: numba then knows no index is negative,
            # and the loop vectorises (about 2.5x faster than indexing a[lo + m])
            ab, bb = a[lo:hi], b[lo:hi]
            if w is not None:
                wb = w[lo:hi]
            if grad_out is not None:
                gb = grad_out[lo:hi]
            values = np.empty(hi - lo, np.float64)  # 32 KiB: stays in L1/L2
            for m in range(hi - lo):
                x = ab[m] - bb[m]
                v = loss(k, x, p, half)
                t = one
                if w is not None:
                    t = wb[m]
                    v = v * t
                values[m] = v
                if grad_out is not None:
                    gb[m] = dloss(k, x, p, scale, t)
            block_sums[j] = _block_sum(values)
        return _ordered_sum(block_sums)

    def grad(a, b, w, go, p, scale, g0, out):
        """out = scale * dloss(a - b) * (g0 * w * go)"""
        k = spec[0]
        for i in prange(a.size):
            t = g0
            if w is not None:
                t = t * w[i]
            if go is not None:
                t = t * go[i]
            out[i] = dloss(k, a[i] - b[i], p, scale, t)

    def hess(a, b, w, p, half, scale, out):
        """out = scale * w * d2loss(a - b), the diagonal of the Hessian"""
        k = spec[0]
        one = half + half
        for i in prange(a.size):
            t = one
            if w is not None:
                t = w[i]
            out[i] = d2loss(k, a[i] - b[i], p, scale, t)

    return _Family(*(_compile(f) for f in (forward_none, forward_sum, grad, hess)))


FAMILIES = {kind: _family(kind) for kind in (_math.SMOOTH_L1, _math.HUBER, _math.L1)}
