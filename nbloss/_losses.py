"""The losses, gradients and value_and_grad functions (the backward and Hessian ones are
in ``_autograd``, the criteria in ``_criteria``): every public function builds the call
of the backend its data lives on (:func:`new_call`, which checks the loss's parameter)
and runs one operation on it. The formulas, reductions and dtype rules are in the
functions' docstrings (shared text in ``_docs``), the types in ``_typing``.

The backends (``_host``, ``_device``, ``_dask``) implement the contract in ``_call`` and
are imported on first use, not at ``import nbloss``: numba with the first call, CUDA only
when a device array arrives, Dask's layer only with a Dask array.
"""

from __future__ import annotations  # the reference shows the aliases' names

import importlib
from typing import Any

import numpy as np

from . import _call
from . import _validate as v
from ._docs import shared
from ._typing import Legacy, Operand, Param, Reduction, Stream, Weight

# The annotations here are what the reference and help() show, one signature a function;
# _losses.pyi adds the overloads that make a type checker's result precise (a scalar for
# 'mean'/'sum', an array for 'none'; ``Any`` for CUDA and Dask arrays), and
# tests/test_typing.py checks the two agree.

_backends = {}
# a grad_output of these types needs no look for a Dask array
_NOT_DASK = frozenset({type(None), float, int, np.ndarray, np.float32, np.float64})
_SPECS = _call.CHECKED_SPECS  # looked up here first: a call of _call.loss_spec costs 0.05 us


def _backend(name):
    """``nbloss._host``, ``nbloss._device`` or ``nbloss._dask``, imported on first use."""
    module = _backends.get(name)
    if module is None:
        try:
            module = _backends[name] = importlib.import_module(f"nbloss.{name}")
        except ImportError as exc:
            if name != "_device":
                raise
            raise RuntimeError(f"a CUDA device array was passed, but numba's CUDA target cannot "
                               f"be loaded ({exc}); install 'nbloss[cuda12]' or "
                               "'nbloss[cuda13]' to match the driver") from exc
    return module


def new_call(input, target, loss, param, reduction, weight=None, stream=None,
             warn_shapes=True, size_average=None, reduce=None,
             grad_output=None) -> _call.Call:
    """The call (a ``_call.Call``) of ``loss`` ('smooth_l1', 'huber' or 'l1') on the
    backend the data lives on, its parameter checked: ``_dask.DaskCall`` when any operand
    (or a backward's ``grad_output``) is a Dask array, ``_device.DeviceCall`` when any
    operand is a CUDA device array, ``_host.HostCall`` otherwise. Every public function
    enters here and then runs one operation of the call. ``warn_shapes``: torch's shape
    warning, which only a forward gives."""
    if size_average is not None or reduce is not None:
        reduction = v.legacy_reduction(size_average, reduce, reduction)
    spec = _SPECS.get((loss, param)) if type(param) is float else None
    if spec is None:
        spec = _call.loss_spec(loss, param)  # checks the parameter, and caches its spec
    # an ndarray and an ndarray or a Python number, and no weight or an ndarray: host
    # data, no need to look for Dask or device arrays
    if not (type(input) is np.ndarray
            and (type(target) is np.ndarray or type(target) is float or type(target) is int)
            and (weight is None or type(weight) is np.ndarray)
            and type(grad_output) in _NOT_DASK):
        operands = (input, target, weight)
        if any(v.is_dask_array(op) for op in (*operands, grad_output)):
            return _backend("_dask").DaskCall(input, target, spec, reduction, weight,
                                              stream=stream, warn_shapes=warn_shapes,
                                              grad_output=grad_output)
        if any(v.is_device_array(op) for op in operands):
            return _backend("_device").DeviceCall(input, target, spec, reduction, weight,
                                                  stream=stream, warn_shapes=warn_shapes)
    if stream is not None:
        raise ValueError("stream= is only for CUDA device arrays; these operands are host data")
    host = _backends.get("_host") or _backend("_host")
    return host.HostCall(input, target, spec, reduction, weight, warn_shapes)


# -- public functions ----------------------------------------------------------------------

