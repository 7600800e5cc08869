"""One value broadcast over the loss (a Python number, a NumPy scalar, a 0-d or
one-element array, as target, input or weight), and an operand broadcast along some axes
(a ``(rows, 1)`` or ``(1, cols)`` target, weight, input or upstream gradient, a
``(1, C, 1, 1)`` weight or ``(N, 1, H, W)`` target of an ``(N, C, H, W)`` loss) or laid
out with strides (a column slice), are read in place by the kernels: the same bits as the same
call with the operand materialised, and no allocation of the loss's size. (Where two NaNs with different payloads meet, which payload survives may differ:
LLVM orders a product's operands differently when one is a loop constant. NaN stays NaN;
IEEE 754 leaves the payload to the implementation, and torch does not keep it either.)"""

import tracemalloc
import warnings

import numpy as np
import pytest

import nbloss

FUNCTIONS = [nbloss.smooth_l1_loss, nbloss.huber_loss, nbloss.smooth_l1_loss_grad,
             nbloss.huber_loss_grad, nbloss.smooth_l1_loss_value_and_grad,
             nbloss.huber_loss_value_and_grad, nbloss.smooth_l1_loss_hess_diag,
             nbloss.huber_loss_hess_diag]
# on both sides of the threading threshold, with a partial last block
SIZES = [0, 1, 2, 1000, 300_001]
ONE_VALUES = [0.0, 0.3, 1, -7, 2 ** 60, float("nan"), float("inf"), np.float32(0.5),
              np.float64(0.25), np.zeros(1, np.float32), np.full((1, 1), 2.0)]


def materialised(value, like):
    """``value`` broadcast with ``like`` as a full array, in the dtype NumPy gives
    ``like - value`` (a Python number takes the array's dtype)."""
    dtype = like.dtype if type(value) in (int, float) else np.result_type(like, np.asarray(value))
    shape = np.broadcast_shapes(like.shape, np.shape(value))
    return np.array(np.broadcast_to(np.asarray(value, dtype), shape))


def same_bits(x, y):
    x = x if isinstance(x, tuple) else (x,)
    y = y if isinstance(y, tuple) else (y,)
    for u, w in zip(x, y, strict=True):
        u, w = np.asarray(u), np.asarray(w)
        assert u.dtype == w.dtype and u.shape == w.shape
        assert u.tobytes() == w.tobytes()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_one_value_target_is_the_materialised_calls_bits(dtype, n, reduction):
    a = np.random.default_rng(n).standard_normal(n).astype(dtype) * 3
    for value in ONE_VALUES:
        full = materialised(value, a)
        for f in FUNCTIONS:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's shape warning for the 1-element arrays
                same_bits(f(a, value, 0.5, reduction), f(a, full, 0.5, reduction))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_value_input_and_weight_are_the_materialised_calls_bits(dtype):
    b = np.random.default_rng(3).standard_normal(5000).astype(dtype)
    w = np.random.default_rng(4).random(5000).astype(dtype)
    for reduction in ("none", "mean", "sum"):
        for f in (nbloss.smooth_l1_loss, nbloss.huber_loss):
            same_bits(f(0.5, b, 1.0, reduction), f(materialised(0.5, b), b, 1.0, reduction))
        # a number as input: its gradient is summed over the loss's elements
        grad = nbloss.huber_loss_grad(0.5, b, 1.0, reduction)
        full = nbloss.huber_loss_grad(materialised(0.5, b), b, 1.0, reduction)
        assert np.shape(grad) == ()
        np.testing.assert_allclose(grad, full.sum(dtype=np.float64), rtol=1e-5)
        for f in FUNCTIONS:
            same_bits(f(b, 0.0, 1.0, reduction, weight=dtype(2)),
                      f(b, np.zeros_like(b), 1.0, reduction, weight=np.full_like(b, 2)))
            same_bits(f(b, 0.1, 1.0, reduction, weight=w), f(b, materialised(0.1, b), 1.0,
                                                            reduction, weight=w))


def test_backward_of_a_number_target_sums_its_gradient():
    a = np.random.default_rng(5).standard_normal(4000)
    grad_input, grad_target = nbloss.smooth_l1_loss_backward(np.float64(1), a, 0.25)
    want_input, want_full = nbloss.smooth_l1_loss_backward(np.float64(1), a, np.full_like(a, 0.25))
    np.testing.assert_array_equal(grad_input, want_input)
    assert np.shape(grad_target) == ()
    np.testing.assert_allclose(grad_target, want_full.sum(), rtol=1e-12)


