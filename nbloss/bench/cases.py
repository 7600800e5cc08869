"""The cases the benchmark times and the contenders that run them.

A case is (loss, operation, dtype, N); a contender's builder takes the loss, the
operation and the case's input and target, and returns a zero-argument callable that runs
the case once. What each contender times:

- ``nbloss``: the public functions, as a user calls them (arguments checked, results
  allocated).
- ``torch``: ``torch.nn.functional`` on ``torch.from_numpy`` tensors; the gradient alone is
  ``aten.*_loss_backward``, the fused operation is forward + ``backward()``.
- ``numpy``: the ``np.where`` expression a user writes without nbloss.
- ``floor`` and ``compute``: the two bounds of :mod:`.bounds`.

Operations: ``mean`` (forward, 'mean'), ``none`` (forward, 'none'), ``grad`` (gradient of
the 'mean' loss) and ``fused`` (loss and gradient of the 'mean' loss together).
"""

import importlib.util

import numpy as np

from . import bounds

CONTENDERS = ("nbloss", "torch", "numpy", "floor")
# on request only (--contenders): the bound that the loss's arithmetic sets (compute_case)
EXTRA_CONTENDERS = ("compute",)
OPS = ("mean", "none", "grad", "fused")
LOSSES = ("smooth_l1", "huber")
DTYPES = ("float32", "float64")
SIZES = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)

# the loss parameter of every case (beta or delta): the default of both libraries
PARAM = 1.0


def case_data(dtype, n, seed=0):
    """Input and target of a case: differences spread over both branches of the loss."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    return a, b


def nbloss_case(loss, op, a, b):
    import nbloss

    f = {"smooth_l1": nbloss.smooth_l1_loss, "huber": nbloss.huber_loss}[loss]
    g = {"smooth_l1": nbloss.smooth_l1_loss_grad, "huber": nbloss.huber_loss_grad}[loss]
    vg = {"smooth_l1": nbloss.smooth_l1_loss_value_and_grad,
          "huber": nbloss.huber_loss_value_and_grad}[loss]
    return {"mean": lambda: f(a, b, PARAM),
            "none": lambda: f(a, b, PARAM, "none"),
            "grad": lambda: g(a, b, PARAM),
            "fused": lambda: vg(a, b, PARAM)}[op]


def torch_case(loss, op, a, b):
    import torch
    import torch.nn.functional as F

    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    f = {"smooth_l1": F.smooth_l1_loss, "huber": F.huber_loss}[loss]
    backward = {"smooth_l1": torch.ops.aten.smooth_l1_loss_backward,
                "huber": torch.ops.aten.huber_loss_backward}[loss]
    one = torch.ones((), dtype=ta.dtype)
    mean = 1  # at::Reduction::Mean

    def fused():
        x = ta.detach().requires_grad_()
        value = f(x, tb, reduction="mean", **{_param_name(loss): PARAM})
        value.backward()
        return value, x.grad

    return {"mean": lambda: f(ta, tb, reduction="mean", **{_param_name(loss): PARAM}),
            "none": lambda: f(ta, tb, reduction="none", **{_param_name(loss): PARAM}),
            "grad": lambda: backward(one, ta, tb, mean, PARAM),
            "fused": fused}[op]


def _param_name(loss):
    return "beta" if loss == "smooth_l1" else "delta"


def numpy_case(loss, op, a, b):
    p = a.dtype.type(PARAM)
    half = a.dtype.type(0.5)
    n = a.size

    def elementwise(x):
        z = np.abs(x)
        if loss == "smooth_l1":
            return np.where(z < p, half * z * z / p, z - half * p)
        return np.where(z < p, half * z * z, p * (z - half * p))

    def gradient(x):
        g = np.clip(x / p, -1, 1) if loss == "smooth_l1" else np.clip(x, -p, p)
        return g / a.dtype.type(n)

    def fused():
        x = a - b
        return elementwise(x).mean(), gradient(x)

    return {"mean": lambda: elementwise(a - b).mean(),
            "none": lambda: elementwise(a - b),
            "grad": lambda: gradient(a - b),
            "fused": fused}[op]


def floor_case(loss, op, a, b):
    return bounds.floor(op, a, b)


def compute_case(loss, op, a, b):
    return bounds.compute(loss, op, a, b, PARAM)


CASE_BUILDERS = {"nbloss": nbloss_case, "torch": torch_case, "numpy": numpy_case,
                 "floor": floor_case, "compute": compute_case}


def available_contenders(requested):
    """The requested contenders that can run here, and a note for each that cannot."""
    chosen, notes = [], []
    for c in requested:
        if c == "torch" and importlib.util.find_spec("torch") is None:
            notes.append("torch is not installed: skipped (pip install torch to compare)")
            continue
        chosen.append(c)
    return chosen, notes
