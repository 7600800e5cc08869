"""Bad input raises a clear exception naming the argument, and changes nothing: not the
inputs, not out=."""

import numpy as np
import pytest

import nbloss
from conftest import run_python
from nbloss import fvcore

LOSSES = [(nbloss.smooth_l1_loss, "beta"), (nbloss.huber_loss, "delta")]
ALL = [nbloss.smooth_l1_loss, nbloss.smooth_l1_loss_grad, nbloss.smooth_l1_loss_value_and_grad,
       nbloss.huber_loss, nbloss.huber_loss_grad, nbloss.huber_loss_value_and_grad,
       nbloss.smooth_l1_loss_hess_diag, nbloss.huber_loss_hess_diag]


@pytest.fixture
def arrays():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(50), rng.standard_normal(50)
    return a, b, a.copy(), b.copy()


def untouched(arrays):
    a, b, a0, b0 = arrays
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


@pytest.mark.parametrize("beta,exc,match", [(-1.0, ValueError, r"negative values for beta \(got beta=-1.0\)"),
                                            (float("nan"), ValueError, "beta must not be NaN"),
                                            ("1", TypeError, "beta must be a real number"),
                                            (None, TypeError, "beta must be a real number")])
def test_bad_beta(arrays, beta, exc, match):
    for f in (nbloss.smooth_l1_loss, nbloss.smooth_l1_loss_grad, nbloss.smooth_l1_loss_value_and_grad):
        with pytest.raises(exc, match=match):
            f(arrays[0], arrays[1], beta)
    with pytest.raises(exc, match=match):
        nbloss.SmoothL1Loss(beta=beta)
    with pytest.raises(exc, match=match):
        fvcore.smooth_l1_loss(arrays[0], arrays[1], beta)
    untouched(arrays)


@pytest.mark.parametrize("delta,exc,match", [(0.0, ValueError, r"non-positive values for delta \(got delta=0.0\)"),
                                             (-2, ValueError, "non-positive values for delta"),
                                             (float("nan"), ValueError, "delta must not be NaN"),
                                             ([1.0], TypeError, "delta must be a real number")])
def test_bad_delta(arrays, delta, exc, match):
    for f in (nbloss.huber_loss, nbloss.huber_loss_grad, nbloss.huber_loss_value_and_grad):
        with pytest.raises(exc, match=match):
            f(arrays[0], arrays[1], delta)
    with pytest.raises(exc, match=match):
        nbloss.HuberLoss(delta=delta)
    untouched(arrays)


@pytest.mark.parametrize("reduction", ["avg", "MEAN", "", None, 1])
def test_bad_reduction(arrays, reduction):
    for f in ALL:
        with pytest.raises(ValueError, match="is not a valid value for reduction"):
            f(arrays[0], arrays[1], 1.0, reduction)
    with pytest.raises(ValueError, match="is not a valid value for reduction"):
        nbloss.SmoothL1Loss(reduction=reduction)
    untouched(arrays)


@pytest.mark.parametrize("bad,what", [(np.ones(50, np.complex128), "complex128"),
                                      (np.array([1.0, None] * 25, dtype=object), "object"),
                                      (np.array(["1.0"] * 50), "<U3")]
                         + ([(np.ones(50, np.longdouble), str(np.dtype(np.longdouble)))]
                            if np.dtype(np.longdouble).itemsize > 8 else []))
def test_bad_dtype(arrays, bad, what):
    # integer and bool arrays beside a float operand are accepted (torch's rule):
    # test_torch_parity.test_integer_target_takes_the_float_input_dtype
    for f in ALL:
        with pytest.raises(TypeError, match=f"input must be a float16, float32 or float64 array "
                                            rf"\(or an integer or bool one beside a float operand\), got dtype {what}"):
            f(bad, arrays[1])
        with pytest.raises(TypeError, match=f"target must be .*got dtype {what}"):
            f(arrays[0], bad)
        with pytest.raises(TypeError, match=f"weight must be .*got dtype {what}"):
            f(arrays[0], arrays[1], weight=bad)
    untouched(arrays)


