"""The robust regression of robust_regression.py with the data on a GPU, as CuPy arrays.

nbloss takes the CuPy arrays without a copy and runs its CUDA kernels; ``A @ w`` and
``A.T @ g`` are CuPy's. Per step only the d coefficients and the loss cross between host
(where SciPy's L-BFGS-B runs) and device.

    python examples/robust_regression_cupy.py       # needs a CUDA GPU and CuPy
"""

import pathlib
import sys

import numpy as np
from scipy.optimize import minimize

import nbloss

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from robust_regression import fit_lbfgs, make_data  # noqa: E402  (the CPU fit, the same data)


def objective(A, y, delta):
    """``fun(w) -> (loss, gradient)`` for ``minimize(..., jac=True)``, A and y on the GPU."""
    import cupy as cp

    def fun(w):
        # CuPy arrays in, CuPy arrays out (the loss a 0-d one), without a copy
        loss, grad_pred = nbloss.huber_loss_value_and_grad(A @ cp.asarray(w), y, delta, "sum")
        return float(loss), cp.asnumpy(A.T @ grad_pred)
    return fun


def fit(A, y, delta, gtol=1e-10):
    result = minimize(objective(A, y, delta), np.zeros(A.shape[1]), jac=True, method="L-BFGS-B",
                      options={"gtol": gtol, "ftol": 1e-15, "maxiter": 10_000})
    return result.x, result


def main(n=100_000, delta=1.0, seed=0):
    import cupy as cp

    A, y, w_true = make_data(n=n, seed=seed)
    w_gpu, result = fit(cp.asarray(A), cp.asarray(y), delta)
    w_cpu, _ = fit_lbfgs(A, y, delta)
    print(f"GPU fit of {n} rows: {result.nfev} evaluations, w = {np.round(w_gpu, 4)}")
    print(f"max |w_gpu - w_cpu| = {np.max(np.abs(w_gpu - w_cpu)):.2e}, "
          f"max |w_gpu - w_true| = {np.max(np.abs(w_gpu - w_true)):.2e}")
    return w_gpu, w_cpu


if __name__ == "__main__":
    main()
