"""nbloss: Smooth L1 and Huber losses, their gradients and reductions as fused Numba
kernels, with torch's (and, in ``nbloss.fvcore``, fvcore's) exact semantics.

``import nbloss`` imports NumPy only; numba and the kernels load on the first call and
compile lazily (cached on disk). ``nbloss.elementwise``: the per-element functions for
your own loops and kernels (``@njit``, ``@vectorize``, ``@cuda.jit``), loaded on first
use; inside ``@njit`` code the array functions below work too.
"""

from ._autograd import (
    huber_loss_backward,
    huber_loss_hess_diag,
    smooth_l1_loss_backward,
    smooth_l1_loss_hess_diag,
)
from ._criteria import HuberLoss, SmoothL1Loss
from ._losses import (
    huber_loss,
    huber_loss_grad,
    huber_loss_value_and_grad,
    smooth_l1_loss,
    smooth_l1_loss_grad,
    smooth_l1_loss_value_and_grad,
)
from ._validate import CacheWarning

__version__ = "0.1.0"




def __getattr__(name):
    if name == "elementwise":  # on first use: ``import nbloss`` stays NumPy only
        import importlib

        return importlib.import_module("nbloss.elementwise")
    raise AttributeError(f"module 'nbloss' has no attribute {name!r}")


__all__ = [
    "CacheWarning",
    "HuberLoss",
    "SmoothL1Loss",
    "huber_loss",
    "huber_loss_backward",
    "huber_loss_grad",
    "huber_loss_hess_diag",
    "huber_loss_value_and_grad",
    "smooth_l1_loss",
    "smooth_l1_loss_backward",
    "smooth_l1_loss_grad",
    "smooth_l1_loss_hess_diag",
    "smooth_l1_loss_value_and_grad",
]
