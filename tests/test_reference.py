"""Every public function against the plain float64 formulas of tests/reference.py, for
each dtype, reduction, weight and size, on random and adversarial inputs."""

import math
import warnings

import numpy as np
import pytest

import nbloss
from conftest import LARGE, MIDDLE, SMALL, adversarial, random_pair
import reference as ref

FUNCS = {
    "smooth_l1": (nbloss.smooth_l1_loss, nbloss.smooth_l1_loss_grad,
                  nbloss.smooth_l1_loss_value_and_grad, nbloss.smooth_l1_loss_backward,
                  nbloss.smooth_l1_loss_hess_diag),
    "huber": (nbloss.huber_loss, nbloss.huber_loss_grad, nbloss.huber_loss_value_and_grad,
              nbloss.huber_loss_backward, nbloss.huber_loss_hess_diag),
}
PARAMS = {"smooth_l1": [1.0, 0.5, 0.0, 3.0], "huber": [1.0, 0.5, 3.0]}


def tolerances(dtype):
    eps = np.finfo(dtype).eps
    return dict(rtol=8 * eps, atol=np.finfo(dtype).tiny)


def summed_close(actual, desired, dtype, terms):
    """Equal up to the rounding of a sum of `terms` values of the dtype (the gradient of
    a broadcast operand sums over the broadcast axes, and may cancel)."""
    tol = tolerances(dtype)
    finite = np.abs(desired[np.isfinite(desired)])
    scale = finite.max() if finite.size else 0.0
    np.testing.assert_allclose(actual, desired, rtol=tol["rtol"],
                               atol=tol["atol"] + tol["rtol"] * terms * scale)


def check_all(name, a, b, param, reduction, weight=None, result_dtype=None, funcs=FUNCS):
    """Every function of loss ``name`` (from ``funcs``: nbloss's, or wrapped to run on
    device arrays) against the reference formulas."""
    loss_fn, grad_fn, vg_fn, bw_fn, hess_fn = funcs[name]
    result_dtype = np.dtype(result_dtype or np.result_type(a, b))
    tol = tolerances(result_dtype)
    n_full = int(np.prod(np.broadcast_shapes(np.shape(a), np.shape(b))))
    terms_a = n_full // max(1, np.size(a))
    terms_b = n_full // max(1, np.size(b))
    want_loss, want_gi, want_gt = ref.loss_and_grads(name, a, b, param, reduction, weight)

    loss = loss_fn(a, b, param, reduction, weight=weight)
    assert np.asarray(loss).dtype == result_dtype
    # a reduction sums many terms: the float64 accumulation leaves the dtype's rounding
    np.testing.assert_allclose(loss, want_loss, **tol)

    grad = grad_fn(a, b, param, reduction, weight=weight)
    assert grad.shape == np.shape(a) and grad.dtype == result_dtype
    summed_close(grad, want_gi, result_dtype, terms_a)

    value, grad2 = vg_fn(a, b, param, reduction, weight=weight)
    np.testing.assert_allclose(value, want_loss, **tol)
    np.testing.assert_array_equal(grad2, grad)

    go = 1.0 if reduction != "none" else np.ones(np.broadcast_shapes(np.shape(a), np.shape(b)))
    gi, gt = bw_fn(go, a, b, param, reduction, weight=weight)
    summed_close(gi, want_gi, result_dtype, terms_a)
    summed_close(gt, want_gt, result_dtype, terms_b)

    _, _, hess_ref = ref.LOSSES[name]
    want_h = hess_ref(a, b, param)
    if weight is not None:
        want_h = want_h * weight
    if reduction == "mean" and want_h.size:
        want_h = want_h / want_h.size
    # an input element broadcast over several loss terms: its diagonal entry sums them
    want_h = ref.sum_to(np.broadcast_to(want_h, np.broadcast_shapes(np.shape(a), np.shape(b))), np.shape(a))
    summed_close(hess_fn(a, b, param, reduction, weight=weight), want_h, result_dtype, terms_a)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("n", [SMALL, LARGE])