@shared
def smooth_l1_loss(input: Operand, target: Operand, beta: Param = 1.0,
                   reduction: Reduction = "mean", *, weight: Weight = None,
                   out: Any = None, stream: Stream = None, size_average: Legacy = None,
                   reduce: Legacy = None) -> Any:
    """Smooth L1 loss, torch's ``F.smooth_l1_loss``.

    With ``x = input - target`` and ``z = |x|``, per element::

        smooth_l1(x; beta) = 0.5 z**2 / beta  if z < beta  else  z - 0.5 beta

    exact L1 (``z``) at ``beta = 0``; times ``weight``, then reduced.

    Parameters
    ----------
    {operands}
    beta : float, default 1.0
        Where the loss turns from quadratic to linear: >= 0, not NaN; 0 is exact L1.
    {reduction}
    {weight}
    out : numpy.ndarray, optional
        For 'none': receives the losses (the broadcast shape, the result dtype).
    {stream}
    {legacy}

    Returns
    -------
    numpy.floating or numpy.ndarray
        A NumPy scalar for 'mean' and 'sum', an array of the broadcast shape for 'none'
        (``out`` when given), in the result dtype. With CUDA arrays an array of the
        input's library (CuPy, torch or numba; 0-d for 'mean' and 'sum'); with Dask
        arrays a lazy Dask array.

    {raises}

    {rules}

    Examples
    --------
    >>> import numpy as np, nbloss
    >>> x, y = np.array([0.0, 0.5, 3.0]), np.zeros(3)
    >>> print(nbloss.smooth_l1_loss(x, y, beta=1.0, reduction="none"))
    [0.    0.125 2.5  ]
    >>> print(nbloss.smooth_l1_loss(x, y))  # 'mean': 2.625 / 3
    0.875
    >>> nbloss.smooth_l1_loss(np.float32([3.0]), 0.0, reduction="sum").dtype
    dtype('float32')
    """
    return new_call(input, target, "smooth_l1", beta, reduction, weight,
                    stream, True, size_average, reduce).loss(out)


@shared
def huber_loss(input: Operand, target: Operand, delta: Param = 1.0,
               reduction: Reduction = "mean", *, weight: Weight = None,
               out: Any = None, stream: Stream = None) -> Any:
    """Huber loss, torch's ``F.huber_loss``.

    With ``x = input - target`` and ``z = |x|``, per element::

        huber(x; delta) = 0.5 z**2  if z < delta  else  delta (z - 0.5 delta)

    that is ``delta * smooth_l1(x; beta=delta)``; times ``weight``, then reduced.

    Parameters
    ----------
    {operands}
    delta : float, default 1.0
        Where the loss turns from quadratic to linear: > 0, not NaN.
    {reduction}
    {weight}
    out : numpy.ndarray, optional
        For 'none': receives the losses (the broadcast shape, the result dtype).
    {stream}

    Returns
    -------
    numpy.floating or numpy.ndarray
        As :func:`smooth_l1_loss` returns it.

    {raises}

    {rules}

    Examples
    --------
    >>> import numpy as np, nbloss
    >>> x, y = np.array([0.0, 0.5, 3.0]), np.zeros(3)
    >>> print(nbloss.huber_loss(x, y, delta=2.0, reduction="none"))
    [0.    0.125 4.   ]
    >>> print(nbloss.huber_loss(x, y, 2.0, "sum", weight=[1.0, 1.0, 0.5]))
    2.125
    """
    return new_call(input, target, "huber", delta, reduction, weight, stream).loss(out)


@shared
def smooth_l1_loss_grad(input: Operand, target: Operand, beta: Param = 1.0,
                        reduction: Reduction = "mean", *, weight: Weight = None,
                        out: Any = None, stream: Stream = None, size_average: Legacy = None,
                        reduce: Legacy = None) -> Any:
    """d loss / d input of :func:`smooth_l1_loss`.

    Per element ``clip(x / beta, -1, 1)`` (``sign(x)``, 0 at x = 0, when beta = 0), times
    ``weight``, times 1/N for 'mean'.

    Parameters
    ----------
    {operands}
    beta : float, default 1.0
        >= 0, not NaN; 0 is exact L1.
    {reduction}
    {weight}
    out : numpy.ndarray, optional
        Receives the gradient (input's shape, the result dtype).
    {stream}
    {legacy}

    Returns
    -------
    numpy.ndarray
        The gradient in input's shape (summed over the axes input was broadcast along)
        and the result dtype; a CUDA or Dask array for CUDA or Dask operands.

    {raises}

    {rules}

    Examples
    --------
    >>> import numpy as np, nbloss
    >>> print(nbloss.smooth_l1_loss_grad(np.array([-2.0, 0.5, 3.0]), 0.0, reduction="sum"))
    [-1.   0.5  1. ]
    """
    return new_call(input, target, "smooth_l1", beta, reduction, weight,
                    stream, True, size_average, reduce).grad(out)


