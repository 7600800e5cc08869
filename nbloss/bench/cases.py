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
- ``torch-compile`` (on request): ``torch.compile`` (inductor, ``dynamic=False``) of what a
  torch user writes: ``F.*_loss`` for the forwards, ``torch.func.grad`` of the 'mean' loss
  for the gradient, ``torch.func.grad_and_value`` for the fused operation.
- ``jax`` (on request): ``jax.jit`` of the ``jnp.where`` loss, of its ``jax.grad`` and of
  its ``jax.value_and_grad``, on the CPU with float64 enabled; every call waits for its
  result (``jax.block_until_ready``).

The builders of the two compiled contenders call the case once before they return: that
first call traces and compiles, and the worker reports its time apart (``compile_s``),
never among the timed calls. The compiled functions are kept per (loss, operation) for the
worker's life, so that a later round reuses what the first one compiled for that shape.

Operations: ``mean`` (forward, 'mean'), ``none`` (forward, 'none'), ``grad`` (gradient of
the 'mean' loss) and ``fused`` (loss and gradient of the 'mean' loss together).
"""

import importlib.util
import time

import numpy as np

from . import bounds

CONTENDERS = ("nbloss", "torch", "numpy", "floor")
# on request only (--contenders): the bound that the loss's arithmetic sets (compute_case),
# and the compiled peers, whose first call per case compiles (its time reported apart)
EXTRA_CONTENDERS = ("compute", "torch-compile", "jax")
COMPILED = ("torch-compile", "jax")
# the package each contender needs beyond nbloss's own: without it, skipped with a note
NEEDS = {"torch": "torch", "torch-compile": "torch", "jax": "jax"}
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


# compiled functions, per (contender, loss, op, PARAM), for the worker's life: each
# compiles again for every new shape and dtype (dynamic=False, as jax.jit does) and keeps
# them all
_compiled = {}


def _compiled_fn(contender, loss, op, make):
    key = (contender, loss, op, PARAM)
    if key not in _compiled:
        _compiled[key] = make()
    return _compiled[key]


def _first_call_timed(fn):
    """``fn``, called once: for a compiled contender, the call that traces and compiles
    for this shape and dtype (or finds what an earlier round compiled); its seconds are
    ``fn.first_call_s``."""
    t0 = time.perf_counter()
    fn()
    fn.first_call_s = time.perf_counter() - t0
    return fn


def torch_compile_case(loss, op, a, b):
    import torch
    import torch._dynamo
    import torch.nn.functional as F

    # one compiled graph per shape and dtype: 10 in a full sweep, above dynamo's default
    # of 8, after which it would run the function eagerly; an error instead of that
    torch._dynamo.config.recompile_limit = 64
    torch._dynamo.config.fail_on_recompile_limit_hit = True
    f = {"smooth_l1": F.smooth_l1_loss, "huber": F.huber_loss}[loss]
    param = {_param_name(loss): PARAM}

    def mean_loss(x, t):
        return f(x, t, reduction="mean", **param)

    def fused(x, t):
        grad, value = torch.func.grad_and_value(mean_loss)(x, t)
        return value, grad

    def make():
        fn = {"mean": mean_loss,
              "none": lambda x, t: f(x, t, reduction="none", **param),
              "grad": torch.func.grad(mean_loss),
              "fused": fused}[op]
        return torch.compile(fn, backend="inductor", dynamic=False)

    compiled = _compiled_fn("torch-compile", loss, op, make)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    return _first_call_timed(lambda: compiled(ta, tb))


def jax_case(loss, op, a, b):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)  # float64 stays float64
    p = PARAM

    def elementwise(x, t):
        z = jnp.abs(x - t)
        if loss == "smooth_l1":
            return jnp.where(z < p, 0.5 * z * z / p, z - 0.5 * p)
        return jnp.where(z < p, 0.5 * z * z, p * (z - 0.5 * p))

    def mean_loss(x, t):
        return jnp.mean(elementwise(x, t))

    def make():
        return jax.jit({"mean": mean_loss, "none": elementwise, "grad": jax.grad(mean_loss),
                        "fused": jax.value_and_grad(mean_loss)}[op])

    compiled = _compiled_fn("jax", loss, op, make)
    # on the CPU (where jax has accelerators too), once, not per call
    cpu = jax.devices("cpu")[0]
    xa, xb = jax.device_put(a, cpu), jax.device_put(b, cpu)
    return _first_call_timed(lambda: jax.block_until_ready(compiled(xa, xb)))


CASE_BUILDERS = {"nbloss": nbloss_case, "torch": torch_case, "numpy": numpy_case,
                 "floor": floor_case, "compute": compute_case,
                 "torch-compile": torch_compile_case, "jax": jax_case}


def available_contenders(requested):
    """The requested contenders that can run here, and a note for each that cannot."""
    chosen, notes = [], []
    for c in requested:
        package = NEEDS.get(c)
        if package and importlib.util.find_spec(package) is None:
            notes.append(f"{package} is not installed: {c} skipped (pip install {package} to compare)")
            continue
        chosen.append(c)
    return chosen, notes