def test_python_bool_and_two_integer_arrays(arrays):
    with pytest.raises(TypeError, match=r"input is a Python bool: pass a number, or an array \(np.asarray\(True\)"):
        nbloss.smooth_l1_loss(True, 1.0)
    for f in ALL:
        with pytest.raises(TypeError, match=r"input \(int64\) and target \(bool\) are both integer or bool "
                                            r"arrays; the loss needs a floating-point input or target"):
            f(np.arange(50), np.ones(50, bool), weight=arrays[0])
    untouched(arrays)


def test_shapes_that_do_not_broadcast(arrays):
    for f in ALL:
        with pytest.raises(ValueError, match=r"input of shape \(50,\) and target of shape \(3,\) do not broadcast"):
            f(arrays[0], np.zeros(3))
        with pytest.raises(ValueError, match=r"weight of shape \(3,\) does not broadcast to the loss shape \(50,\)"):
            f(arrays[0], arrays[1], weight=np.ones(3))
    # a weight may not enlarge the loss
    with pytest.raises(ValueError, match="weight of shape"):
        nbloss.huber_loss(arrays[0], arrays[1], weight=np.ones((2, 50)))
    untouched(arrays)


def test_bad_out_is_refused_and_left_untouched(arrays):
    a, b = arrays[:2]
    cases = [
        (np.zeros(49), ValueError, r"out has shape \(49,\), expected \(50,\)"),
        (np.zeros(50, np.float32), TypeError, "out has dtype float32, expected float64"),
        ([0.0] * 50, TypeError, "out must be a numpy.ndarray"),
    ]
    for f in (nbloss.smooth_l1_loss, nbloss.huber_loss_grad, nbloss.huber_loss_value_and_grad):
        reduction = "none" if f is nbloss.smooth_l1_loss else "mean"
        for out, exc, match in cases:
            before = np.array(out, copy=True)
            with pytest.raises(exc, match=match):
                f(a, b, 1.0, reduction, out=out)
            np.testing.assert_array_equal(out, before)
        ro = np.zeros(50)
        ro.flags.writeable = False
        with pytest.raises(ValueError, match="out is read-only"):
            f(a, b, 1.0, reduction, out=ro)
        for alias, name in ((a, "input"), (b, "target")):
            with pytest.raises(ValueError, match=f"out shares memory with {name}"):
                f(a, b, 1.0, reduction, out=alias)
    with pytest.raises(ValueError, match="out= is only for reduction='none', not 'mean'"):
        nbloss.smooth_l1_loss(a, b, out=np.zeros(50))
    # a later check failing must not leave a half-written out either
    out = np.full(50, 7.0)
    with pytest.raises(ValueError, match="weight of shape"):
        nbloss.smooth_l1_loss(a, b, 1.0, "none", weight=np.ones(3), out=out)
    assert (out == 7.0).all()
    untouched(arrays)


def test_bad_grad_output(arrays):
    a, b = arrays[:2]
    with pytest.raises(ValueError, match=r"grad_output of a 'mean' loss must be a scalar, got shape \(50,\)"):
        nbloss.smooth_l1_loss_backward(np.ones(50), a, b)
    with pytest.raises(ValueError, match=r"grad_output of shape \(3,\) does not broadcast"):
        nbloss.huber_loss_backward(np.ones(3), a, b, reduction="none")
    with pytest.raises(TypeError, match="grad_output must be a float16, float32 or float64 array"):
        nbloss.huber_loss_backward(np.ones(50, complex), a, b, reduction="none")
    crit = nbloss.HuberLoss()
    with pytest.raises(RuntimeError, match=r"backward\(\) called before a forward call"):
        crit.backward()
    crit(a, b)
    with pytest.raises(ValueError, match="must be a scalar"):
        crit.backward(np.ones(50))
    untouched(arrays)


class FakeDeviceArray:
    __cuda_array_interface__ = {"shape": (50,), "typestr": "<f8", "data": (0, False), "version": 3}