def test_random(name, dtype, reduction, n):
    a, b = random_pair(n, dtype, seed=n)
    for param in PARAMS[name]:
        check_all(name, a, b, param, reduction)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_adversarial(name, dtype, reduction):
    for param in PARAMS[name]:
        a, b = adversarial(dtype, beta=param or 1.0)
        with np.errstate(all="ignore"):
            check_all(name, a, b, param, reduction)
        # the same values inside a large array, on the threaded kernels
        big_a = np.resize(a, LARGE)
        big_b = np.resize(b, LARGE)
        with np.errstate(all="ignore"):
            check_all(name, big_a, big_b, param, reduction)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("n", [SMALL, LARGE])
def test_weighted(name, reduction, n):
    a, b = random_pair(n, np.float64, seed=3)
    w = np.random.default_rng(4).random(n)
    check_all(name, a, b, 0.7, reduction, weight=w)
    # a weight that broadcasts to the loss shape
    a2, b2 = a[: n // 7 * 7].reshape(-1, 7), b[: n // 7 * 7].reshape(-1, 7)
    check_all(name, a2, b2, 0.7, reduction, weight=np.linspace(0, 2, 7))


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("n", [SMALL, MIDDLE])
def test_common_case_shortcut_equals_the_general_path(name, reduction, n):
    """Two same-dtype ndarrays take a shortcut past the general argument handling; lists
    of the same float64 values take the general path: the same results, bit for bit."""
    loss, grad, value_and_grad, _, _ = FUNCS[name]
    a, b = random_pair(n, np.float64, seed=7)
    a, b = a.reshape(-1, 1), b.reshape(-1, 1)  # and the shortcut keeps a 2-D shape
    listed = a.tolist(), b.tolist()
    value, general_value = loss(a, b, 0.7, reduction), loss(*listed, 0.7, reduction)
    np.testing.assert_array_equal(value, general_value)
    assert type(value) is type(general_value) and np.shape(value) == np.shape(general_value)
    np.testing.assert_array_equal(grad(a, b, 0.7, reduction), grad(*listed, 0.7, reduction))
    assert grad(a, b, 0.7, reduction).shape == a.shape
    (value, g), (general_value, general_g) = (value_and_grad(a, b, 0.7, reduction),
                                              value_and_grad(*listed, 0.7, reduction))
    np.testing.assert_array_equal(value, general_value)
    assert type(value) is type(general_value) and np.shape(value) == np.shape(general_value)
    assert g.shape == a.shape
    np.testing.assert_array_equal(g, general_g)


@pytest.mark.parametrize("dtypes", [(np.float32,) * 3, (np.float64,) * 3,
                                    (np.float32, np.float64, np.float32),
                                    (np.float64, np.float64, np.float32),
                                    (np.float32, np.float32, np.float64)])
def test_value_and_grad_sum_matches_the_plain_sum_on_every_block_remainder(dtypes):
    """value_and_grad's value and the plain loss sum the same float64 terms, in orders that
    may differ (two loops, vectorised separately): each within the sum's rounding of the
    exact sum."""
    a_dtype, b_dtype, w_dtype = dtypes
    rng = np.random.default_rng(6)
    sizes = list(range(70)) + [1023, 1024, 1025, 2047, 2048, 2049, 3 * 1024 + 33, MIDDLE]
    for n in sizes:
        a, b = random_pair(n, np.float64, seed=n)
        a, b = a.astype(a_dtype), b.astype(b_dtype)
        for w in (None, rng.random(n).astype(w_dtype)):
            for name in ("smooth_l1", "huber"):
                loss, _, value_and_grad, _, _ = FUNCS[name]
                total = loss(a, b, 0.7, "sum", weight=w)
                fused = value_and_grad(a, b, 0.7, "sum", weight=w)[0]
                terms = getattr(ref, name)(a, b, 0.7) * (1 if w is None else w.astype(np.float64))
                # the sum's rounding, and each loss's and the result's in their dtypes
                eps = max(np.finfo(np.result_type(a, b)).eps, np.finfo(np.asarray(total).dtype).eps)
                rtol = 2 * n * np.finfo(np.float64).eps + 4 * eps
                exact = math.fsum(terms.tolist())
                np.testing.assert_allclose([fused, total], [exact, exact], rtol=rtol,
                                           err_msg=f"{name} n={n}")


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_mixed_float32_float64(name, reduction):
    a, _ = random_pair(SMALL, np.float32, seed=5)
    _, b = random_pair(SMALL, np.float64, seed=6)
    check_all(name, a, b, 1.0, reduction, result_dtype=np.float64)
    check_all(name, b, a, 1.0, reduction, result_dtype=np.float64)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_float16_is_computed_in_float32(name, reduction):
    a, b = random_pair(SMALL, np.float16, seed=7)
    loss_fn, grad_fn = FUNCS[name][:2]
    want_loss, want_grad, _ = ref.loss_and_grads(name, a, b, 1.0, reduction)
    loss = loss_fn(a, b, 1.0, reduction)
    grad = grad_fn(a, b, 1.0, reduction)
    assert np.asarray(loss).dtype == np.float16 and grad.dtype == np.float16
    np.testing.assert_allclose(np.asarray(loss, np.float64), want_loss, rtol=2e-3)
    np.testing.assert_allclose(grad.astype(np.float64), want_grad, rtol=2e-3, atol=1e-7)


def test_float16_mean_gradient_does_not_vanish():
    # torch rounds 1/N to float16 in backward: 0 for N >= 2**24. nbloss scales in float32.
    n = 2**24 + 8
    a = np.full(n, 3.0, np.float16)
    grad = nbloss.smooth_l1_loss_grad(a, np.zeros_like(a))
    assert grad.dtype == np.float16 and np.all(grad > 0)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("shapes", [((3, 1), (3,)), ((4, 5), (5,)), ((2, 1, 4), (3, 1)),
                                    ((5,), ()), ((), (6,)), ((2, 3), (2, 3))])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_broadcasting(name, shapes, reduction):
    rng = np.random.default_rng(8)
    a = rng.standard_normal(shapes[0]) * 2
    b = rng.standard_normal(shapes[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check_all(name, a, b, 0.8, reduction)


@pytest.mark.parametrize("name", FUNCS)
def test_empty(name):
    loss_fn, grad_fn, vg_fn, bw_fn, _ = FUNCS[name]
    e = np.zeros(0, np.float32)
    assert np.isnan(loss_fn(e, e, 1.0, "mean"))
    assert loss_fn(e, e, 1.0, "sum") == 0 and np.asarray(loss_fn(e, e, 1.0, "sum")).dtype == np.float32
    assert loss_fn(e, e, 1.0, "none").shape == (0,)
    assert grad_fn(e, e, 1.0, "mean").shape == (0,)
    value, grad = vg_fn(e, e, 1.0, "mean")
    assert np.isnan(value) and grad.shape == (0,)
    gi, gt = bw_fn(1.0, e, e, 1.0, "mean")
    assert gi.shape == gt.shape == (0,)
    assert loss_fn(np.zeros((0, 3)), np.zeros((0, 3)), 1.0, "none").shape == (0, 3)


@pytest.mark.parametrize("name", FUNCS)
def test_python_scalars_and_lists(name):
    loss_fn, grad_fn = FUNCS[name][:2]
    want = ref.loss_and_grads(name, [0.5, 3.0, -2.0], [0.0, 0.0, 0.0], 1.0, "sum")[0]
    np.testing.assert_allclose(loss_fn([0.5, 3.0, -2.0], 0.0, 1.0, "sum"), want, rtol=1e-15)
    np.testing.assert_allclose(loss_fn([0.5, 3, -2], [0, 0, 0], 1, "sum"), want, rtol=1e-15)
    np.testing.assert_allclose(loss_fn(3.0, 0, 1.0, "none"), ref.LOSSES[name][0](3.0, 0, 1.0))
    # a Python scalar is weak, as in NumPy: it keeps a float32 array float32
    a32 = np.array([0.5, 3.0], np.float32)
    assert loss_fn(a32, 0.0, 1.0, "none").dtype == np.float32
    assert grad_fn(a32, 1, 1.0, "mean").dtype == np.float32


@pytest.mark.parametrize("name", FUNCS)
def test_non_contiguous_inputs(name):
    rng = np.random.default_rng(9)
    a = rng.standard_normal((40, 30))[::2, ::3]
    b = np.asfortranarray(rng.standard_normal((20, 10)))
    for reduction in ("none", "mean", "sum"):
        check_all(name, a, b, 0.9, reduction)


@pytest.mark.parametrize("name", FUNCS)
def test_out(name):
    loss_fn, grad_fn, vg_fn = FUNCS[name][:3]
    a, b = random_pair(SMALL, np.float32, seed=10)
    out = np.empty(SMALL, np.float32)
    res = loss_fn(a, b, 1.0, "none", out=out)
    assert res is out
    np.testing.assert_allclose(out, ref.LOSSES[name][0](a, b, 1.0), **tolerances(np.float32))
    gout = np.empty(SMALL, np.float32)
    assert grad_fn(a, b, 1.0, "mean", out=gout) is gout
    np.testing.assert_allclose(gout, ref.LOSSES[name][1](a, b, 1.0) / SMALL, **tolerances(np.float32))
    gout2 = np.full(SMALL, np.nan, np.float32)
    value, g = vg_fn(a, b, 1.0, "sum", out=gout2)
    assert g is gout2
    np.testing.assert_array_equal(gout2, grad_fn(a, b, 1.0, "sum"))
    # a strided out is filled correctly too
    big = np.zeros(2 * SMALL, np.float32)
    loss_fn(a, b, 1.0, "none", out=big[::2])
    np.testing.assert_array_equal(big[::2], out)
    assert not big[1::2].any()
    # broadcast input: out has the input's shape and receives the summed gradient
    col = a[:5].reshape(5, 1)
    gcol = np.empty((5, 1), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        grad_fn(col, b[:4], 1.0, "sum", out=gcol)
    want = ref.sum_to(ref.LOSSES[name][1](col, b[:4], 1.0), (5, 1))
    np.testing.assert_allclose(gcol, want, **tolerances(np.float32))


@pytest.mark.parametrize("crit_cls,name,param", [(nbloss.SmoothL1Loss, "smooth_l1", "beta"),
                                                 (nbloss.HuberLoss, "huber", "delta")])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_criteria(crit_cls, name, param, reduction):
    rng = np.random.default_rng(11)
    a = rng.standard_normal((6, 1)) * 2
    b = rng.standard_normal(4)
    crit = crit_cls(reduction=reduction, **{param: 0.6})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loss = crit(a, b)
    want_loss, want_gi, want_gt = ref.loss_and_grads(name, a, b, 0.6, reduction)
    np.testing.assert_allclose(loss, want_loss, rtol=1e-14)
    go = 2.5 if reduction != "none" else rng.standard_normal((6, 4))
    gi, gt = crit.backward(go)
    if reduction == "none":
        g_full = ref.LOSSES[name][1](a, b, 0.6) * go
        want_gi, want_gt = ref.sum_to(g_full, a.shape), -ref.sum_to(g_full, b.shape)
    else:
        want_gi, want_gt = want_gi * go, want_gt * go
    np.testing.assert_allclose(gi, want_gi, rtol=1e-14, atol=1e-300)
    np.testing.assert_allclose(gt, want_gt, rtol=1e-14, atol=1e-300)
    assert gi.shape == a.shape and gt.shape == b.shape
