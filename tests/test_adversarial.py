"""Adversarial arguments: odd layouts, byte orders, ndarray subclasses, aliasing between
arguments, read-only data, and the caller's arrays: never modified, never shared with
a result. References are the plain float64 formulas of tests/reference.py."""

import warnings

import numpy as np
import pytest

import nbloss
import reference as ref

RED = ["none", "mean", "sum"]
CRITERIA = [(nbloss.SmoothL1Loss, "smooth_l1", "beta"), (nbloss.HuberLoss, "huber", "delta")]


def reference_backward(name, a, b, param, reduction, grad_output):
    """(grad_input, grad_target) of the loss times ``grad_output``, in float64."""
    _, gi, gt = ref.loss_and_grads(name, a, b, param, reduction)
    if reduction == "none":
        g = ref.LOSSES[name][1](a, b, param) * grad_output
        return ref.sum_to(g, np.shape(a)), -ref.sum_to(g, np.shape(b))
    return gi * grad_output, gt * grad_output


# -- results belong to the caller ----------------------------------------------------------

@pytest.mark.parametrize("cls,name,param", CRITERIA)
@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("shapes", [((7,), (7,)), ((4, 1), (3,))])
def test_criterion_backward_returns_arrays_the_caller_owns(cls, name, param, reduction, shapes):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(shapes[0]) * 2, rng.standard_normal(shapes[1])
    crit = cls(reduction=reduction, **{param: 0.7})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's shape warning
        crit(a, b)
    go = 2.0 if reduction != "none" else rng.standard_normal(np.broadcast_shapes(*shapes))
    for upstream in (1.0, go):
        gi, gt = crit.backward(upstream)
        gi *= 0.1  # the caller's to change
        gt[...] = 42.0
        for again in (1.0, go):  # neither a later backward() nor backward(g) sees it
            want_gi, want_gt = reference_backward(name, a, b, 0.7, reduction, again)
            gi2, gt2 = crit.backward(again)
            np.testing.assert_allclose(gi2, want_gi, rtol=1e-14, atol=1e-300)
            np.testing.assert_allclose(gt2, want_gt, rtol=1e-14, atol=1e-300)
            assert not np.shares_memory(gi2, gt2)
