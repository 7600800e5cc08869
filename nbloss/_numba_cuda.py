"""``nbloss.elementwise`` inside ``@cuda.jit`` kernels: the CUDA overloads of the element
functions, registered by :func:`init`, which numba-cuda calls through the package's
``numba_cuda_extensions`` entry point before it compiles a kernel.

Each is ``_numba.element_impl`` over ``_cuda.element``, the device functions the CUDA
kernels of the array functions call, so an element is theirs to the bit. ``half * p``
is computed with ``libdevice``'s round-to-nearest product, which the compiler never
contracts with the subtraction that uses it into a fused multiply-add (the array
functions compute it on the host for the same reason, ``_math.loss``). A kernel cannot
raise: a bad parameter gives NaN. In numba's CUDA simulator a kernel runs as Python and
calls the Python functions, which raise.
"""

from numba import config

from . import _numba, elementwise

_initialised = []


def _cuda_element(name, x, param):
    from numba import cuda
    from numba.cuda import libdevice

    from . import _cuda

    ft = _numba.float_type(x)
    product = libdevice.fmul_rn if ft.bitwidth == 32 else libdevice.dmul_rn
    return cuda.jit(device=True)(_numba.element_impl(name, ft, _cuda.element, product, False))


def init():
    """Register the CUDA overloads (idempotent; nothing to do in the simulator)."""
    if _initialised or config.ENABLE_CUDASIM:
        return
    _initialised.append(True)
    from numba.cuda.core.errors import TypingError
    from numba.cuda.extending import overload

    for fn in elementwise.FUNCTIONS:
        _numba.elementwise_overload(fn, _cuda_element, lambda f: overload(f, target="cuda"),
                                    TypingError)
