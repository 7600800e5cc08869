"""Drop-in for ``fvcore.nn.smooth_l1_loss``: the same signature and results.

fvcore's semantics, which differ from torch's:

- ``beta`` is required and the default reduction is 'none';
- ``beta < 1e-5`` is exact L1 loss (``|input - target|``);
- 'mean' of an empty input is 0.0 (torch gives NaN);
- shapes broadcast without a warning.

Where fvcore silently does the wrong thing, this raises instead (documented in the
README): an unknown reduction string (fvcore returns the unreduced loss), torch's
deprecated 'elementwise_mean' included, and a negative or NaN beta (fvcore computes L1
for a negative beta and NaN for a NaN one).
"""

from __future__ import annotations  # the reference shows the aliases' names

from typing import Any

from . import _validate as v
from ._losses import new_call
from ._typing import Operand, Param, Reduction

_L1_BELOW = 1e-5


def smooth_l1_loss(input: Operand, target: Operand, beta: Param,
                   reduction: Reduction = "none") -> Any:
    """fvcore's ``smooth_l1_loss(input, target, beta, reduction="none")``.

    With ``x = input - target`` and ``z = |x|``, per element::

        smooth_l1(x; beta) = 0.5 z**2 / beta  if z < beta  else  z - 0.5 beta

    and exact L1 (``z``) for ``beta < 1e-5``.

    Parameters
    ----------
    input, target : array_like, CUDA array or Dask array
        As in :func:`nbloss.smooth_l1_loss`; shapes broadcast without a warning.
    beta : float
        Required, as in fvcore: >= 0, not NaN.
    reduction : {'none', 'mean', 'sum'}, default 'none'
        'mean' of an empty input is 0.0, as in fvcore (torch gives NaN).

    Returns
    -------
    numpy.floating or numpy.ndarray
        A NumPy scalar for 'mean' and 'sum', an array of the broadcast shape for 'none',
        in the result dtype (the dtype rules of :func:`nbloss.smooth_l1_loss`).

    Raises
    ------
    ValueError
        An unknown reduction, 'elementwise_mean' included (fvcore silently returns the
        unreduced loss), a negative or NaN beta (fvcore computes L1 or NaN silently), and
        the operand errors of :func:`nbloss.smooth_l1_loss`.
    TypeError
        A beta that is not a real number; the operand errors of
        :func:`nbloss.smooth_l1_loss`.

    Examples
    --------
    >>> import numpy as np
    >>> from nbloss.fvcore import smooth_l1_loss
    >>> print(smooth_l1_loss(np.array([0.0, 0.5, 3.0]), np.zeros(1), beta=1.0))
    [0.    0.125 2.5  ]
    >>> print(smooth_l1_loss(np.zeros(0), np.zeros(0), 1.0, "mean"))
    0.0
    """
    beta = v.check_beta(beta, fn="fvcore smooth_l1_loss")
    if isinstance(reduction, str) and reduction == "elementwise_mean":
        raise ValueError("elementwise_mean is not a valid value for reduction in fvcore's "
                         "smooth_l1_loss (fvcore returns the unreduced loss for it): pass 'mean'")
    loss = "l1" if beta < _L1_BELOW else "smooth_l1"
    call = new_call(input, target, loss, beta, reduction, warn_shapes=False)
    if call.reduction == "mean" and call.n == 0:  # fvcore's 0.0, where torch's is NaN
        call = new_call(input, target, loss, beta, "sum", warn_shapes=False)
    return call.loss()
