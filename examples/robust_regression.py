"""Robust linear regression with nbloss's Huber loss, checked against SciPy and sklearn.

The model is ``pred = A @ w`` and the objective ``sum huber(A @ w - y; delta)``. nbloss
gives the loss and d loss / d pred in one pass; the chain rule through the linear model
is ``A.T @ grad_pred``, and the Hessian is ``A.T @ diag(h) @ A`` with ``h`` from
``huber_loss_hess_diag``, so ``hessp(w, v) = A.T @ (h * (A @ v))``.

Three independent solvers must land on the same ``w``:

- ``scipy.optimize.least_squares(loss='huber', f_scale=delta)``: its cost
  ``0.5 C^2 sum rho(f^2 / C^2)`` is exactly ``sum huber(f; delta=C)``;
- ``sklearn.linear_model.HuberRegressor(epsilon, alpha=0)``: for its fitted scale sigma,
  ``sigma * H_eps(r / sigma) = (2 / sigma) huber(r; delta=eps * sigma)``, so its
  coefficients minimise nbloss's huber at ``delta = epsilon * scale_``.

    python examples/robust_regression.py
"""

import numpy as np
from scipy.optimize import least_squares, minimize

import nbloss


def make_data(n=2000, n_features=3, outlier_fraction=0.15, seed=0):
    """y = A @ w_true + noise, with a fraction of gross outliers; A has a column of ones."""
    rng = np.random.default_rng(seed)
    A = np.column_stack([rng.standard_normal((n, n_features)), np.ones(n)])
    w_true = rng.uniform(-3, 3, n_features + 1)
    y = A @ w_true + rng.normal(0, 0.5, n)
    outliers = rng.random(n) < outlier_fraction
    y[outliers] += rng.choice([-1, 1], outliers.sum()) * rng.uniform(10, 40, outliers.sum())
    return A, y, w_true


def objective(A, y, delta):
    """``fun(w) -> (loss, gradient)`` for ``minimize(..., jac=True)``."""
    def fun(w):
        loss, grad_pred = nbloss.huber_loss_value_and_grad(A @ w, y, delta, "sum")
        return float(loss), A.T @ grad_pred
    return fun


def hessp(A, y, delta):
    """``hessp(w, v) = A.T @ (h * (A @ v))``: the Hessian of the loss times v."""
    def product(w, v):
        h = nbloss.huber_loss_hess_diag(A @ w, y, delta, "sum")
        return A.T @ (h * (A @ v))
    return product


def fit_lbfgs(A, y, delta, gtol=1e-10):
    result = minimize(objective(A, y, delta), np.zeros(A.shape[1]), jac=True, method="L-BFGS-B",
                      options={"gtol": gtol, "ftol": 1e-15, "maxiter": 10_000})
    return result.x, result


def fit_newton_cg(A, y, delta, xtol=1e-12):
    result = minimize(objective(A, y, delta), np.zeros(A.shape[1]), jac=True,
                      hessp=hessp(A, y, delta), method="Newton-CG", options={"xtol": xtol})
    return result.x, result


def fit_least_squares(A, y, delta, tol=1e-12):
    result = least_squares(lambda w: A @ w - y, np.zeros(A.shape[1]), loss="huber",
                           f_scale=delta, ftol=tol, xtol=tol, gtol=tol)
    return result.x, result


def fit_sklearn(A, y, epsilon=1.35):
    """sklearn's joint fit of (w, sigma); A's last column is the intercept."""
    from sklearn.linear_model import HuberRegressor

    model = HuberRegressor(epsilon=epsilon, alpha=0.0, max_iter=10_000, tol=1e-12)
    model.fit(A[:, :-1], y)
    return np.append(model.coef_, model.intercept_), model.scale_


def gradient_norm(A, y, w, delta):
    """|d/dw sum huber(A w - y)| from a plain NumPy formula (not nbloss): how far a solver
    stopped from the exact minimum."""
    return float(np.linalg.norm(A.T @ np.clip(A @ w - y, -delta, delta)))


def distance_bound(A, y, w, delta, grad_norms):
    """An upper bound on |w - w*| for a point with the given gradient norms: the
    objective is quadratic with Hessian A^T diag(|r| < delta) A near the minimum, so
    |w - w*| <= |g| / lambda_min (twice, for the two points compared)."""
    inside = np.abs(A @ w - y) < delta
    lam = np.linalg.eigvalsh(A[inside].T @ A[inside])[0]
    return 2 * sum(grad_norms) / lam


def main(n=2000, delta=1.0, epsilon=1.35, seed=0):
    A, y, w_true = make_data(n, seed=seed)
    w_ols = np.linalg.lstsq(A, y, rcond=None)[0]
    w_lbfgs, res_lbfgs = fit_lbfgs(A, y, delta)
    w_newton, res_newton = fit_newton_cg(A, y, delta)
    w_lsq, _ = fit_least_squares(A, y, delta)
    rows = [("truth", w_true), ("ordinary least squares", w_ols),
            (f"nbloss + L-BFGS-B ({res_lbfgs.nfev} evaluations)", w_lbfgs),
            (f"nbloss + Newton-CG with hessp ({res_newton.nfev} evaluations)", w_newton),
            ("scipy least_squares(loss='huber')", w_lsq)]
    report = {"lbfgs": w_lbfgs, "newton_cg": w_newton, "least_squares": w_lsq}
    try:
        w_sk, scale = fit_sklearn(A, y, epsilon)
    except ImportError:
        print("scikit-learn is not installed: its comparison is skipped")
    else:
        w_nb_sk, _ = fit_lbfgs(A, y, epsilon * scale)
        rows += [(f"sklearn HuberRegressor (epsilon={epsilon}, scale {scale:.3f})", w_sk),
                 (f"nbloss + L-BFGS-B at delta = epsilon * scale = {epsilon * scale:.3f}", w_nb_sk)]
        report.update(sklearn=w_sk, sklearn_scale=scale, nbloss_at_sklearn_delta=w_nb_sk)
    print(f"Robust regression, {n} rows, {A.shape[1]} coefficients, Huber delta = {delta}")
    for name, w in rows:
        print(f"  {name:<62} " + " ".join(f"{v:9.5f}" for v in w))
    return A, y, report


if __name__ == "__main__":
    main()
