"""The public array functions inside a user's @njit function (serial and parallel=True):
the same names, arguments and keywords as from Python and the Python call's bits, the
same exception classes for bad arguments, and a user's cache=True function that reloads
in a new process with the same bits."""

import json
import pathlib

import numpy as np
import pytest
from numba import njit, prange
from numba.core.errors import TypingError

import nbloss
from conftest import LARGE, SMALL, adversarial, random_pair, run_python


@njit
def all_results(x, y, param, w):
    """Every function and reduction, positional and keyword arguments mixed."""
    return (nbloss.smooth_l1_loss(x, y, param, "none"),
            nbloss.smooth_l1_loss(x, y, param, "mean", weight=w),
            nbloss.smooth_l1_loss(x, y, beta=param, reduction="sum"),
            nbloss.smooth_l1_loss_grad(x, y, param, "mean", weight=w),
            nbloss.smooth_l1_loss_value_and_grad(x, y, param, "sum", weight=w),
            nbloss.smooth_l1_loss_value_and_grad(x, y, param, "none"),
            nbloss.smooth_l1_loss_hess_diag(x, y, param, "mean", weight=w),
            nbloss.huber_loss(x, y, param + 0.5, "none", weight=w),
            nbloss.huber_loss(x, y, delta=param + 0.5),
            nbloss.huber_loss_grad(x, y, param + 0.5, "sum"),
            nbloss.huber_loss_value_and_grad(x, y, param + 0.5, "mean", weight=w),
            nbloss.huber_loss_value_and_grad(x, y, param + 0.5, reduction="none", weight=w),
            nbloss.huber_loss_hess_diag(x, y, param + 0.5, "sum"))


def python_results(x, y, param, w):
    """The same calls from Python."""
    h = param + 0.5
    return (nbloss.smooth_l1_loss(x, y, param, "none"),
            nbloss.smooth_l1_loss(x, y, param, "mean", weight=w),
            nbloss.smooth_l1_loss(x, y, param, "sum"),
            nbloss.smooth_l1_loss_grad(x, y, param, "mean", weight=w),
            nbloss.smooth_l1_loss_value_and_grad(x, y, param, "sum", weight=w),
            nbloss.smooth_l1_loss_value_and_grad(x, y, param, "none"),
            nbloss.smooth_l1_loss_hess_diag(x, y, param, "mean", weight=w),
            nbloss.huber_loss(x, y, h, "none", weight=w),
            nbloss.huber_loss(x, y, h),
            nbloss.huber_loss_grad(x, y, h, "sum"),
            nbloss.huber_loss_value_and_grad(x, y, h, "mean", weight=w),
            nbloss.huber_loss_value_and_grad(x, y, h, "none", weight=w),
            nbloss.huber_loss_hess_diag(x, y, h, "sum"))


def flatten(results):
    for r in results:
        yield from (flatten(r) if isinstance(r, tuple) else [r])


def assert_same(got, want):
    """Arrays: same dtype, shape and bits. Scalars: numba hands a float32 back to Python
    as a Python float, exactly; the bits are compared in the Python call's dtype."""
    got, want = list(flatten(got)), list(flatten(want))
    assert len(got) == len(want)
    for k, (g, v) in enumerate(zip(got, want)):
        if isinstance(v, np.ndarray):
            assert isinstance(g, np.ndarray) and g.dtype == v.dtype and g.shape == v.shape, k
            assert g.tobytes() == v.tobytes(), k
        else:
            assert isinstance(v, np.floating) and np.asarray(g, v.dtype).tobytes() == np.asarray(v).tobytes(), (k, g, v)
            assert np.asarray(g, v.dtype) == g or (g != g and v != v), k  # nothing rounded away


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [SMALL, LARGE])  # serial and threaded kernels
def test_every_function_gives_the_python_calls_bits(n, dtype):
    x, y = random_pair(n, dtype, seed=n)
    w = np.random.default_rng(1).random(n).astype(dtype)
    for param in (0.0, 1e-40, 0.5, 1.0, 2.0):
        assert_same(all_results(x, y, param, w), python_results(x, y, param, w))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_inf_edges_and_empty(dtype):
    x, y = adversarial(dtype)
    w = np.ones_like(x)
    with np.errstate(all="ignore"):
        assert_same(all_results(x, y, 1.0, w), python_results(x, y, 1.0, w))
    e = np.empty(0, dtype)
    assert_same(all_results(e, e, 1.0, e), python_results(e, e, 1.0, e))


@njit
def shaped(x, y, t):
    """Any dimension and layout, a scalar target, out= for the gradient."""
    g = np.empty(x.shape, x.dtype)
    v, g2 = nbloss.huber_loss_value_and_grad(x, y, 0.75, "mean", out=g)
    return (nbloss.smooth_l1_loss(x, t, 0.5, "sum"), nbloss.smooth_l1_loss_grad(x, t, 0.5, "none"),
            v, g, g2 is g)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_any_dimension_and_layout_a_scalar_target_and_out(dtype):
    rng = np.random.default_rng(2)
    base = rng.standard_normal((40, 30, 3)).astype(dtype)
    for x in (base, base[:, ::2, 1], base.T, base[5]):
        y = rng.standard_normal(x.shape).astype(dtype)
        s, g, v, out, same = shaped(x, y, 0.3)
        assert same
        assert_same((s, g, v, out), (nbloss.smooth_l1_loss(x, 0.3, 0.5, "sum"),
                                     nbloss.smooth_l1_loss_grad(x, 0.3, 0.5, "none"),
                                     *nbloss.huber_loss_value_and_grad(x, y, 0.75, "mean")))


