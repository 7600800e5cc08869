"""nbloss.elementwise inside @cuda.jit kernels, and the fused regression example as a
CUDA kernel: on numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, small sizes) or a GPU.
Each element is the array functions' (reduction 'none') to the bit; the example's loss
and gradient are the CPU loop's up to the order of the additions."""

import importlib.util
import pathlib

import numpy as np
import pytest

import nbloss
from conftest import SIMULATOR, adversarial, cuda_or_skip
from nbloss import elementwise as E

cuda = cuda_or_skip()


@cuda.jit
def _all(x, beta, delta, out):
    i = cuda.grid(1)
    if i < x.size:
        out[0, i] = E.smooth_l1(x[i], beta)
        out[1, i] = E.smooth_l1_grad(x[i], beta)
        out[2, i] = E.smooth_l1_hess(x[i], beta)
        out[3, i] = E.huber(x[i], delta)
        out[4, i] = E.huber_grad(x[i], delta)
        out[5, i] = E.huber_hess(x[i], delta)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("beta,delta", [(0.0, 1.0), (1e-40, 0.5), (0.5, 2.0), (1.0, 1.0)])
def test_kernel_elements_are_the_array_functions_bits(dtype, beta, delta):
    a, b = adversarial(dtype, beta or 1.0)
    with np.errstate(all="ignore"):
        x = np.concatenate([a - b, np.linspace(-3, 3, 41, dtype=dtype)])
    out = cuda.device_array((6, x.size), dtype)
    _all[(x.size + 63) // 64, 64](cuda.to_device(x), beta, delta, out)
    got = out.copy_to_host()
    zero = np.zeros_like(x)
    want = [nbloss.smooth_l1_loss(x, zero, beta, "none"), nbloss.smooth_l1_loss_grad(x, zero, beta, "none"),
            nbloss.smooth_l1_loss_hess_diag(x, zero, beta, "none"), nbloss.huber_loss(x, zero, delta, "none"),
            nbloss.huber_loss_grad(x, zero, delta, "none"), nbloss.huber_loss_hess_diag(x, zero, delta, "none")]
    for k, w in enumerate(want):
        assert got[k].tobytes() == w.tobytes(), k


def _example():
    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / "robust_regression_numba.py"
    spec = importlib.util.spec_from_file_location("robust_regression_numba", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fused_regression_kernel_is_the_cpu_loop_to_rounding():
    fused = _example()
    A, y, _ = fused.make_data(700 if SIMULATOR else 1_000_000, seed=21)
    w = np.linalg.lstsq(A, y, rcond=None)[0] + 0.2
    loss, grad = fused.cuda_value_and_grad(A, y, w, 1.5, blocks=2 if SIMULATOR else 256)
    cpu_loss, cpu_grad = fused.value_and_grad(A, y, w, 1.5)
    r = fused.residuals(A, y, w)
    terms = nbloss.huber_loss(r, 0.0, 1.5, "none")
    eps = np.finfo(np.float64).eps
    # two orders of the same float64 terms: within 2 (n - 1) eps sum|terms|; the dot
    # products may round differently on a GPU (fused multiply-adds): (d + 1) eps each
    dots = (A.shape[1] + 1) * eps * (np.abs(A) @ np.abs(w) + np.abs(y))
    assert abs(loss - cpu_loss) <= 2 * (len(r) - 1) * eps * terms.sum() + 1.5 * dots.sum()
    g = nbloss.huber_loss_grad(r, 0.0, 1.5, "none")
    for k in range(A.shape[1]):
        products = np.abs(g * A[:, k])
        bound = 2 * (len(r) - 1) * eps * products.sum() + (np.abs(A[:, k]) * dots).sum()
        assert abs(grad[k] - cpu_grad[k]) <= bound, k
    assert abs(loss - cpu_loss) <= 1e-9 * cpu_loss  # the bound is tight enough to mean something
