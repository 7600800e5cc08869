"""The examples in examples/, run on small data and checked against solvers and
formulas nbloss did not write: SciPy's least_squares, scikit-learn's HuberRegressor and
finite differences."""

import importlib.util
import pathlib

import numpy as np
import pytest

import nbloss
from conftest import require

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def robust():
    return load("robust_regression")


@pytest.fixture(scope="module")
def fits(robust):
    require("sklearn")
    return robust.main(n=600, delta=1.0, seed=2)


def float64_resolution_gradient(A, y, w, delta, ulps=100):
    """The largest gradient norm at which a solver may stop because it no longer sees the
    objective decrease: near the minimum f(w) - f* >= |g|^2 / (2 lambda_max(A^T A)), and
    a float64 sum of N losses is only resolved to a few tens of ulps of f (rounding of N
    terms; SciPy's ftol=1e-15 is 4.5 ulps), so |g| <= sqrt(2 lambda_max * ulps * eps * f)."""
    r = A @ w - y
    f = float(np.sum(np.where(np.abs(r) < delta, 0.5 * r * r, delta * (np.abs(r) - 0.5 * delta))))
    lam_max = np.linalg.eigvalsh(A.T @ A)[-1]
    return float(np.sqrt(2 * lam_max * ulps * np.finfo(np.float64).eps * f))


def test_lbfgs_newton_cg_and_least_squares_agree(robust, fits):
    """Each solver stops where float64 no longer resolves a decrease of the objective, so
    what the mathematics guarantees is a gradient within that resolution, and, since the
    objective is quadratic near its minimum, solutions no further apart than their
    gradients over the Hessian's smallest eigenvalue allow. Neither depends on the last
    bit of a sum (which changes how many steps a solver takes)."""
    A, y, r = fits
    delta = 1.0
    resolution = float64_resolution_gradient(A, y, r["least_squares"], delta)
    start = robust.gradient_norm(A, y, np.zeros(A.shape[1]), delta)
    assert resolution < 1e-5 * start  # the check below says something
    for name in ("lbfgs", "newton_cg", "least_squares"):
        assert robust.gradient_norm(A, y, r[name], delta) <= resolution, name
    for name in ("newton_cg", "least_squares"):
        bound = robust.distance_bound(A, y, r["lbfgs"], delta,
                                      [robust.gradient_norm(A, y, r[k], delta) for k in ("lbfgs", name)])
        assert np.linalg.norm(r[name] - r["lbfgs"]) <= bound, (name, bound)
        assert bound < 1e-6 * np.linalg.norm(r["lbfgs"])


def test_sklearn_huber_regressor_is_huber_at_epsilon_times_scale(robust, fits):
    A, y, r = fits
    delta = 1.35 * r["sklearn_scale"]
    g = [robust.gradient_norm(A, y, r[k], delta) for k in ("sklearn", "nbloss_at_sklearn_delta")]
    bound = robust.distance_bound(A, y, r["sklearn"], delta, g)
    assert np.linalg.norm(r["sklearn"] - r["nbloss_at_sklearn_delta"]) <= bound, (g, bound)
    assert bound < 1e-3  # the comparison says something: both solvers converged


def test_robust_fit_beats_least_squares_on_outliers(robust):
    A, y, w_true = robust.make_data(600, seed=4)
    w, _ = robust.fit_lbfgs(A, y, 1.0)
    w_ols = np.linalg.lstsq(A, y, rcond=None)[0]
    assert np.linalg.norm(w - w_true) < np.linalg.norm(w_ols - w_true) / 3


def test_hessp_matches_finite_differences_of_the_gradient(robust):
    A, y, _ = robust.make_data(300, seed=5)
    w = np.linalg.lstsq(A, y, rcond=None)[0]
    v = np.random.default_rng(6).standard_normal(A.shape[1])
    fun = robust.objective(A, y, 1.0)
    eps = 1e-6
    fd = (fun(w + eps * v)[1] - fun(w - eps * v)[1]) / (2 * eps)
    np.testing.assert_allclose(robust.hessp(A, y, 1.0)(w, v), fd, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def mlp():
    return load("mlp_numpy")


def test_mlp_training_loss_goes_down_and_ignores_the_outliers(mlp):
    params, history = mlp.train(steps=200, hidden=16, log_every=0)
    assert all(np.isfinite(history))
    # the outliers (10%, 3 to 6 above the curve) keep the loss above ~0.4 whatever the fit
    assert history[-1] < history[0] - 0.1
    x, y = mlp.make_data(seed=1)
    clean = np.abs(y - np.sin(x)) < 1
    out, _ = mlp.forward(params, x)
    assert np.abs(out - np.sin(x))[clean].mean() < 0.15


def test_mlp_gradients_match_finite_differences(mlp):
    rng = np.random.default_rng(7)
    x, y = rng.standard_normal((6, 2)), rng.standard_normal((6, 1)) * 2
    params = mlp.init([2, 4, 3, 1], seed=8)
    beta = 0.7
    _, grads = mlp.loss_and_grads(params, x, y, beta)
    eps = 1e-6
    for layer, layer_grads in zip(params, grads):
        for p, g in zip(layer, layer_grads):
            fd = np.zeros_like(p)
            for idx in np.ndindex(p.shape):
                old = p[idx]
                p[idx] = old + eps
                up = mlp.loss_and_grads(params, x, y, beta)[0]
                p[idx] = old - eps
                down = mlp.loss_and_grads(params, x, y, beta)[0]
                p[idx] = old
                fd[idx] = (up - down) / (2 * eps)
            np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-8)