@njit(parallel=True)
def per_row_losses(x, y, beta):
    """A parallel user function calling nbloss in each iteration of its own prange."""
    out = np.empty(x.shape[0])
    for i in prange(x.shape[0]):
        out[i] = nbloss.smooth_l1_loss(x[i], y[i], beta, "sum")
    return out, nbloss.huber_loss(x, y, 1.0, "mean")


def test_parallel_user_function():
    x, y = random_pair(64 * 2000, np.float64, seed=4)
    x, y = x.reshape(64, 2000), y.reshape(64, 2000)
    rows, mean = per_row_losses(x, y, 0.5)
    assert_same((rows, mean), (np.array([nbloss.smooth_l1_loss(a, b, 0.5, "sum") for a, b in zip(x, y)]),
                               nbloss.huber_loss(x, y, 1.0, "mean")))


@njit
def call(which, x, y, param, reduction, out):
    if which == 0:
        return nbloss.smooth_l1_loss_grad(x, y, param, reduction, out=out)
    return nbloss.huber_loss_hess_diag(x, y, delta=param, reduction=reduction, out=out)


@njit
def reduced_with_out(x, out):
    return nbloss.huber_loss(x, x, 1.0, "sum", out=out)


def test_bad_arguments_raise_the_python_calls_exception_classes():
    x, y = np.ones(5), np.zeros(5)
    cases = [(0, x, y, -1.0, "mean", None, "negative values for beta"),
             (0, x, y, np.nan, "mean", None, "beta must not be NaN"),
             (1, x, y, 0.0, "mean", None, "non-positive values for delta"),
             (1, x, y, np.nan, "mean", None, "delta must not be NaN"),
             (0, x, y, 1.0, "avg", None, "reduction"),
             (1, x, np.zeros(4), 1.0, "sum", None, "input's shape"),
             (0, x, y, 1.0, "sum", np.empty(4), "out must have input's shape"),
             (0, x, y, 1.0, "sum", x, "shares memory")]
    for which, a, b, param, reduction, out, match in cases:
        fn = nbloss.smooth_l1_loss_grad if which == 0 else nbloss.huber_loss_hess_diag
        with pytest.raises(ValueError):  # the Python call's class...
            fn(a, b, param, reduction, out=out)
        with pytest.raises(ValueError, match=match):  # ...from compiled code
            call(which, a, b, param, reduction, out)
    with pytest.raises(ValueError, match="only for reduction='none'"):
        reduced_with_out(x, np.empty(5))


def test_wrong_types_fail_to_compile_with_a_clear_message():
    @njit
    def runtime_reduction(x, r):
        return nbloss.huber_loss(x, x, 1.0, r)

    @njit
    def integer_input(x):
        return nbloss.huber_loss_grad(x, x, 1.0, "sum")

    @njit
    def wrong_out(x, out):
        return nbloss.huber_loss_grad(x, x, 1.0, "sum", out=out)

    with pytest.raises(TypingError, match="constant string"):
        runtime_reduction(np.ones(3), "sum")
    with pytest.raises(TypingError, match="float32 or float64 array"):
        integer_input(np.ones(3, np.int64))
    with pytest.raises(TypingError, match="out must be None or a C-contiguous float64"):
        wrong_out(np.ones(3), np.ones(3, np.float32))


USER_MODULE = """
import numba, numpy as np
import nbloss

@numba.njit(cache=True)
def fit_step(x, y, beta):
    value, grad = nbloss.smooth_l1_loss_value_and_grad(x, y, beta, "mean")
    return value, grad, nbloss.huber_loss(x, y, 2.0, "sum"), nbloss.huber_loss_hess_diag(x, y, 0.5, "none")
"""

RUN = """
import hashlib, json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import user_module
rng = np.random.default_rng(0)
out = {}
for dtype in (np.float32, np.float64):
    for n in (1000, 200_003):
        x = rng.standard_normal(n).astype(dtype); y = rng.standard_normal(n).astype(dtype)
        r = user_module.fit_step(x, y, 0.5)
        out[f"{dtype.__name__}-{n}"] = hashlib.sha256(b"".join(np.asarray(v, dtype).tobytes() for v in r)).hexdigest()
import nbloss
x = rng.standard_normal(5000); y = rng.standard_normal(5000)
v, g = nbloss.smooth_l1_loss_value_and_grad(x, y, 0.5, "mean")
r = user_module.fit_step(x, y, 0.5)
out["python"] = bool(np.float64(r[0]) == v and r[1].tobytes() == g.tobytes())
f = user_module.fit_step
out["hits"], out["misses"] = sum(f.stats.cache_hits.values()), sum(f.stats.cache_misses.values())
print(json.dumps(out))
"""


@pytest.mark.parametrize("first", ["numba", "nbloss"])
def test_user_cache_true_function_reloads_with_the_same_bits(tmp_path, first):
    src = tmp_path / "src"
    src.mkdir()
    (src / "user_module.py").write_text(USER_MODULE)
    code = f"import {first}\n" + RUN
    cache = tmp_path / "cache"
    one = json.loads(run_python(code, str(src), NUMBA_CACHE_DIR=cache))
    two = json.loads(run_python(code, str(src), NUMBA_CACHE_DIR=cache))
    assert one["misses"] == 2 and one["hits"] == 0  # compiled: float32 and float64
    assert two["hits"] == 2 and two["misses"] == 0  # loaded from the cache
    assert one.pop("hits") + one.pop("misses") == two.pop("hits") + two.pop("misses")
    assert one == two and one["python"] is True
    assert any(p.suffix == ".nbc" and "user_module" in p.name for p in pathlib.Path(cache).rglob("*"))