def test_device_arrays_without_a_gpu_get_a_clear_error(arrays):
    cuda = pytest.importorskip("numba.cuda")
    if cuda.is_available():
        pytest.skip("a CUDA GPU (or the simulator) is available here")
    with pytest.raises(RuntimeError, match="no usable CUDA GPU"):
        nbloss.smooth_l1_loss(FakeDeviceArray(), FakeDeviceArray())


def test_device_arrays_without_numba_cuda_get_a_clear_error():
    out = run_python("""
import sys, importlib.abc
class NoCuda(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.startswith(("numba.cuda", "numba_cuda")):
            raise ImportError(f"No module named {name!r}")
sys.meta_path.insert(0, NoCuda())
import numpy as np, nbloss
class FakeDeviceArray:
    __cuda_array_interface__ = {"shape": (5,), "typestr": "<f8", "data": (0, False), "version": 3}
print(nbloss.huber_loss(np.ones(5), np.zeros(5)))  # the CPU path needs no CUDA
try:
    nbloss.huber_loss(FakeDeviceArray(), 0.0)
except RuntimeError as exc:
    print(exc)
""")
    assert out.startswith("0.5\n")
    assert "numba's CUDA target cannot be loaded" in out and "nbloss[cuda12]" in out


def test_host_operands_refuse_a_device_grad_output(arrays):
    with pytest.raises(TypeError, match="grad_output is a CUDA device array"):
        nbloss.smooth_l1_loss_backward(FakeDeviceArray(), arrays[0], arrays[1], reduction="none")


def test_stream_is_only_for_device_arrays(arrays):
    with pytest.raises(ValueError, match="stream= is only for CUDA device arrays"):
        nbloss.huber_loss(arrays[0], arrays[1], stream=0)


def test_inputs_are_never_modified_on_success():
    rng = np.random.default_rng(1)
    a, b, w = rng.standard_normal((30, 4)), rng.standard_normal(4), rng.random((30, 4))
    a32 = a.astype(np.float32)
    keep = [x.copy() for x in (a, b, w, a32)]
    for f in ALL:
        with pytest.warns(UserWarning):
            f(a, b, 1.0, "none", weight=w)
            f(a32, b, 0.5, "mean")
    nbloss.smooth_l1_loss_backward(np.ones((30, 4)), a, a32, 1.0, "none", weight=w)
    crit = nbloss.SmoothL1Loss(reduction="sum")
    crit(a, a32)
    gi, gt = crit.backward(2.0)
    gi[:] = 99  # the caller owns the gradients it gets
    for x, x0 in zip((a, b, w, a32), keep):
        np.testing.assert_array_equal(x, x0)


HUGE = 2**1024  # one past float64's range


def test_python_int_beyond_float64_is_named(arrays):
    a, b = arrays[:2]
    for f in ALL:
        for kw, name in (({"input": HUGE}, "input"), ({"target": HUGE}, "target"),
                         ({"weight": HUGE}, "weight"), ({"target": [1.0, HUGE] * 25}, "target")):
            args = {"input": a, "target": b, **kw}
            weight = args.pop("weight", None)
            with pytest.raises(OverflowError, match=f"{name} .*beyond float64's range"):
                f(args["input"], args["target"], weight=weight)
    with pytest.raises(OverflowError, match=r"smooth_l1_loss: beta \(a 1025-bit int\) is beyond float64's range"):
        nbloss.smooth_l1_loss(a, b, beta=HUGE)
    with pytest.raises(OverflowError, match=r"huber_loss: delta \(a 1025-bit int\) is beyond float64's range"):
        nbloss.huber_loss(a, b, delta=HUGE)
    with pytest.raises(OverflowError, match=r"grad_output \(a 1025-bit int\) is beyond float64's range"):
        nbloss.huber_loss_backward(HUGE, a, b)
    # within float64 (a list of ints past 64 bits is an object array to NumPy): float64
    assert nbloss.smooth_l1_loss([2**64], [0], reduction="sum") == 2.0**64 - 0.5
    untouched(arrays)


