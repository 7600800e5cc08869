"""Per-element formulas, written once for every backend.

These are plain Python functions; each backend compiles them for its target with
:func:`compile_for` (``_cpu`` with ``numba.njit``, ``_cuda`` as CUDA device functions).
``kind`` is a compile-time constant in every kernel, so the branches on it fold away.

With ``x = input - target``, ``z = |x|`` and ``p`` the loss's parameter (beta or delta):

====================  ==============================  ==================================
kind                  loss                            d loss / dx
====================  ==============================  ==================================
``SMOOTH_L1`` (beta)  0.5 z^2 / p if z < p            x / p if |x| < p
                      else z - 0.5 p                  else sign(x)
``HUBER`` (delta)     0.5 z^2 if z < p                x if |x| < p
                      else p (z - 0.5 p)              else p sign(x)
``L1``                z                               sign(x), 0 at x == 0
====================  ==============================  ==================================

The boundary is torch's strict ``z < p``, and the operations happen in the order of
torch's vectorised CPU kernels (``0.5 * z * z / beta``, ``norm * (x / beta) * grad``),
so that results in the same dtype agree with torch's to the bit. ``half`` is 0.5 in the computation dtype:
numba types a bare ``0.5`` literal as float64, which would promote float32 math.
"""

import inspect
import sys
import types
import zlib

SMOOTH_L1 = 0
HUBER = 1
L1 = 2


def loss(kind, x, p, half, half_p):
    """Loss of one difference ``x = input - target``. ``half_p`` is ``half * p`` rounded
    to the dtype, computed once by the caller: written out here, CUDA's assembler would
    contract ``z - half * p`` into a fused multiply-add and round differently from the
    CPU (and from torch's CPU kernels)."""
    z = abs(x)
    if kind == SMOOTH_L1:
        return half * z * z / p if z < p else z - half_p
    if kind == HUBER:
        return half * z * z if z < p else p * (z - half_p)
    return z


def dloss(kind, x, p, scale, t):
    """``scale * d loss / dx * t``: ``scale`` is the reduction's 1/N (or 1), ``t`` the
    upstream gradient times the weight, multiplied in the order of torch's vectorised
    CPU backward. NaN in ``x`` gives NaN, +-inf gives +-1 (smooth_l1) or +-delta (huber)."""
    if kind == SMOOTH_L1:
        if x <= -p:
            return -scale * t
        if x >= p:
            return scale * t
        return scale * (x / p) * t
    if kind == HUBER:
        # torch's three branches, x < -p, x > p and the rest, are scale * clamp(x, -p, p)
        # * t to the bit; two selects compile to vector max and min (a NaN x stays x),
        # not to compares, masks and blends
        c = -p if x < -p else x
        c = p if c > p else c
        return scale * c * t
    if x > 0:
        return scale * t
    if x < 0:
        return -scale * t
    return x * scale * t  # x is 0 (gradient 0) or NaN (NaN)


def d2loss(kind, x, p, scale, t):
    """``scale * d^2 loss / dx^2 * t`` with torch's double-backward semantics: ``scale *
    t`` times the mask ``|x| < p`` (0 on the boundary and where ``x`` is NaN), over beta
    for smooth_l1; 0 for L1, whatever ``t`` (torch's double backward of L1 is zero).
    The mask multiplies, as in torch: outside it a NaN or infinite ``t`` (the weight)
    gives NaN, a finite one a 0 of its sign."""
    zero = scale - scale  # a typed 0: a bare literal would promote float32 to float64
    if kind == L1:
        return zero
    h = scale * t
    if not abs(x) < p:
        h = h * zero
    if kind == SMOOTH_L1:
        return h / p
    return h


# -- one element of each kernel -------------------------------------------------------------
# Both backends loop over these (``prange`` on the CPU, a grid-stride loop on CUDA). ``a``,
# ``b`` and the optional (None) ``w``, ``upstream`` and ``grad_out`` are flat arrays (an
# operand may also be another layout its backend's ``value_at`` reads: a 0-d array on the
# CPU, a broadcast view on CUDA); ``i`` the index; ``one`` is 1 in the computation dtype.

def value_at(x, i):
    """``x[i]``: how the functions below read an operand. A backend may replace it
    (``compile_for``): the CPU's also reads a 0-d array, an operand broadcast from one
    value, as that value for every ``i``; CUDA's a 2-D to 4-D view of an operand
    broadcast along some axes at C-order position ``i``."""
    return x[i]


def loss_at(kind, i, a, b, w, p, half, half_p, one, scale, grad_out):
    """w[i] * loss(x), x = a[i] - b[i]; and grad_out[i] = scale * w[i] * dloss(x) when
    grad_out is not None: one element of ``loss_each`` and ``loss_sum``."""
    x = value_at(a, i) - value_at(b, i)
    t = one
    if w is not None:
        t = value_at(w, i)
    if grad_out is not None:
        grad_out[i] = dloss(kind, x, p, scale, t)
    v = loss(kind, x, p, half, half_p)
    if w is not None:
        v = v * t
    return v


def grad_at(kind, i, a, b, w, upstream, p, scale, upstream_value, grad_out):
    """grad_out[i] = scale * dloss(a[i] - b[i]) * (upstream_value * w[i] * upstream[i])."""
    t = upstream_value
    if w is not None:
        t = t * value_at(w, i)
    if upstream is not None:
        t = t * value_at(upstream, i)
    grad_out[i] = dloss(kind, value_at(a, i) - value_at(b, i), p, scale, t)


def hess_at(kind, i, a, b, w, p, scale, one, hess_out):
    """hess_out[i] = scale * w[i] * d2loss(a[i] - b[i])."""
    t = one
    if w is not None:
        t = value_at(w, i)
    hess_out[i] = d2loss(kind, value_at(a, i) - value_at(b, i), p, scale, t)


ELEMENT_FUNCTIONS = ("loss", "dloss", "d2loss", "value_at", "loss_at", "grad_at", "hess_at")


def compile_for(jit, **replaced):
    """This module's element functions compiled by ``jit`` (``numba.njit(...)`` or
    ``cuda.jit(device=True)``), as a namespace: each compiled function calls the compiled
    versions of the others, through a copy of the module's globals. ``replaced``: element
    functions the backend provides itself, already callable from its compiled code.

    ``stamp`` is a checksum of this file. numba's disk cache is invalidated when a
    kernel's own file changes, not when a function it calls from another file does: the
    backends put the stamp in each kernel's closure, so an edit here recompiles them."""
    namespace = dict(globals(), **replaced)
    for name in ELEMENT_FUNCTIONS:
        if name in replaced:
            continue
        fn = namespace[name]
        namespace[name] = jit(types.FunctionType(fn.__code__, namespace, name, fn.__defaults__))
    stamp = zlib.crc32(inspect.getsource(sys.modules[__name__]).encode())
    return types.SimpleNamespace(stamp=stamp, **{name: namespace[name] for name in ELEMENT_FUNCTIONS})
