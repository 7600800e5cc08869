"""Parallel CPU kernels over flat contiguous buffers.

Every kernel takes 1-D C-contiguous arrays of one length ``n`` (``a`` = input,
``b`` = target, optional ``w`` = weight and ``go`` = upstream gradient, each may be
float32 or float64; numba promotes mixed pairs as NumPy does) and scalars already in the
computation dtype. Shapes, broadcasting, dtypes and validation live in ``_losses``.

Reductions are deterministic: the elements are cut into fixed blocks of ``BLOCK``; each
block is summed in float64 (vectorised, in an order fixed by the compiled code) and the
block sums are added left to right. Neither depends on how many threads ran the blocks,
so results are bit-identical for any ``numba.set_num_threads``. The fused kernels compute
the loss, its gradient and the reduction in one pass over memory, and a 'mean'/'sum'
allocates only the ``n / BLOCK`` block sums.

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

# elements per reduction block: n / BLOCK float64 block sums is under 0.2% of the input
BLOCK = 4096
# below this many elements the serial kernels run: waking the thread pool costs more
# than a cheap loss gains from it (see benchmarks/)
PARALLEL_MIN = 1 << 15

# The element formulas set fastmath explicitly so they do not inherit the kernels'
# flags: they keep torch's exact operation order. The kernels allow reassociation (it is
# what lets the float64 block accumulators vectorise) but never nnan/ninf, which would
# fold away NaN and inf handling.
_ELEMENT_OPTIONS = dict(cache=True, error_model="numpy", fastmath=False)
_KERNEL_OPTIONS = dict(cache=True, error_model="numpy", fastmath={"reassoc", "nsz"})

loss = njit(**_ELEMENT_OPTIONS)(_math.loss)
dloss = njit(**_ELEMENT_OPTIONS)(_math.dloss)
d2loss = njit(**_ELEMENT_OPTIONS)(_math.d2loss)

# numba's disk cache is invalidated when a kernel's own file changes, not when a
# function it calls from another file does: a stamp of _math.py in each kernel's
# closure makes an edit there invalidate the kernels too.
_MATH_STAMP = zlib.crc32(inspect.getsource(_math).encode())


@njit(cache=True, error_model="numpy", fastmath=False)
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
    return _Compiled(njit(parallel=True, **_KERNEL_OPTIONS)(fn),
                     njit(**_KERNEL_OPTIONS)(serial))


class _Family(NamedTuple):
    loss_none: _Compiled
    loss_sum: _Compiled
    grad: _Compiled
    value_and_grad_none: _Compiled
    value_and_grad_sum: _Compiled
    hess: _Compiled


def _family(kind):
    """The kernels of one loss kind. ``spec`` is a compile-time constant of each of
    them (numba freezes closure variables), so the branches on the kind fold away."""
    spec = (kind, _MATH_STAMP)

    def loss_none(a, b, w, p, half, out):
        """out = w * loss(a - b)"""
        k = spec[0]
        for i in prange(a.size):
            v = loss(k, a[i] - b[i], p, half)
            if w is not None:
                v = v * w[i]
            out[i] = v

    def loss_sum(a, b, w, p, half):
        """sum(w * loss(a - b)) in float64"""
        k = spec[0]
        n = a.size
        nblocks = (n + BLOCK - 1) // BLOCK
        block_sums = np.empty(nblocks, np.float64)
        for j in prange(nblocks):
            acc = 0.0
            for i in range(j * BLOCK, min(n, j * BLOCK + BLOCK)):
                v = loss(k, a[i] - b[i], p, half)
                if w is not None:
                    v = v * w[i]
                acc += v
            block_sums[j] = acc
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

    def value_and_grad_none(a, b, w, p, half, loss_out, grad_out):
        """loss_out = w * loss(a - b); grad_out = w * dloss(a - b), in one pass"""
        k = spec[0]
        one = half + half
        for i in prange(a.size):
            x = a[i] - b[i]
            v = loss(k, x, p, half)
            t = one
            if w is not None:
                t = w[i]
                v = v * t
            loss_out[i] = v
            grad_out[i] = dloss(k, x, p, one, t)

    def value_and_grad_sum(a, b, w, p, half, scale, grad_out):
        """sum(w * loss(a - b)) in float64; grad_out = scale * w * dloss(a - b), one pass"""
        k = spec[0]
        one = half + half
        n = a.size
        nblocks = (n + BLOCK - 1) // BLOCK
        block_sums = np.empty(nblocks, np.float64)
        for j in prange(nblocks):
            acc = 0.0
            for i in range(j * BLOCK, min(n, j * BLOCK + BLOCK)):
                x = a[i] - b[i]
                v = loss(k, x, p, half)
                t = one
                if w is not None:
                    t = w[i]
                    v = v * t
                acc += v
                grad_out[i] = dloss(k, x, p, scale, t)
            block_sums[j] = acc
        return _ordered_sum(block_sums)

    def hess(a, b, w, p, half, scale, out):
        """out = scale * w * d2loss(a - b), the diagonal of the Hessian"""
        k = spec[0]
        one = half + half
        for i in prange(a.size):
            t = one
            if w is not None:
                t = w[i]
            out[i] = d2loss(k, a[i] - b[i], p, scale, t)

    return _Family(*(_compile(f) for f in (loss_none, loss_sum, grad, value_and_grad_none,
                                           value_and_grad_sum, hess)))


FAMILIES = {kind: _family(kind) for kind in (_math.SMOOTH_L1, _math.HUBER, _math.L1)}
