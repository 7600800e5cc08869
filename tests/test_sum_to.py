"""The host's sum of a gradient back to a broadcast operand's shape (``_sum_to``): NumPy's
sum to the bit, in every layout of summed and kept axes, on both sides of the threading
threshold, and through the public backward."""

import itertools
import warnings

import numpy as np
import pytest

import nbloss
from nbloss import _sum_to


def numpy_sum_to(full, shape):
    """The reference: NumPy's sum over the axes along which ``shape`` is broadcast (none:
    ``full`` itself, reshaped)."""
    lead = full.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape)
                                      if d == 1 and full.shape[lead + i] != 1)
    return full.sum(axis=axes, keepdims=True).reshape(shape) if axes else full.reshape(shape)


def assert_numpys_bits(got, want):
    """The same dtype, shape and bits; NaN where NumPy has NaN (which NaN may differ)."""
    assert got.dtype == want.dtype and got.shape == want.shape
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    assert got[~nan].tobytes() == want[~nan].tobytes()


def operand_shapes(shape):
    """Every shape that broadcasts to ``shape``: each axis kept or 1, leading axes dropped."""
    for mask in itertools.product([False, True], repeat=len(shape)):
        reduced = tuple(1 if m else d for m, d in zip(mask, shape))
        for lead in range(len(shape) + 1):
            yield reduced[lead:]


SHAPES = [(7,), (300,), (5, 100), (100, 5), (3, 200), (1000, 3), (6, 130), (130, 6),
          (2, 3, 50), (4, 1, 9), (3, 5, 7, 11), (2, 1, 130, 3), (2, 3, 4, 5, 6), (3, 1000),
          (2, 5000), (17, 1031)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_every_layout_sums_to_numpys_bits(dtype, shape):
    """Values over seven decades (so the order of additions shows in the bits), -0.0
    (a sum starts at +0.0), infinities and NaN; the kernels run also where the host
    leaves the sum to NumPy, which is as fast there."""
    rng = np.random.default_rng(sum(shape))
    for op_shape in operand_shapes(shape):
        full = (rng.standard_normal(shape) * 10.0 ** rng.integers(-3, 4, shape)).astype(dtype)
        full.flat[rng.integers(0, full.size, 3)] = -0.0
        if full.size > 50:
            full.flat[rng.integers(0, full.size, 2)] = rng.choice([np.inf, -np.inf, np.nan], 2)
        negative_zeros = np.full(shape, -0.0, dtype)
        for array in (full, negative_zeros):
            got = _sum_to.sum_to_shape(array, op_shape, anywhere=True)
            if got is None:  # nothing to add, or five axes alternating into too many groups
                padded = (1,) * (len(shape) - len(op_shape)) + op_shape
                assert len(shape) >= 5 or all(p == d or d == 1 for p, d in zip(padded, shape))
                continue
            with np.errstate(invalid="ignore"):
                assert_numpys_bits(got, numpy_sum_to(array, op_shape))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, op_shape", [((5000, 100), (5000, 1)), ((3, 40000, 3), (3, 1, 3)),
                                             ((40, 3, 2000), (40, 1, 2000)), ((4000, 300), (1, 300)),
                                             ((200, 4000), (200, 1))], ids=str)
def test_past_the_threading_threshold(dtype, shape, op_shape):
    """Large enough for the threaded kernels where the outermost axis is kept (the
    serial ones where it is summed): the same bits."""
    full = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    assert full.nbytes >= nbloss._cpu.PARALLEL_MIN_BYTES
    assert_numpys_bits(_sum_to.sum_to_shape(full, op_shape), numpy_sum_to(full, op_shape))


def test_other_arrays_are_left_to_numpy():
    """Not C-contiguous, float16, more axes than the kernels loop over, empty, and
    (serial) one long summed run or short ones over a summed outer axis: None (the host
    then sums with NumPy), as where only axes of length 1 differ."""
    rng = np.random.default_rng(4)
    full = rng.standard_normal((60, 80))
    for array, shape in [(full[:, ::2], (60, 1)), (full.astype(np.float16), (1, 80)),
                         (rng.standard_normal((2, 3, 2, 3, 2, 3)), (1, 3, 1, 3, 1, 3)),
                         (np.zeros((0, 5)), (1, 5)), (full, ()), (full, (1, 1)),
                         (rng.standard_normal((100, 3, 3)), (1, 3, 1))]:
        assert _sum_to.sum_to_shape(array, shape) is None
    lead = rng.standard_normal((1, 5, 4))
    assert _sum_to.sum_to_shape(lead, (5, 4)) is None  # NumPy's sum: -0.0 to +0.0


def test_a_criterions_backward_never_hands_out_its_saved_gradient():
    """Where nothing is summed (the input lacks the loss's leading length-1 axes, or
    has its shape), backward() returns a new array, not a view of what the next
    forward overwrites; and -0.0 becomes +0.0 as in NumPy's sum over the leading axis."""
    crit = nbloss.HuberLoss()
    crit(np.array([0.5, 2.0, -3.0]), np.zeros((1, 3)))
    grad, _ = crit.backward()
    want = grad.copy()
    grad[:] = 99.0
    np.testing.assert_array_equal(crit.backward()[0], want)
    x = np.arange(200_000, dtype=np.float64) / 1e5
    crit(x, np.zeros(200_000, np.float32))
    first = crit.backward()[0]
    kept = first.copy()
    crit(x + 1.0, np.zeros(200_000, np.float32))
    np.testing.assert_array_equal(first, kept)
    grad_input = nbloss.huber_loss_backward(-1.0, np.array([1.0, 2.0]), np.array([[1.0, 2.0]]), 1.0, "sum")[0]
    assert not np.signbit(grad_input).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("target_shape", [(3000, 1), (1, 100), (100,), (1, 1)], ids=str)
def test_backward_sums_a_broadcast_targets_gradient_as_numpy(dtype, target_shape):
    """grad_target of a broadcast target: minus NumPy's sum of the materialised call's
    gradient, to the bit (3e5 elements: the threaded kernels)."""
    rng = np.random.default_rng(5)
    a = (rng.standard_normal((3000, 100)) * 2).astype(dtype)
    b = rng.standard_normal(target_shape).astype(dtype)
    full = np.array(np.broadcast_to(b, a.shape))
    for reduction, go in (("mean", 1.5), ("none", rng.standard_normal(a.shape).astype(dtype))):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's shape warning
            grad_input, grad_target = nbloss.huber_loss_backward(go, a, b, 0.5, reduction)
        want_input, want_full = nbloss.huber_loss_backward(go, a, full, 0.5, reduction)
        assert_numpys_bits(grad_input, want_input)
        assert_numpys_bits(grad_target, -numpy_sum_to(-want_full, target_shape))
