"""The criteria, torch's ``nn.SmoothL1Loss`` and ``nn.HuberLoss``: ``loss = crit(input,
target)`` runs the fused kernel and saves the gradient, ``crit.backward()`` returns it
times the upstream gradient."""

from __future__ import annotations  # the reference shows the aliases' names

from typing import Any

import numpy as np

from . import _validate as v
from ._losses import new_call
from ._typing import Legacy, Operand, Param, Reduction, Stream


class _Criterion:
    """``loss = crit(input, target)``, then ``crit.backward(grad_output=1.0)``.

    The forward runs the fused kernel, so the gradient is ready when ``backward`` is
    called: a training step reads input and target once. A large gradient is written
    into the previous forward's buffer, which ``backward`` never hands out.
    """

    _name = ""
    # a saved gradient of at least this many bytes is the next forward's buffer: a fresh
    # one that large costs a page fault per 4 KB written, a smaller one less than out='s
    # checks (README, "Fresh results cost page faults")
    REUSE_MIN_BYTES = 1 << 20

    def __init__(self, reduction: Reduction, param: float) -> None:
        self.reduction: Reduction = v.check_reduction(reduction)
        self._param = param
        self._saved: Any = None

    def _new_call(self, input: Operand, target: Operand,
                  stream: Stream) -> Any:  # pragma: no cover - overridden
        raise NotImplementedError

    def __call__(self, input: Operand, target: Operand, *, stream: Stream = None) -> Any:
        """The loss of ``input`` against ``target``, as the function of the same name
        gives it for this criterion's reduction and parameter; saves the gradient for
        :meth:`backward`. ``stream``: as in the functions (CUDA device arrays only)."""
        call = self._new_call(input, target, stream)
        out = None
        if self._saved is not None and call.takes_ndarray_out:
            # the last gradient, which backward() never hands out (it returns copies)
            last = self._saved[1]
            if (type(last) is np.ndarray and last.nbytes >= self.REUSE_MIN_BYTES
                    and last.shape == call.input_shape and last.dtype == call.dtype):
                out = last
                self._saved = None  # overwritten from here on
        value, full_grad = call.value_and_grad_full(out)
        self._saved = (call, full_grad)
        return value

    forward = __call__

    def backward(self, grad_output: Operand = 1.0) -> tuple[Any, Any]:
        """``(grad_input, grad_target)`` of the last forward call, times ``grad_output``.

        Parameters
        ----------
        grad_output : array_like, default 1.0
            The upstream gradient: a scalar for 'mean' and 'sum', an array broadcastable
            to the loss for 'none'; cast to the computation dtype.

        Returns
        -------
        grad_input, grad_target : numpy.ndarray
            Each in its operand's shape (summed over broadcast axes) and the result
            dtype; new arrays on every call, the caller's to change. CUDA or Dask arrays
            for CUDA or Dask operands.

        Raises
        ------
        RuntimeError
            No forward call yet.
        ValueError
            ``grad_output`` not a scalar for 'mean'/'sum', or not broadcastable to the
            loss for 'none'.
        """
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward() called before a forward call")
        call, full = self._saved
        return call.backward_from(full, grad_output)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reduction={self.reduction!r}, {self._name}={self._param!r})"


class SmoothL1Loss(_Criterion):
    """torch's ``nn.SmoothL1Loss``: ``loss = crit(input, target)``; ``crit.backward()``.

    The loss is :func:`nbloss.smooth_l1_loss`'s (formula, dtypes, broadcasting); the
    forward computes the gradient too, in the same pass, so ``backward()`` costs no second
    pass: it returns the saved gradient times ``grad_output``, as torch's autograd does
    (changing input in place after the forward does not change it).

    Parameters
    ----------
    size_average, reduce : bool or None, optional
        torch's deprecated flags, first in torch's order: when either is a bool they
        replace ``reduction`` (as in :func:`nbloss.smooth_l1_loss`), with torch's warning.
        Anything else raises TypeError: ``SmoothL1Loss(0.5)`` means ``size_average=0.5``
        in torch, not ``beta=0.5``.
    reduction : {'none', 'mean', 'sum'}, default 'mean'
        As in :func:`nbloss.smooth_l1_loss`; 'elementwise_mean' warns once, here, and is
        held as 'mean'.
    beta : float, default 1.0
        >= 0, not NaN; 0 is exact L1.

    Raises
    ------
    TypeError
        A non-bool ``size_average`` or ``reduce``; a beta that is not a real number.
    ValueError
        A negative or NaN beta, an unknown reduction.

    Examples
    --------
    >>> import numpy as np, nbloss
    >>> crit = nbloss.SmoothL1Loss(reduction="sum", beta=1.0)
    >>> print(crit(np.array([0.0, 0.5, 3.0]), np.zeros(3)))
    2.625
    >>> grad_input, grad_target = crit.backward(2.0)
    >>> print(grad_input, grad_target)
    [0. 1. 2.] [-0. -1. -2.]
    >>> nbloss.SmoothL1Loss(0.5)
    Traceback (most recent call last):
    ...
    TypeError: SmoothL1Loss: size_average must be a bool or None, got 0.5 (torch's deprecated flag, the first positional argument); for a beta of 0.5 pass beta=0.5, for a reduction pass reduction='none', 'mean' or 'sum'
    """

    _name = "beta"

    def __init__(self, size_average: Legacy = None, reduce: Legacy = None,
                 reduction: Reduction = "mean", beta: Param = 1.0) -> None:
        reduction = v.legacy_reduction(size_average, reduce, reduction, fn="SmoothL1Loss")
        super().__init__(reduction, v.check_beta(beta))

    @property
    def beta(self) -> float:
        """beta, as a Python float."""
        return self._param

    def _new_call(self, input: Operand, target: Operand, stream: Stream) -> Any:
        return new_call(input, target, "smooth_l1", self._param, self.reduction, stream=stream)


class HuberLoss(_Criterion):
    """torch's ``nn.HuberLoss``: ``loss = crit(input, target)``; ``crit.backward()``.

    The loss is :func:`nbloss.huber_loss`'s; forward and backward as in
    :class:`SmoothL1Loss`.

    Parameters
    ----------
    reduction : {'none', 'mean', 'sum'}, default 'mean'
        As in :func:`nbloss.huber_loss`.
    delta : float, default 1.0
        > 0, not NaN.

    Raises
    ------
    TypeError
        A number as the reduction (``HuberLoss(0.5)``: pass ``delta=0.5``); a delta that
        is not a real number.
    ValueError
        A delta <= 0 or NaN, an unknown reduction string.

    Examples
    --------
    >>> import numpy as np, nbloss
    >>> crit = nbloss.HuberLoss(reduction="none", delta=2.0)
    >>> print(crit(np.array([0.0, 0.5, 3.0]), np.zeros(3)))
    [0.    0.125 4.   ]
    >>> print(crit.backward(np.ones(3))[0])
    [0.  0.5 2. ]
    """

    _name = "delta"

    def __init__(self, reduction: Reduction = "mean", delta: Param = 1.0) -> None:
        reduction = v.check_criterion_reduction(reduction, "delta")
        super().__init__(reduction, v.check_delta(delta))

    @property
    def delta(self) -> float:
        """delta, as a Python float."""
        return self._param

    def _new_call(self, input: Operand, target: Operand, stream: Stream) -> Any:
        return new_call(input, target, "huber", self._param, self.reduction, stream=stream)