@pytest.mark.parametrize("call", [
    lambda a: nbloss.smooth_l1_loss(a, 0.0),
    lambda a: nbloss.huber_loss(a, np.float32(1.5), reduction="sum"),
    lambda a: nbloss.smooth_l1_loss(a, 0.0, weight=np.float32(2.0)),
], ids=["number", "numpy-scalar", "scalar-weight"])
def test_a_one_value_mean_allocates_nothing_of_the_losss_size(call):
    a = np.random.default_rng(6).standard_normal(10 ** 6).astype(np.float32)
    call(a)  # compiled and cached before measuring
    tracemalloc.start()
    try:
        call(a)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 0.01 * a.nbytes, peak


# -- operands broadcast along some axes ------------------------------------------------------
# (rows, cols) losses on both sides of the threading threshold, rows that end inside a
# reduction block and rows shorter than a SIMD vector
SHAPES = [(3, 5), (7, 3), (1000, 100), (3001, 7), (150, 1000)]


def partial_operands(shape, dtype, rng):
    """Operands broadcast along some axes of ``shape`` (rows, cols), or laid out with
    strides, with their names."""
    rows, cols = shape
    yield "(rows, 1)", rng.standard_normal((rows, 1)).astype(dtype)
    yield "(1, cols)", rng.standard_normal((1, cols)).astype(dtype)
    yield "(cols,)", rng.standard_normal(cols).astype(dtype)
    yield "column slice", rng.standard_normal((rows, cols + 3)).astype(dtype)[:, 2:cols + 2]
    yield "reversed rows", rng.standard_normal((rows, 1)).astype(dtype)[::-1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_a_partly_broadcast_target_or_weight_is_the_materialised_calls_bits(dtype, shape):
    rng = np.random.default_rng(sum(shape))
    a = (rng.standard_normal(shape) * 3).astype(dtype)
    a.flat[::97] = np.nan
    for name, op in partial_operands(shape, dtype, rng):
        full = np.array(np.broadcast_to(op, shape))
        for reduction in ("none", "mean", "sum"):
            for f in FUNCTIONS:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # torch's shape warning
                    same_bits(f(a, op, 0.5, reduction), f(a, full, 0.5, reduction))
                    w = np.abs(op)
                    same_bits(f(a, 0.25, 0.5, reduction, weight=w),
                              f(a, 0.25, 0.5, reduction, weight=np.abs(full)))


def summed_to(grad, shape):
    """``grad`` summed over the axes along which an operand of ``shape`` was broadcast."""
    lead = grad.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape)
                                      if d == 1 and grad.shape[lead + i] != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7, 3), (3001, 7), (150, 1000)], ids=str)
def test_a_partly_broadcast_input_and_grad_output(dtype, shape):
    rng = np.random.default_rng(sum(shape) + 1)
    b = rng.standard_normal(shape).astype(dtype)
    for name, op in partial_operands(shape, dtype, rng):
        full = np.array(np.broadcast_to(op, shape))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for reduction in ("none", "mean", "sum"):
                same_bits(nbloss.huber_loss(op, b, 1.5, reduction), nbloss.huber_loss(full, b, 1.5, reduction))
                # the input's gradient, summed back to its shape
                same_bits(nbloss.huber_loss_grad(op, b, 1.5, reduction),
                          summed_to(nbloss.huber_loss_grad(full, b, 1.5, reduction), op.shape))
            # an upstream gradient broadcast along an axis of a 'none' loss
            a = rng.standard_normal(shape).astype(dtype)
            same_bits(nbloss.smooth_l1_loss_backward(op, a, b, 0.5, "none"),
                      nbloss.smooth_l1_loss_backward(full, a, b, 0.5, "none"))


# losses whose broadcasts need three axes (read in place as 3-D views), four (4-D views)
# and five (copied): small, and past the threading threshold; with the operand's shape
SEVERAL_AXES = [((4, 5, 6), (4, 1, 6)), ((4, 5, 6), (1, 5, 1)), ((3, 2, 7, 11), (1, 2, 1, 1)),
                ((2, 3, 40, 50), (2, 1, 40, 50)), ((16, 3, 48, 48), (1, 3, 1, 1)),
                ((8, 4, 64, 48), (8, 1, 64, 48)), ((5, 6, 7, 8), (5, 1, 7, 1)),
                ((2, 3, 40, 50), (1, 3, 1, 50)), ((4, 6, 64, 60), (4, 1, 64, 1)),
                ((2, 3, 4, 5, 6), (2, 1, 4, 1, 6))]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, op_shape", SEVERAL_AXES, ids=str)