def test_ragged_list_is_named(arrays):
    for f in ALL:
        with pytest.raises(ValueError, match=r"target is a ragged nested list: its rows differ in length"):
            f(np.zeros((2, 2)), [[1.0, 2.0], [3.0]])
        with pytest.raises(ValueError, match=r"input is a ragged nested tuple"):
            f(([1.0], [2.0, 3.0]), 0.0)
    # a list with None is not a list of numbers: refused, not read as NaN
    with pytest.raises(TypeError, match="got dtype object"):
        nbloss.huber_loss(arrays[0][:2], [1.0, None])
    untouched(arrays)


def test_dask_array_of_unknown_chunk_sizes(arrays):
    da = pytest.importorskip("dask.array")
    a, b = arrays[:2]
    x = da.from_array(a, chunks=10)
    unknown = x[x > 0]
    assert np.isnan(unknown.shape[0])
    for f in ALL:
        with pytest.raises(ValueError, match=r"input is a Dask array of unknown chunk sizes \(shape \(nan,\), "
                                             r"as after boolean indexing\): call input.compute_chunk_sizes\(\) first"):
            f(unknown, 0.0)
        with pytest.raises(ValueError, match="target is a Dask array of unknown chunk sizes"):
            f(x, unknown)
        with pytest.raises(ValueError, match="weight is a Dask array of unknown chunk sizes"):
            f(x, b, weight=unknown)
    with pytest.raises(ValueError, match="grad_output is a Dask array of unknown chunk sizes"):
        nbloss.huber_loss_backward(unknown, x, b, reduction="none")
    known = unknown.compute_chunk_sizes()  # what the message says to do
    np.testing.assert_allclose(nbloss.huber_loss(known, 0.0).compute(), nbloss.huber_loss(a[a > 0], 0.0))
    untouched(arrays)


@pytest.mark.parametrize("flags", [{"size_average": 0.5}, {"reduce": 0.5}, {"size_average": 1},
                                   {"reduce": "sum"}, {"size_average": np.float64(0.0)}])
def test_non_bool_legacy_flag_is_a_type_error(arrays, flags):
    """torch reads any value's truth: nn.SmoothL1Loss(0.5) is size_average=0.5, beta=1.0,
    a silent 'mean' where beta 0.5 was meant. nbloss refuses all but bools and None,
    pointing at the keyword that was meant."""
    with pytest.raises(TypeError, match=r"SmoothL1Loss: \w+ must be a bool or None, got .*"
                                        r"reduction='none', 'mean' or 'sum'"):
        nbloss.SmoothL1Loss(**flags)
    for f in (nbloss.smooth_l1_loss, nbloss.smooth_l1_loss_grad,
              nbloss.smooth_l1_loss_value_and_grad):
        with pytest.raises(TypeError, match=r"smooth_l1_loss: \w+ must be a bool or None"):
            f(*arrays, **flags)
    with pytest.raises(TypeError, match="must be a bool or None"):
        nbloss.smooth_l1_loss_backward(1.0, *arrays, **flags)


def test_a_number_first_is_size_average_and_says_so():
    with pytest.raises(TypeError, match=r"size_average must be a bool or None, got 0\.5 \(torch's "
                                        r"deprecated flag, the first positional argument\); for a "
                                        r"beta of 0\.5 pass beta=0\.5"):
        nbloss.SmoothL1Loss(0.5)


@pytest.mark.parametrize("size_average,reduce,expected",
                         [(False, None, "sum"), (None, False, "none"), (np.True_, True, "mean")])
def test_bool_legacy_flags_keep_torchs_mapping_and_warning(size_average, reduce, expected):
    with pytest.warns(UserWarning, match=f"please use reduction='{expected}' instead"):
        crit = nbloss.SmoothL1Loss(size_average, reduce)
    assert crit.reduction == expected


def test_a_number_first_in_huber_loss_is_a_type_error_pointing_at_delta():
    with pytest.raises(TypeError, match=r"reduction must be 'none', 'mean' or 'sum', got 0\.5 .*"
                                        r"pass delta=0\.5"):
        nbloss.HuberLoss(0.5)
    with pytest.raises(ValueError, match="is not a valid value for reduction"):
        nbloss.HuberLoss("avg")
