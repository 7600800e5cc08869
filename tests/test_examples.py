"""The examples in examples/, run on small data and checked against solvers and
formulas nbloss did not write: SciPy's least_squares, scikit-learn's HuberRegressor and
finite differences."""

import importlib.util
import pathlib

import numpy as np
import pytest

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