def test_a_broadcast_along_several_axes_is_the_materialised_calls_bits(dtype, shape, op_shape):
    rng = np.random.default_rng(sum(shape))
    a = (rng.standard_normal(shape) * 3).astype(dtype)
    a.flat[::97] = np.nan
    op = rng.standard_normal(op_shape).astype(dtype)
    full = np.array(np.broadcast_to(op, shape))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's shape warning
        for reduction in ("none", "mean", "sum"):
            for f in FUNCTIONS:
                same_bits(f(a, op, 0.5, reduction), f(a, full, 0.5, reduction))
                same_bits(f(a, 0.25, 0.5, reduction, weight=np.abs(op)),
                          f(a, 0.25, 0.5, reduction, weight=np.abs(full)))
            same_bits(nbloss.huber_loss_grad(op, a, 1.5, reduction),
                      summed_to(nbloss.huber_loss_grad(full, a, 1.5, reduction), op_shape))
        same_bits(nbloss.smooth_l1_loss_backward(op, a, 0.0, 0.5, "none"),
                  nbloss.smooth_l1_loss_backward(full, a, 0.0, 0.5, "none"))


@pytest.mark.parametrize("shape, call", [
    ((10 ** 4, 100), lambda a, rng: nbloss.smooth_l1_loss(a, rng((10 ** 4, 1)))),
    ((10 ** 4, 100), lambda a, rng: nbloss.huber_loss(a, rng((1, 100)), reduction="sum")),
    ((10 ** 4, 100), lambda a, rng: nbloss.smooth_l1_loss(a, 0.0, weight=rng((10 ** 4, 1)))),
    ((16, 4, 125, 125), lambda a, rng: nbloss.huber_loss(a, 0.0, weight=rng((1, 4, 1, 1)))),
    ((16, 4, 125, 125), lambda a, rng: nbloss.huber_loss(a, rng((16, 1, 125, 125)))),
    ((16, 4, 125, 125), lambda a, rng: nbloss.huber_loss(a, 0.0, weight=rng((1, 4, 1, 125)))),
], ids=["(rows, 1) target", "(1, cols) target", "(rows, 1) weight",
        "(1, C, 1, 1) weight", "(N, 1, H, W) target", "(1, C, 1, W) weight"])
def test_a_partly_broadcast_mean_allocates_nothing_of_the_losss_size(shape, call):
    generator = np.random.default_rng(9)
    a = generator.standard_normal(shape).astype(np.float32)
    operands = {}

    def rng(op_shape):  # the same operand on both calls
        if op_shape not in operands:
            operands[op_shape] = generator.standard_normal(op_shape).astype(np.float32)
        return operands[op_shape]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call(a, rng)  # compiled and cached before measuring
        tracemalloc.start()
        try:
            call(a, rng)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak <= 0.01 * a.nbytes, peak


def test_backward_of_a_broadcast_grad_output_allocates_only_the_gradients():
    a = np.random.default_rng(11).standard_normal((10 ** 4, 100)).astype(np.float32)
    b = np.zeros_like(a)
    go = np.ones((10 ** 4, 1), np.float32)
    nbloss.huber_loss_backward(go, a, b, reduction="none")
    tracemalloc.start()
    try:
        nbloss.huber_loss_backward(go, a, b, reduction="none")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # grad_input and grad_target, each of the loss's size, and nothing more of that size
    assert peak <= 2.01 * a.nbytes, peak


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("go_shape", [(1, 1), (1,), ()], ids=str)
def test_a_one_element_grad_output_of_any_shape_is_one_value(dtype, go_shape):
    """A 'none' loss's upstream gradient of one element broadcasts like a scalar,
    whatever its shape: the functions' and the criteria's backward give the bits of the
    upstream gradient materialised."""
    rng = np.random.default_rng(12)
    a = rng.standard_normal((40, 30)).astype(dtype)
    b = rng.standard_normal((40, 30)).astype(dtype)
    go = np.full(go_shape, 2.5, dtype)
    full = np.full(a.shape, 2.5, dtype)
    for backward, crit in ((nbloss.smooth_l1_loss_backward, nbloss.SmoothL1Loss),
                           (nbloss.huber_loss_backward, nbloss.HuberLoss)):
        want = backward(full, a, b, 0.5, "none")
        same_bits(backward(go, a, b, 0.5, "none"), want)
        criterion = crit(reduction="none")
        criterion(a, b)
        same_bits(criterion.backward(go), backward(full, a, b, 1.0, "none"))
