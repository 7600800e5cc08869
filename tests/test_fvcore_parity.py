"""nbloss.fvcore.smooth_l1_loss against real fvcore."""

import numpy as np
import pytest

from conftest import LARGE, SMALL, adversarial, random_pair
from nbloss.fvcore import smooth_l1_loss


def fvcore_run(torch, fvcore_nn, a, b, beta, reduction):
    return fvcore_nn.smooth_l1_loss(torch.from_numpy(a), torch.from_numpy(b), beta, reduction)


@pytest.mark.parametrize("beta", [0.0, 1e-6, 1e-5, 0.1, 1.0, 2.5])
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [SMALL, LARGE])
def test_values(torch, fvcore_nn, beta, reduction, dtype, n):
    a, b = random_pair(n, dtype, seed=12)
    a[:3] = [beta, -beta, 0.0]; b[:3] = 0
    got = smooth_l1_loss(a, b, beta, reduction)
    want = fvcore_run(torch, fvcore_nn, a, b, beta, reduction).numpy()
    assert np.asarray(got).dtype == want.dtype
    if reduction == "none":
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=8 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adversarial(torch, fvcore_nn, dtype):
    a, b = adversarial(dtype, beta=0.5)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(smooth_l1_loss(a, b, 0.5),
                                      fvcore_run(torch, fvcore_nn, a, b, 0.5, "none").numpy())


def test_default_reduction_and_empty_mean(torch, fvcore_nn):
    a, b = random_pair(SMALL, np.float32, seed=13)
    assert smooth_l1_loss(a, b, 1.0).shape == (SMALL,)
    e = np.zeros(0, np.float32)
    got = smooth_l1_loss(e, e, 1.0, "mean")
    want = fvcore_run(torch, fvcore_nn, e, e, 1.0, "mean")
    assert got == want.item() == 0.0


def test_broadcasts_silently(torch, fvcore_nn, recwarn):
    a = np.random.default_rng(14).standard_normal((4, 1))
    b = np.random.default_rng(15).standard_normal(3)
    np.testing.assert_allclose(smooth_l1_loss(a, b, 0.5, "mean"),
                               fvcore_run(torch, fvcore_nn, a, b, 0.5, "mean").numpy(), rtol=1e-15)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


def test_unknown_reduction_raises_where_fvcore_passes_through(torch, fvcore_nn):
    a = np.ones(3)
    assert fvcore_run(torch, fvcore_nn, a, a, 1.0, "avg").shape == (3,)  # fvcore's trap
    with pytest.raises(ValueError, match="avg is not a valid value for reduction"):
        smooth_l1_loss(a, a, 1.0, "avg")


def test_elementwise_mean_raises_where_fvcore_returns_the_unreduced_loss(torch, fvcore_nn):
    a = np.ones(3)
    assert fvcore_run(torch, fvcore_nn, a, a, 1.0, "elementwise_mean").shape == (3,)
    with pytest.raises(ValueError, match="elementwise_mean is not a valid value for reduction in "
                                         "fvcore's smooth_l1_loss .*pass 'mean'"):
        smooth_l1_loss(a, a, 1.0, "elementwise_mean")