@shared
def huber_loss_grad(input: Operand, target: Operand, delta: Param = 1.0,
                    reduction: Reduction = "mean", *, weight: Weight = None,
                    out: Any = None, stream: Stream = None) -> Any:
    """d loss / d input of :func:`huber_loss`.

    Per element ``clip(x, -delta, delta)``, times ``weight``, times 1/N for 'mean'.

    Parameters
    ----------
    {operands}
    delta : float, default 1.0
        > 0, not NaN.
    {reduction}
    {weight}
    out : numpy.ndarray, optional
        Receives the gradient (input's shape, the result dtype).
    {stream}

    Returns
    -------
    numpy.ndarray
        As :func:`smooth_l1_loss_grad` returns it.

    {raises}

    {rules}

    Examples
    --------
    >>> import numpy as np, nbloss
    >>> print(nbloss.huber_loss_grad(np.array([-3.0, 0.5, 3.0]), 0.0, 2.0, "sum"))
    [-2.   0.5  2. ]
    """
    return new_call(input, target, "huber", delta, reduction, weight, stream).grad(out)


@shared
def smooth_l1_loss_value_and_grad(input: Operand, target: Operand, beta: Param = 1.0,
                                  reduction: Reduction = "mean", *,
                                  weight: Weight = None, out: Any = None,
                                  stream: Stream = None, size_average: Legacy = None,
                                  reduce: Legacy = None) -> tuple[Any, Any]:
    """``(smooth_l1_loss(...), smooth_l1_loss_grad(...))`` from one pass over memory.

    The value is :func:`smooth_l1_loss`'s to the bit, the gradient
    :func:`smooth_l1_loss_grad`'s. Shaped for ``scipy.optimize.minimize(fun, x0,
    jac=True)``.

    Parameters
    ----------
    {operands}
    beta : float, default 1.0
        >= 0, not NaN; 0 is exact L1.
    {reduction}
    {weight}
    out : numpy.ndarray, optional
        Receives the gradient (input's shape, the result dtype).
    {stream}
    {legacy}

    Returns
    -------
    value : numpy.floating or numpy.ndarray
        The loss, as :func:`smooth_l1_loss` returns it.
    grad : numpy.ndarray
        The gradient, as :func:`smooth_l1_loss_grad` returns it.

    {raises}

    {rules}

    Examples
    --------
    >>> import numpy as np, nbloss
    >>> value, grad = nbloss.smooth_l1_loss_value_and_grad(np.array([0.5, 3.0]), 0.0)
    >>> print(value, grad)
    1.3125 [0.25 0.5 ]
    """
    return new_call(input, target, "smooth_l1", beta, reduction, weight,
                    stream, True, size_average, reduce).value_and_grad(out)


@shared
def huber_loss_value_and_grad(input: Operand, target: Operand, delta: Param = 1.0,
                              reduction: Reduction = "mean", *, weight: Weight = None,
                              out: Any = None, stream: Stream = None) -> tuple[Any, Any]:
    """``(huber_loss(...), huber_loss_grad(...))`` from one pass over memory.

    Parameters
    ----------
    {operands}
    delta : float, default 1.0
        > 0, not NaN.
    {reduction}
    {weight}
    out : numpy.ndarray, optional
        Receives the gradient (input's shape, the result dtype).
    {stream}

    Returns
    -------
    value : numpy.floating or numpy.ndarray
        The loss, as :func:`huber_loss` returns it.
    grad : numpy.ndarray
        The gradient, as :func:`huber_loss_grad` returns it.

    {raises}

    {rules}

    Examples
    --------
    >>> import numpy as np, nbloss
    >>> value, grad = nbloss.huber_loss_value_and_grad(np.array([0.5, 3.0]), 0.0, 2.0, "sum")
    >>> print(value, grad)
    4.125 [0.5 2. ]
    """
    return new_call(input, target, "huber", delta, reduction, weight,
                    stream).value_and_grad(out)
