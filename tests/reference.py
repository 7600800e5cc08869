"""Plain NumPy float64 formulas, written from the definitions, independent of nbloss.

x = input - target, z = |x|; strict `<` at the boundary (torch's convention).
"""

import numpy as np


def _x(input, target):
    return np.asarray(input, np.float64) - np.asarray(target, np.float64)


def smooth_l1(input, target, beta):
    x = _x(input, target)
    z = np.abs(x)
    if beta == 0:
        return z
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(z < beta, 0.5 * z * z / beta, z - 0.5 * beta)


def smooth_l1_grad(input, target, beta):
    x = _x(input, target)
    if beta == 0:
        return np.sign(x)
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(x) < beta, x / beta, np.sign(x))


def huber(input, target, delta):
    x = _x(input, target)
    z = np.abs(x)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.where(z < delta, 0.5 * z * z, delta * (z - 0.5 * delta))


def huber_grad(input, target, delta):
    x = _x(input, target)
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(x) < delta, x, delta * np.sign(x))


def smooth_l1_hess(input, target, beta):
    x = _x(input, target)
    if beta == 0:
        return np.zeros_like(x)
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(x) < beta, 1.0 / beta, 0.0)


def huber_hess(input, target, delta):
    x = _x(input, target)
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(x) < delta, 1.0, 0.0)


def reduce(elementwise, reduction):
    if reduction == "none":
        return elementwise
    total = elementwise.sum()
    if reduction == "sum":
        return total
    return total / elementwise.size if elementwise.size else np.nan


def sum_to(grad, shape):
    """Sum a broadcast-shape gradient back to `shape` (a loop over axes: plain, slow)."""
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, d in enumerate(shape):
        if d == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


LOSSES = {
    "smooth_l1": (smooth_l1, smooth_l1_grad, smooth_l1_hess),
    "huber": (huber, huber_grad, huber_hess),
}


def loss_and_grads(name, input, target, param, reduction, weight=None):
    """(loss, grad_input, grad_target) of the reduced, weighted loss, in float64."""
    value, grad, _ = LOSSES[name]
    shape = np.broadcast_shapes(np.shape(input), np.shape(target))
    elem = value(input, target, param)
    g = grad(input, target, param)
    if weight is not None:
        w = np.broadcast_to(np.asarray(weight, np.float64), shape)
        elem = elem * w
        g = g * w
    if reduction == "mean" and elem.size:
        g = g / elem.size
    return reduce(elem, reduction), sum_to(g, np.shape(input)), -sum_to(g, np.shape(target))