# -- examples/robust_regression_numba.py: residuals in the user's own compiled loop ----------

@pytest.fixture(scope="module")
def fused():
    return load("robust_regression_numba")


def summation_bound(terms):
    """Any order of adding ``terms`` in float64 is within (n - 1) eps sum|terms| of the
    exact sum (recursive summation's worst case), so two orders are within twice that."""
    return 2 * (len(terms) - 1) * np.finfo(np.float64).eps * float(np.sum(np.abs(terms)))


def test_fused_loop_elements_are_the_array_functions_and_its_sums_theirs_to_rounding(fused):
    A, y, _ = fused.make_data(30_000, seed=11)  # several blocks, threaded
    w = np.linalg.lstsq(A, y, rcond=None)[0] + 0.3
    delta = 1.5
    loss, grad = fused.value_and_grad(A, y, w, delta)
    r = fused.residuals(A, y, w)  # the loop's residuals, as an array
    # per element, nbloss.elementwise is the array function to the bit
    elements, grad_r = nbloss.huber_loss_value_and_grad(r, 0.0, delta, "none")
    elem = nbloss.elementwise
    assert elem.huber(r, delta).tobytes() == elements.tobytes()
    assert elem.huber_grad(r, delta).tobytes() == grad_r.tobytes()
    # the sums differ only by the order of additions
    reference = float(nbloss.huber_loss(r, 0.0, delta, "sum"))
    assert abs(loss - reference) <= summation_bound(elements)
    assert loss != 0 and abs(loss - reference) <= 1e-9 * loss  # the bound says something
    products = grad_r[:, None] * A
    for k in range(A.shape[1]):
        assert abs(grad[k] - (A.T @ grad_r)[k]) <= summation_bound(products[:, k]) + 1e-300
    # the array functions' two-step version, from A @ w (another order of the dot products)
    loss2, grad2 = fused.two_step_value_and_grad(A, y, w, delta)
    dot_error = (A.shape[1] + 1) * np.finfo(np.float64).eps * (np.abs(A) @ np.abs(w) + np.abs(y))
    assert abs(loss - loss2) <= summation_bound(elements) + delta * dot_error.sum()


def test_fused_loop_is_the_same_bits_for_any_thread_count(fused):
    from numba import get_num_threads, set_num_threads

    A, y, _ = fused.make_data(20_000, seed=12)
    w = np.ones(A.shape[1])
    first = fused.value_and_grad(A, y, w, 1.0)
    threads = get_num_threads()
    try:
        set_num_threads(1)
        second = fused.value_and_grad(A, y, w, 1.0)
    finally:
        set_num_threads(threads)
    assert first[0] == second[0] and first[1].tobytes() == second[1].tobytes()


def test_fused_fit_is_scipy_least_squares_huber(fused):
    """scipy's cost 0.5 f^2 sum rho((r / f)^2), rho(z) = z or 2 sqrt(z) - 1, is sum
    huber(r; delta=f) exactly: both solvers stop where float64 no longer resolves the
    objective, and are then no further apart than their gradients over the Hessian's
    smallest eigenvalue allow (as for the array functions' example above)."""
    robust = load("robust_regression")
    A, y, w, lsq = fused.main(n=3000, delta=1.0, seed=13)
    resolution = float64_resolution_gradient(A, y, lsq, 1.0)
    g = [robust.gradient_norm(A, y, v, 1.0) for v in (w, lsq)]
    assert max(g) <= resolution
    bound = robust.distance_bound(A, y, w, 1.0, g)
    assert np.linalg.norm(w - lsq) <= bound and bound < 1e-6 * np.linalg.norm(lsq)
