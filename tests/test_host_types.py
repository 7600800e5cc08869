"""Host objects that are not ndarrays (torch CPU tensors, pandas Series, lists): NumPy
converts them, and the results are NumPy's (arrays, and NumPy scalars for 'mean' and
'sum'), equal to the same call on the converted arrays. Only CUDA arrays come back in
their own type (tests/cuda/test_array_kinds.py)."""

import numpy as np
import pytest

import nbloss
from conftest import require

RED = ["none", "mean", "sum"]


def every_operation(a, b, reduction):
    crit = nbloss.SmoothL1Loss(reduction=reduction, beta=0.5)
    value = crit(a, b)
    return [nbloss.huber_loss(a, b, 0.5, reduction), nbloss.smooth_l1_loss_grad(a, b, 0.5, reduction),
            nbloss.huber_loss_hess_diag(a, b, 0.5, reduction),
            *nbloss.smooth_l1_loss_value_and_grad(a, b, 0.5, reduction),
            *nbloss.huber_loss_backward(2.0, a, b, 0.5, reduction), value, *crit.backward(2.0)]


def check_numpy_results(a, b, a_np, b_np, reduction):
    for got, want in zip(every_operation(a, b, reduction), every_operation(a_np, b_np, reduction),
                         strict=True):
        assert isinstance(got, (np.ndarray, np.floating)), type(got)
        assert isinstance(got, np.ndarray) == isinstance(want, np.ndarray)
        assert got.dtype == want.dtype and np.shape(got) == np.shape(want)
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("reduction", RED)
def test_torch_cpu_tensors_give_numpy_results(torch, reduction):
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal(40).astype(np.float32), rng.standard_normal(40).astype(np.float32)
    check_numpy_results(torch.from_numpy(a), torch.from_numpy(b), a, b, reduction)
    # a tensor that requires grad is refused, as NumPy refuses it: detach it first
    with pytest.raises(TypeError, match="input must be an array-like of floats, got Tensor"):
        nbloss.huber_loss(torch.from_numpy(a).requires_grad_(), b)


@pytest.mark.parametrize("reduction", RED)
def test_pandas_series_give_numpy_results(reduction):
    pd = require("pandas", extra="test")
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal(40), rng.standard_normal(40)
    check_numpy_results(pd.Series(a), pd.Series(b), a, b, reduction)
