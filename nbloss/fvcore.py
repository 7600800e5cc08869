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

from . import _validate as v
from ._losses import new_call

_L1_BELOW = 1e-5


def smooth_l1_loss(input, target, beta, reduction="none"):
    """fvcore's ``smooth_l1_loss(input, target, beta, reduction="none")``.

    ``0.5 x^2 / beta if |x| < beta else |x| - 0.5 beta`` with ``x = input - target``,
    exact L1 for ``beta < 1e-5``; reduction 'none' | 'mean' | 'sum'.
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
