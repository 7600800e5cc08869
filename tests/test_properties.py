"""Properties that must hold for any input (hypothesis)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import nbloss

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite64 = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
any64 = st.floats(allow_nan=True, allow_infinity=True)
dtypes = st.sampled_from([np.float32, np.float64])


@st.composite
def pairs(draw, elements=finite64, max_size=300):
    dtype = draw(dtypes)
    n = draw(st.integers(0, max_size))
    a = draw(hnp.arrays(np.float64, n, elements=elements)).astype(dtype)
    b = draw(hnp.arrays(np.float64, n, elements=elements)).astype(dtype)
    return a, b


params = st.floats(1e-3, 1e3)


@SETTINGS
@given(pairs(), params)
def test_huber_is_delta_times_smooth_l1(ab, delta):
    a, b = ab
    a, b = a.astype(np.float64), b.astype(np.float64)
    h = nbloss.huber_loss(a, b, delta, "none")
    s = nbloss.smooth_l1_loss(a, b, delta, "none")
    np.testing.assert_allclose(h, delta * s, rtol=1e-13, atol=1e-300)
    np.testing.assert_allclose(nbloss.huber_loss_grad(a, b, delta, "sum"),
                               delta * nbloss.smooth_l1_loss_grad(a, b, delta, "sum"), rtol=1e-14, atol=1e-300)


@SETTINGS
@given(pairs(), params, st.sampled_from(["smooth_l1", "huber"]))
def test_sum_is_mean_times_n(ab, p, name):
    a, b = ab
    f = nbloss.smooth_l1_loss if name == "smooth_l1" else nbloss.huber_loss
    total, mean = f(a, b, p, "sum"), f(a, b, p, "mean")
    if a.size == 0:
        assert total == 0 and np.isnan(mean)
    else:
        rtol = 4 * np.finfo(a.dtype).eps
        np.testing.assert_allclose(float(mean) * a.size, float(total), rtol=rtol)
        # the fused kernel adds the same float64 losses, perhaps in another order
        vg = (nbloss.smooth_l1_loss_value_and_grad if name == "smooth_l1" else nbloss.huber_loss_value_and_grad)
        rtol = a.size * np.finfo(np.float64).eps + (np.finfo(a.dtype).eps if a.dtype == np.float32 else 0)
        np.testing.assert_allclose(vg(a, b, p, "sum")[0], total, rtol=rtol)
        np.testing.assert_allclose(vg(a, b, p, "mean")[0], mean, rtol=rtol)


@SETTINGS
@given(pairs(elements=any64), st.sampled_from([0.0, 0.5, 1.0, 2.0]), st.sampled_from(["none", "mean", "sum"]))
def test_gradient_is_odd(ab, p, reduction):
    """grad(-input, -target) == -grad(input, target), bit for bit, NaN/inf included."""
    a, b = ab
    with np.errstate(all="ignore"):
        for grad in (nbloss.smooth_l1_loss_grad, nbloss.huber_loss_grad):
            p_ = p if grad is nbloss.smooth_l1_loss_grad else (p or 1.0)
            np.testing.assert_array_equal(grad(-a, -b, p_, reduction), -grad(a, b, p_, reduction))


@SETTINGS
@given(pairs(elements=any64), st.sampled_from([0.0, 1.0]))
def test_loss_is_nonnegative_or_nan_and_gradient_bounded(ab, beta):
    a, b = ab
    with np.errstate(all="ignore"):
        loss = nbloss.smooth_l1_loss(a, b, beta, "none")
        grad = nbloss.smooth_l1_loss_grad(a, b, beta, "none")
        x = a.astype(np.float64) - b
    assert np.all((loss >= 0) | np.isnan(loss))
    assert np.all((np.abs(grad) <= 1) | np.isnan(grad))
    np.testing.assert_array_equal(np.isnan(loss), np.isnan(x))
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(x))


@pytest.fixture
def thread_counts():
    numba = pytest.importorskip("numba")
    before = numba.get_num_threads()
    yield list(range(1, numba.config.NUMBA_NUM_THREADS + 1))
    numba.set_num_threads(before)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(st.integers(0, 2**31 - 1), st.integers(1, 200_000), dtypes)
def test_bit_identical_for_any_thread_count(thread_counts, seed, n, dtype):
    import numba

    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(n) * 3).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    results = []
    for threads in thread_counts:
        numba.set_num_threads(threads)
        results.append((nbloss.smooth_l1_loss(a, b, 0.7, "mean"), nbloss.huber_loss(a, b, 1.3, "sum"),
                        *nbloss.huber_loss_value_and_grad(a, b, 1.3, "mean")))
    for other in results[1:]:
        for x, y in zip(results[0], other):
            np.testing.assert_array_equal(x, y)
