"""nbloss inside numba code: the overloads that let a user's ``@njit`` function (and a
``@vectorize`` ufunc) call ``nbloss.elementwise`` and the public array functions.

:func:`init` registers them. numba calls it through the package's ``numba_extensions``
entry point (``pyproject.toml``) before it compiles anything, so neither ``import
nbloss`` nor ``import nbloss.elementwise`` imports numba, in whichever order a script
imports nbloss and numba. Registering is cheap and compiles nothing: the typing
functions import the kernels (``_cpu``, ``_numba_api``) when a user's function first
calls nbloss. The CUDA overloads of the element functions are in ``_numba_cuda``.

The element functions are built once here for both targets (:func:`element_impl`) from
the formulas of ``_math``, compiled by the target's own module: ``_cpu.element`` on the
CPU, ``_cuda.element`` on CUDA, the compilations the array functions' kernels call.
"""

import math

from numba import types
from numba.core import errors
from numba.extending import overload, register_jitable

from . import _autograd, _losses, _math, elementwise

LOSS, GRAD, HESS = "loss", "grad", "hess"

# the public array functions callable inside @njit, and what each runs: (loss, operation);
# the *_hess_diag functions live in _autograd, the others in _losses
ARRAY_FUNCTIONS = {
    "smooth_l1_loss": ("smooth_l1", "loss"),
    "smooth_l1_loss_grad": ("smooth_l1", "grad"),
    "smooth_l1_loss_value_and_grad": ("smooth_l1", "value_and_grad"),
    "smooth_l1_loss_hess_diag": ("smooth_l1", "hess_diag"),
    "huber_loss": ("huber", "loss"),
    "huber_loss_grad": ("huber", "grad"),
    "huber_loss_value_and_grad": ("huber", "value_and_grad"),
    "huber_loss_hess_diag": ("huber", "hess_diag"),
}


def float_type(x):
    """The numba float type an element function computes in for an ``x`` of numba type
    ``x``: float32 or float64 as given, float64 for an integer; None otherwise."""
    if isinstance(x, types.Float) and x.bitwidth in (32, 64):
        return x
    if isinstance(x, types.Integer):
        return types.float64
    return None


def is_real(t):
    """A numba type a parameter (beta, delta) may have: a float or an integer."""
    return isinstance(t, (types.Float, types.Integer))


def element_impl(name, ft, element, product, raises):
    """The implementation of ``elementwise.<name>`` for an ``x`` of float type ``ft``: the
    parameter checked and rounded to ``ft``, the loss kind chosen as the array functions
    choose it (``_call.scalars``: smooth_l1 is exact L1 when beta rounds to 0 or 1/beta
    overflows in ``ft``), then ``element.loss``, ``dloss`` or ``d2loss`` (``_math``) with
    the array functions' scalars for reduction 'none': ``half`` = 0.5, ``half_p`` =
    ``product(half, p)``, scale and weight 1. ``raises``: a bad parameter raises
    ``ValueError`` (CPU) or gives NaN (CUDA, where a kernel cannot raise)."""
    what = name.rsplit("_", 1)[1] if name.endswith(("_grad", "_hess")) else LOSS
    loss_fn, dloss_fn, d2loss_fn = element.loss, element.dloss, element.d2loss
    smooth = name.startswith("smooth_l1")
    nan_message = f"{name}: {'beta' if smooth else 'delta'} must not be NaN"
    range_message = (f"{name} does not support negative values for beta" if smooth
                     else f"{name} does not support non-positive values for delta")
    smooth_l1_kind, l1_kind, huber_kind = _math.SMOOTH_L1, _math.L1, _math.HUBER

    def compute(x, param):
        if param != param or not (param >= 0 if smooth else param > 0):
            if raises:
                if param != param:
                    raise ValueError(nan_message)
                raise ValueError(range_message)
            return ft(math.nan)
        p = ft(param)
        half = ft(0.5)
        one = ft(1)
        kind = huber_kind
        if smooth:
            kind = smooth_l1_kind
            if p == 0 or not math.isfinite(one / p):
                kind = l1_kind
        xf = ft(x)
        if what == LOSS:
            return loss_fn(kind, xf, p, half, product(half, p))
        if what == GRAD:
            return dloss_fn(kind, xf, p, one, one)
        return d2loss_fn(kind, xf, p, one, one)

    return compute


def _typing_error(name, x, param):
    """None when ``x`` and the parameter have types an element function takes, else the
    message of the TypingError."""
    if float_type(x) is None:
        return f"nbloss.elementwise.{name}: x must be a float32 or float64 number, got {x}"
    if not is_real(param):
        return f"nbloss.elementwise.{name}: the parameter must be a real number, got {param}"
    return None


def elementwise_overload(fn, typing_for, register, error=errors.TypingError):
    """Register ``typing_for(name, x, param)``, which returns a compiled implementation
    ``(x, param) -> result``, by ``register(fn)`` (the target's ``overload``), with
    ``fn``'s own parameter names (``beta`` or ``delta``), as numba requires; ``error``:
    the target's TypingError, for arguments of the wrong types."""
    name = fn.__name__

    def checked(x, param):
        message = _typing_error(name, x, param)
        if message:
            raise error(message)
        return typing_for(name, x, param)

    if name.startswith("smooth_l1"):
        def typing(x, beta):
            compute = checked(x, beta)
            return lambda x, beta: compute(x, beta)
    else:
        def typing(x, delta):
            compute = checked(x, delta)
            return lambda x, delta: compute(x, delta)
    register(fn)(typing)


def _cpu_element(name, x, param):
    from . import _cpu

    return register_jitable(element_impl(name, float_type(x), _cpu.element, _product, True))


@register_jitable
def _product(a, b):
    """``half * p`` on the CPU: a plain product (nothing contracts it there)."""
    return a * b


def _array_overload(fn, loss, op):
    """Register the overload of a public array function; the typing itself is in
    ``_numba_api``, imported on first use."""
    def typing_for(input, target, param, reduction, weight, out):
        from . import _numba_api

        return _numba_api.implementation(fn.__name__, loss, op, input, target, param,
                                         reduction, weight, out)

    options = dict(prefer_literal=True, jit_options=dict(error_model="numpy"))
    if loss == "smooth_l1":
        def typing(input, target, beta=1.0, reduction="mean", weight=None, out=None):
            body = typing_for(input, target, beta, reduction, weight, out)
            if body is None:
                return None

            def impl(input, target, beta=1.0, reduction="mean", weight=None, out=None):
                return body(input, target, beta, reduction, weight, out)
            return impl
    else:
        def typing(input, target, delta=1.0, reduction="mean", weight=None, out=None):
            body = typing_for(input, target, delta, reduction, weight, out)
            if body is None:
                return None

            def impl(input, target, delta=1.0, reduction="mean", weight=None, out=None):
                return body(input, target, delta, reduction, weight, out)
            return impl
    overload(fn, **options)(typing)


def _cpu_overload(fn):
    return overload(fn, jit_options=dict(error_model="numpy"))


_initialised = []


def init():
    """Register every overload for numba's CPU target (idempotent); numba calls this
    through the ``numba_extensions`` entry point."""
    if _initialised:
        return
    _initialised.append(True)
    for fn in elementwise.FUNCTIONS:
        elementwise_overload(fn, _cpu_element, _cpu_overload)
    for name, (loss, op) in ARRAY_FUNCTIONS.items():
        module = _autograd if op == "hess_diag" else _losses
        _array_overload(getattr(module, name), loss, op)
