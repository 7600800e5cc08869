"""A small multilayer perceptron trained with a plain NumPy loop and nbloss's SmoothL1Loss.

No autograd: the network's backward pass is written out by hand, and the loss's gradient
comes from ``SmoothL1Loss.backward()``. Smooth L1 keeps the fit to ``sin(x)`` from being
dragged away by the outliers in the data, which a squared loss would chase.

    python examples/mlp_numpy.py
"""

import numpy as np

import nbloss


def make_data(n=512, outlier_fraction=0.1, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-3, 3, (n, 1))
    y = np.sin(x) + rng.normal(0, 0.05, (n, 1))
    outliers = rng.random(n) < outlier_fraction
    y[outliers] += rng.uniform(3, 6, (outliers.sum(), 1))
    return x, y


def init(sizes, seed=0, dtype=np.float64):
    """[(W, b), ...] for layers of the given widths (Glorot-uniform weights)."""
    rng = np.random.default_rng(seed)
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        limit = np.sqrt(6 / (fan_in + fan_out))
        params.append((rng.uniform(-limit, limit, (fan_in, fan_out)).astype(dtype),
                       np.zeros(fan_out, dtype)))
    return params


def forward(params, x):
    """tanh hidden layers, linear output; returns the output and what backward needs."""
    activations = [x]
    for i, (W, b) in enumerate(params):
        z = activations[-1] @ W + b
        activations.append(z if i == len(params) - 1 else np.tanh(z))
    return activations[-1], activations


def backward(params, activations, grad_out):
    """d loss / d (W, b) of every layer, from d loss / d output."""
    grads = [None] * len(params)
    g = grad_out
    for i in range(len(params) - 1, -1, -1):
        W, _ = params[i]
        grads[i] = (activations[i].T @ g, g.sum(axis=0))
        if i:
            g = (g @ W.T) * (1 - activations[i] ** 2)  # through tanh
    return grads


class Adam:
    def __init__(self, params, lr=1e-2, betas=(0.9, 0.999), eps=1e-8):
        self.lr, self.betas, self.eps, self.t = lr, betas, eps, 0
        self.m = [tuple(np.zeros_like(p) for p in layer) for layer in params]
        self.v = [tuple(np.zeros_like(p) for p in layer) for layer in params]

    def step(self, params, grads):
        self.t += 1
        b1, b2 = self.betas
        for layer, grad, m, v in zip(params, grads, self.m, self.v):
            for p, g, mi, vi in zip(layer, grad, m, v):
                mi[...] = b1 * mi + (1 - b1) * g
                vi[...] = b2 * vi + (1 - b2) * g * g
                m_hat, v_hat = mi / (1 - b1 ** self.t), vi / (1 - b2 ** self.t)
                p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def train(steps=600, hidden=32, beta=0.5, lr=1e-2, seed=0, log_every=100):
    x, y = make_data(seed=seed)
    params = init([1, hidden, hidden, 1], seed=seed)
    criterion = nbloss.SmoothL1Loss(beta=beta)
    optimizer = Adam(params, lr=lr)
    history = []
    for step in range(steps):
        out, activations = forward(params, x)
        loss = criterion(out, y)           # forward: loss and gradient in one pass
        grad_out, _ = criterion.backward()  # d loss / d out (and d loss / d y)
        optimizer.step(params, backward(params, activations, grad_out))
        history.append(float(loss))
        if log_every and step % log_every == 0:
            print(f"step {step:4d}  smooth L1 loss {float(loss):.4f}")
    return params, history


def loss_and_grads(params, x, y, beta):
    """The training step's loss and parameter gradients, for checking against finite
    differences."""
    criterion = nbloss.SmoothL1Loss(beta=beta)
    out, activations = forward(params, x)
    loss = criterion(out, y)
    grad_out, _ = criterion.backward()
    return float(loss), backward(params, activations, grad_out)


if __name__ == "__main__":
    params, history = train()
    x, y = make_data(seed=1)
    clean = np.abs(y - np.sin(x)) < 1
    out, _ = forward(params, x)
    print(f"loss {history[0]:.4f} -> {history[-1]:.4f}; on fresh data, mean |f(x) - sin(x)| "
          f"over the non-outliers = {np.abs(out - np.sin(x))[clean].mean():.4f}")
