"""Gradients against central finite differences of the loss itself (float64)."""

import warnings

import numpy as np
import pytest

import nbloss

CASES = [
    (nbloss.smooth_l1_loss, nbloss.smooth_l1_loss_grad, nbloss.smooth_l1_loss_backward, 0.8),
    (nbloss.huber_loss, nbloss.huber_loss_grad, nbloss.huber_loss_backward, 0.8),
    (nbloss.smooth_l1_loss, nbloss.smooth_l1_loss_grad, nbloss.smooth_l1_loss_backward, 0.0),
]


def away_from_kinks(shape, param, seed):
    """Points whose |input - target| is at least 0.05 from every kink (0 and +-param)."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(-3, 3, shape)
    b = np.zeros(shape)
    kinks = np.array([0.0, param, -param])
    bad = np.abs(a[..., None] - kinks).min(-1) < 0.05
    a[bad] += 0.1
    return a, b


def fd_grad(f, a, h=1e-6):
    g = np.zeros_like(a)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        keep = flat[i]
        flat[i] = keep + h
        up = f(a)
        flat[i] = keep - h
        down = f(a)
        flat[i] = keep
        gflat[i] = (up - down) / (2 * h)
    return g


@pytest.mark.parametrize("loss,grad,backward,param", CASES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_grad_matches_finite_differences(loss, grad, backward, param, reduction):
    a, b = away_from_kinks(40, param, seed=1)
    w = np.random.default_rng(2).random(40)
    f = lambda x: float(loss(x, b, param, reduction, weight=w))
    want = fd_grad(f, a.copy())
    np.testing.assert_allclose(grad(a, b, param, reduction, weight=w), want, rtol=1e-6, atol=1e-9)
    gi, gt = backward(1.0, a, b, param, reduction, weight=w)
    np.testing.assert_allclose(gi, want, rtol=1e-6, atol=1e-9)
    want_t = fd_grad(lambda y: float(loss(a, y, param, reduction, weight=w)), b.copy())
    np.testing.assert_allclose(gt, want_t, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("loss,grad,backward,param", CASES)
def test_broadcast_gradients_match_finite_differences(loss, grad, backward, param):
    a, _ = away_from_kinks((4, 1), param, seed=3)
    b = np.random.default_rng(4).uniform(-0.01, 0.01, 5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        f_a = lambda x: float(loss(x, b, param, "sum"))
        f_b = lambda y: float(loss(a, y, param, "sum"))
        want_a, want_b = fd_grad(f_a, a.copy()), fd_grad(f_b, b.copy())
        gi, gt = backward(1.0, a, b, param, "sum")
    np.testing.assert_allclose(gi, want_a, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gt, want_b, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("loss,grad,backward,param", CASES)
def test_backward_with_upstream_gradient_matches_finite_differences(loss, grad, backward, param):
    """For 'none', backward(g) is the gradient of sum(g * loss)."""
    a, b = away_from_kinks(30, param, seed=5)
    g = np.random.default_rng(6).standard_normal(30)
    want = fd_grad(lambda x: float(np.sum(g * loss(x, b, param, "none"))), a.copy())
    gi, _ = backward(g, a, b, param, "none")
    np.testing.assert_allclose(gi, want, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("hess,grad,param", [(nbloss.smooth_l1_loss_hess_diag, nbloss.smooth_l1_loss_grad, 0.8),
                                             (nbloss.huber_loss_hess_diag, nbloss.huber_loss_grad, 0.8)])
def test_hess_diag_matches_finite_differences_of_the_gradient(hess, grad, param):
    a, b = away_from_kinks(50, param, seed=7)
    h = 1e-6
    want = (grad(a + h, b, param, "mean") - grad(a - h, b, param, "mean")) / (2 * h)
    np.testing.assert_allclose(hess(a, b, param, "mean"), want, rtol=1e-6, atol=1e-9)
