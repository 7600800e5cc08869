"""The CUDA backend: the parity suite on device arrays, against the reference formulas,
real torch and the CPU path; errors, interop, streams and determinism.

Runs on a real GPU, or on numba's CUDA simulator in its own process (it must be enabled
before numba loads, and it is slow: sizes stay small):

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda

Without either the module is skipped; with the simulator asked for, a missing numba-cuda
is an error, not a skip.
"""

import warnings

import numpy as np
import pytest

import nbloss
from conftest import SIMULATOR, SMALL, adversarial, cuda_or_skip, random_pair
import test_reference
import test_torch_parity as torch_suite
from test_broadcast import same_bits

cuda = cuda_or_skip()
# the simulator runs one OS thread per CUDA thread: small arrays there, larger on a GPU
SIZES = [SMALL, 300] if SIMULATOR else [SMALL, 50_001, 1_000_003]
RED = ["none", "mean", "sum"]


def to_device(x):
    """A host array, or NumPy scalar (a host 0-d array to nbloss), on the device."""
    return cuda.to_device(np.array(x, order="C")) if isinstance(x, (np.ndarray, np.generic)) else x


def to_host(result):
    if isinstance(result, tuple):
        return tuple(to_host(r) for r in result)
    if getattr(result, "__cuda_ndarray__", False):
        return result.copy_to_host()
    return result


def on_device(fn):
    """``fn`` with its NumPy arguments moved to the device and its results back."""
    def run(*args, **kw):
        args = [to_device(a) for a in args]
        kw = {k: to_device(x) for k, x in kw.items()}
        return to_host(fn(*args, **kw))
    return run


DEVICE_FUNCS = {name: tuple(on_device(f) for f in fns) for name, fns in test_reference.FUNCS.items()}


def check_all(*args, **kw):
    test_reference.check_all(*args, funcs=DEVICE_FUNCS, **kw)


# -- against the reference formulas (the CPU suite's checks) ----------------------------

@pytest.mark.parametrize("name", DEVICE_FUNCS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", RED)
def test_random(name, dtype, reduction):
    for n in SIZES:
        a, b = random_pair(n, dtype, seed=n)
        for param in test_reference.PARAMS[name]:
            check_all(name, a, b, param, reduction)


@pytest.mark.parametrize("name", DEVICE_FUNCS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", RED)
def test_adversarial(name, dtype, reduction):
    for param in test_reference.PARAMS[name]:
        a, b = adversarial(dtype, beta=param or 1.0)
        with np.errstate(all="ignore"):
            check_all(name, a, b, param, reduction)


@pytest.mark.parametrize("name", DEVICE_FUNCS)
@pytest.mark.parametrize("reduction", RED)
def test_weighted_broadcast_mixed(name, reduction):
    a, b = random_pair(SMALL, np.float64, seed=3)
    w = np.random.default_rng(4).random(SMALL)
    check_all(name, a, b, 0.7, reduction, weight=w)
    a2, b2 = a[:35].reshape(5, 7), b[:35].reshape(5, 7)
    check_all(name, a2, b2, 0.7, reduction, weight=np.linspace(0, 2, 7))
    a32, _ = random_pair(SMALL, np.float32, seed=5)
    check_all(name, a32, b, 1.0, reduction, result_dtype=np.float64)
    rng = np.random.default_rng(8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for shapes in [((3, 1), (3,)), ((2, 1, 4), (3, 1)), ((5,), ()), ((), (6,))]:
            check_all(name, rng.standard_normal(shapes[0]) * 2, rng.standard_normal(shapes[1]),
                      0.8, reduction)


@pytest.mark.parametrize("name", DEVICE_FUNCS)
def test_empty_and_python_scalars(name):
    loss_fn, _, vg_fn = DEVICE_FUNCS[name][:3]
    e = np.zeros(0, np.float32)
    assert np.isnan(loss_fn(e, e, 1.0, "mean"))
    assert loss_fn(e, e, 1.0, "sum") == 0
    assert loss_fn(e, e, 1.0, "none").shape == (0,)
    value, grad = vg_fn(e, e, 1.0, "mean")
    assert np.isnan(value) and grad.shape == (0,)
    a32 = np.array([0.5, 3.0, -2.0], np.float32)
    got = loss_fn(a32, 0.25, 1.0, "none")
    assert got.dtype == np.float32  # a Python number is weak, as on the CPU
    np.testing.assert_array_equal(got, test_reference.FUNCS[name][0](a32, 0.25, 1.0, "none"))


def assert_materialised_bits(a, part, full):
    """Every reduction of a loss, a gradient, a fused call and a Hessian with ``part`` as
    target and as weight (and, for the loss, as input) gives the bits of the same call
    with ``full``, the operand materialised."""
    for reduction in RED:
        for f in (nbloss.huber_loss, nbloss.smooth_l1_loss_grad,
                  nbloss.huber_loss_value_and_grad, nbloss.smooth_l1_loss_hess_diag):
            pairs = [(f(a, part, 0.5, reduction), f(a, full, 0.5, reduction)),
                     (f(a, 0.0, 0.5, reduction, weight=part),
                      f(a, 0.0, 0.5, reduction, weight=full))]
            if f is nbloss.huber_loss:  # (an input's gradient is summed to its shape)
                pairs.append((f(part, a, 0.5, reduction), f(full, a, 0.5, reduction)))
            for got, want in pairs:
                same_bits(to_host(got), to_host(want))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_value_is_read_in_place_with_the_materialised_calls_bits(dtype):
    """A Python number, or a device array of one element, as target, input, weight or
    upstream gradient reaches the kernels as a view with stride 0 of that one element:
    the bits of the same call with the operand materialised, and nothing of the loss's
    size allocated for it."""
    a = to_device((np.random.default_rng(9).standard_normal(SIZES[-1]) * 3).astype(dtype))
    ones = [(0.25, np.full(a.shape, 0.25, dtype)),
            (to_device(np.array([0.5], dtype)), np.full(a.shape, 0.5, dtype)),
            (to_device(np.array(-1.5, np.float64)), np.full(a.shape, -1.5))]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's shape warning (one element)
        for one, full in ones:
            full = to_device(full)
            call = nbloss._losses.new_call(a, one, "huber", 1.0, "mean", weight=one)
            assert call.b.strides == (0,) and call.w.strides == (0,)
            assert_materialised_bits(a, one, full)
            go = to_device(np.array([2.0], dtype))
            got = to_host(nbloss.huber_loss_backward(go, a, one, 0.5, "none"))
            want = to_host(nbloss.huber_loss_backward(to_device(np.full(a.shape, 2.0, dtype)),
                                                      a, full, 0.5, "none"))
            same_bits(got[0], want[0])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,parts", [
    ((6, 50), [(6, 1), (50,)]),
    ((2, 3, 50), [(1, 3, 1), (2, 1, 50)]),
    ((2, 3, 4, 10), [(1, 3, 1, 10)]),
])
def test_broadcast_along_axes_is_read_in_place_with_the_materialised_calls_bits(dtype, shape,
                                                                                parts):
    """A device array broadcast along some axes of the loss (a ``(rows, 1)`` target, a
    ``(1, C, 1)`` weight, a ``(rows, 1)`` upstream gradient) reaches the kernels as a
    2-D to 4-D view with stride 0 along those axes, read by index arithmetic: the bits
    of the same call with the operand materialised, and nothing of the loss's size
    allocated for it."""
    rng = np.random.default_rng(10)
    a = to_device((rng.standard_normal(shape) * 3).astype(dtype))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torch's shape warning
        for part_shape in parts:
            host = (rng.standard_normal(part_shape) * 2).astype(dtype)
            part, full = to_device(host), to_device(np.array(np.broadcast_to(host, shape)))
            call = nbloss._losses.new_call(a, part, "huber", 1.0, "mean", weight=part)
            for view in (call.b, call.w):
                assert view.ndim in (2, 3, 4) and 0 in view.strides, view.strides
            assert_materialised_bits(a, part, full)
            go = (rng.standard_normal(part_shape) * 2).astype(dtype)
            got = to_host(nbloss.huber_loss_backward(to_device(go), a, part, 0.5, "none"))
            want = to_host(nbloss.huber_loss_backward(
                to_device(np.array(np.broadcast_to(go, shape))), a, full, 0.5, "none"))
            same_bits(got[0], want[0])
            # the target's gradient, summed over the broadcast axes in float64
            axes = tuple(k for k, d in enumerate((1,) * (len(shape) - len(part_shape))
                                                 + part_shape) if d == 1)
            terms = want[1].astype(np.float64)
            np.testing.assert_allclose(
                got[1], np.sum(terms, axis=axes).reshape(part_shape), rtol=2e-7,
                atol=2e-7 * np.sum(np.abs(terms), axis=axes).max())


# -- against real torch and against the CPU path ----------------------------------------

@pytest.mark.parametrize("name,param", [("smooth_l1", 1.0), ("smooth_l1", 0.5), ("smooth_l1", 0.0),
                                        ("huber", 1.0), ("huber", 2.0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", RED)
def test_torch_parity(torch, name, param, dtype, reduction):
    loss_fn, _, _, backward_fn, _ = DEVICE_FUNCS[name]
    pairs = [random_pair(SIZES[-1], dtype, seed=1)]
    if param:  # beta = 0: torch's L1 gradient of NaN is wrong (see test_torch_parity)
        pairs.append(adversarial(dtype, beta=param))
    for a, b in pairs:
        go = 1.0 if reduction != "none" else np.ones(a.shape, dtype)
        with np.errstate(all="ignore"):
            got = (loss_fn(a, b, param, reduction),) + backward_fn(go, a, b, param, reduction)
            torch_suite.assert_parity(got, torch_suite.torch_run(torch, name, a, b, param, reduction),
                                      reduction, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_as_cpu(dtype):
    """Elementwise results are the CPU's to the bit (the same formulas, no contraction
    into FMAs); sums differ only in the order of additions."""
    a, b = adversarial(dtype)
    a = np.concatenate([a, random_pair(SIZES[-1], dtype, seed=2)[0]])
    b = np.concatenate([b, random_pair(SIZES[-1], dtype, seed=3)[1]])
    w = np.random.default_rng(1).random(a.size).astype(dtype)
    da, db, dw = to_device(a), to_device(b), to_device(w)
    with np.errstate(all="ignore"):
        for f in (nbloss.smooth_l1_loss, nbloss.huber_loss, nbloss.smooth_l1_loss_grad,
                  nbloss.huber_loss_grad, nbloss.smooth_l1_loss_hess_diag, nbloss.huber_loss_hess_diag):
            for p in (1.0, 0.5):
                np.testing.assert_array_equal(f(da, db, p, "none", weight=dw).copy_to_host(),
                                              f(a, b, p, "none", weight=w))
                np.testing.assert_array_equal(f(da, db, p, "mean").copy_to_host(), f(a, b, p, "mean"))
        for f in (nbloss.smooth_l1_loss, nbloss.huber_loss):
            finite = np.isfinite(a - b)
            for red in ("mean", "sum"):
                got = f(to_device(a[finite]), to_device(b[finite]), 0.5, red, weight=to_device(w[finite]))
                want = f(a[finite], b[finite], 0.5, red, weight=w[finite])
                assert got.shape == () and got.dtype == dtype
                # sums of non-negative terms in two orders (the GPU in float64, the CPU a
                # float32 loss in float32 lanes first): an ulp or two apart
                np.testing.assert_allclose(got.copy_to_host(), want, rtol=4 * np.finfo(dtype).eps)


MIXED = [(np.float32, np.float32, np.float64), (np.float32, np.float64, np.float32),
         (np.float64, np.float32, np.float64), (np.float32, np.float32, np.float32)]


@pytest.mark.parametrize("dtypes", MIXED, ids=lambda d: "-".join(np.dtype(t).name for t in d))
@pytest.mark.parametrize("go_dtype", [np.float32, np.float64])
def test_mixed_dtypes_compute_as_on_the_cpu(dtypes, go_dtype):
    """Operands of mixed dtypes and an upstream gradient of either dtype give the CPU's
    elementwise bits: float32 input and target beside a float64 weight are computed in
    float64 (not subtracted in float32 first), and a float64 grad_output of a float32
    loss is rounded to float32 before it multiplies, as the host does (and torch)."""
    rng = np.random.default_rng(11)
    shape = (6, 50)
    a, b = (rng.standard_normal(shape) * 2).astype(dtypes[0]), rng.standard_normal(shape).astype(dtypes[1])
    w = rng.random(shape[1]).astype(dtypes[2])
    go = rng.standard_normal(shape).astype(go_dtype)
    da, db, dw = to_device(a), to_device(b), to_device(w)
    for p in (0.5, 1.0):
        for f in (nbloss.smooth_l1_loss, nbloss.huber_loss, nbloss.smooth_l1_loss_hess_diag):
            same_bits(to_host(f(da, db, p, "none", weight=dw)), f(a, b, p, "none", weight=w))
        same_bits(to_host(nbloss.huber_loss_grad(da, db, p, "mean", weight=dw)),
                  nbloss.huber_loss_grad(a, b, p, "mean", weight=w))
        same_bits(to_host(nbloss.smooth_l1_loss_value_and_grad(da, db, p, "mean", weight=dw)[1]),
                  nbloss.smooth_l1_loss_value_and_grad(a, b, p, "mean", weight=w)[1])
        # a number as the target and a broadcast target beside the weight
        same_bits(to_host(nbloss.huber_loss(da, 0.3, p, "none", weight=dw)),
                  nbloss.huber_loss(a, 0.3, p, "none", weight=w))
        for backward in (nbloss.smooth_l1_loss_backward, nbloss.huber_loss_backward):
            same_bits(to_host(backward(to_device(go), da, db, p, "none")), backward(go, a, b, p, "none"))
            one = go[:1, :1].reshape(1)
            same_bits(to_host(backward(to_device(one), da, db, p, "mean", weight=dw)),
                      backward(one, a, b, p, "mean", weight=w))


def test_backward_gives_the_cpus_signed_zeros():
    """grad_target is minus grad_input where nothing is summed: a -0.0 becomes +0.0 and
    a +0.0 becomes -0.0, as on the host (not +0.0 + x, negated); summed ones start from
    +0.0, as NumPy's sum does."""
    x = np.array([0.5, 2.0, -1.0, 0.0])
    y = x.copy()
    rng = np.random.default_rng(12)
    for go in (-1.0, 1.0, np.array([-1.0, 1.0, -0.0, 0.0])):
        for backward in (nbloss.huber_loss_backward, nbloss.smooth_l1_loss_backward):
            dgo = to_device(go) if isinstance(go, np.ndarray) else go
            same_bits(to_host(backward(dgo, to_device(x), to_device(y), 1.0, "none")),
                      backward(go, x, y, 1.0, "none"))
    a = rng.standard_normal((5, 4))
    for target in (a[:, :1].copy(), np.zeros((1, 4))):
        same_bits(to_host(nbloss.huber_loss_backward(to_device(-np.zeros((5, 4))), to_device(a),
                                                     to_device(target), 1.0, "none")),
                  nbloss.huber_loss_backward(-np.zeros((5, 4)), a, target, 1.0, "none"))


def test_reductions_are_deterministic():
    a, b = random_pair(SIZES[-1], np.float64, seed=7)
    da, db = to_device(a), to_device(b)
    runs = {nbloss.huber_loss_value_and_grad(da, db, 0.3, "mean")[0].copy_to_host().tobytes()
            for _ in range(3)}
    assert len(runs) == 1


# -- the device API ----------------------------------------------------------------------

def test_results_stay_on_the_device():
    a, b = random_pair(SMALL, np.float32)
    da, db = to_device(a), to_device(b)
    for reduction, shape in (("mean", ()), ("sum", ()), ("none", (SMALL,))):
        value, grad = nbloss.smooth_l1_loss_value_and_grad(da, db, 1.0, reduction)
        for r in (value, grad, nbloss.huber_loss(da, db, reduction=reduction)):
            assert getattr(r, "__cuda_ndarray__", False), type(r)
        assert value.shape == shape and grad.shape == (SMALL,)
    # reading a 'mean' on the host, as the README shows
    assert float(nbloss.huber_loss(da, db).copy_to_host()) == pytest.approx(
        float(nbloss.huber_loss(a, b)), rel=1e-6)


def test_out_and_inputs_untouched():
    a, b = random_pair(SMALL, np.float32, seed=10)
    da, db = to_device(a), to_device(b)
    out = cuda.device_array(SMALL, np.float32)
    assert nbloss.huber_loss(da, db, 1.0, "none", out=out) is out
    np.testing.assert_array_equal(out.copy_to_host(), nbloss.huber_loss(a, b, 1.0, "none"))
    gout = cuda.device_array(SMALL, np.float32)
    value, g = nbloss.smooth_l1_loss_value_and_grad(da, db, 0.5, "sum", out=gout)
    assert g is gout and value.shape == ()
    np.testing.assert_array_equal(gout.copy_to_host(), nbloss.smooth_l1_loss_grad(a, b, 0.5, "sum"))
    # a broadcast input: out has its shape and receives the summed gradient
    col = to_device(a[:5].reshape(5, 1))
    gcol = cuda.device_array((5, 1), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        nbloss.huber_loss_grad(col, to_device(b[:4]), 1.0, "sum", out=gcol)
        want = nbloss.huber_loss_grad(a[:5].reshape(5, 1), b[:4], 1.0, "sum")
    np.testing.assert_allclose(gcol.copy_to_host(), want, rtol=1e-6)
    np.testing.assert_array_equal(da.copy_to_host(), a)
    np.testing.assert_array_equal(db.copy_to_host(), b)


def test_streams():
    a, b = random_pair(SIZES[-1], np.float64, seed=12)
    da, db = to_device(a), to_device(b)
    stream = cuda.stream()
    value, grad = nbloss.huber_loss_value_and_grad(da, db, 0.5, stream=stream)
    stream.synchronize()
    want_value, want_grad = nbloss.huber_loss_value_and_grad(a, b, 0.5)
    np.testing.assert_allclose(value.copy_to_host(), want_value, rtol=1e-14)
    np.testing.assert_array_equal(grad.copy_to_host(), want_grad)


@pytest.mark.parametrize("crit_cls,param", [(nbloss.SmoothL1Loss, "beta"), (nbloss.HuberLoss, "delta")])
@pytest.mark.parametrize("reduction", RED)
def test_criteria(crit_cls, param, reduction):
    rng = np.random.default_rng(11)
    a, b = rng.standard_normal((6, 1)) * 2, rng.standard_normal(4)
    go = 2.5 if reduction != "none" else rng.standard_normal((6, 4))
    results = []
    for device in (False, True):
        crit = crit_cls(reduction=reduction, **{param: 0.6})
        put = to_device if device else (lambda x: x)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            loss = crit(put(a), put(b))
        results.append(to_host((loss,) + crit.backward(put(go) if np.ndim(go) else go)))
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("reduction", RED)
def test_criterion_backward_returns_arrays_the_caller_owns(reduction):
    a, b = random_pair(SMALL, np.float64, seed=15)
    crit = nbloss.HuberLoss(reduction=reduction, delta=0.6)
    crit(to_device(a), to_device(b))
    gi, gt = crit.backward()
    gi[:] = 0.0  # the caller's to change: not the saved gradient
    gt[:] = 0.0
    want = nbloss.huber_loss_backward(1.0 if reduction != "none" else np.ones(SMALL), a, b, 0.6,
                                      reduction)
    for got, expected in zip(to_host(crit.backward()), want):
        np.testing.assert_array_equal(got, expected)


def test_fvcore_drop_in():
    from nbloss.fvcore import smooth_l1_loss
    a, b = random_pair(SMALL, np.float32, seed=13)
    for beta in (0.0, 1e-6, 0.5):
        for red in RED:
            np.testing.assert_allclose(to_host(smooth_l1_loss(to_device(a), to_device(b), beta, red)),
                                       smooth_l1_loss(a, b, beta, red), rtol=1e-6)
    e = to_device(np.zeros(0, np.float32))
    assert to_host(smooth_l1_loss(e, e, 0.5, "mean")) == 0.0


def test_errors():
    a, b = random_pair(SMALL, np.float32, seed=14)
    da, db = to_device(a), to_device(b)
    with pytest.raises(TypeError, match="target is a host ndarray"):
        nbloss.huber_loss(da, b)
    with pytest.raises(TypeError, match="weight is a host ndarray"):
        nbloss.huber_loss(da, db, weight=np.ones(SMALL, np.float32))
    with pytest.raises(TypeError, match="out must be a CUDA device array"):
        nbloss.huber_loss(da, db, reduction="none", out=np.empty(SMALL, np.float32))
    with pytest.raises(TypeError, match="grad_output is a host ndarray"):
        nbloss.huber_loss_backward(np.ones(SMALL, np.float32), da, db, reduction="none")
    for scalar in (np.float32(0.5), np.float64(0.5)):  # NumPy scalars are host 0-d arrays
        with pytest.raises(TypeError, match=f"target is a host {type(scalar).__name__} .*"
                                            "or pass a scalar as a Python number"):
            nbloss.huber_loss(da, scalar)
    with pytest.raises(TypeError, match="float16 device array"):
        nbloss.huber_loss(to_device(a.astype(np.float16)), 0.0)
    with pytest.raises(TypeError, match="int64 device array"):
        nbloss.huber_loss(da, to_device(np.arange(SMALL)))
    with pytest.raises(ValueError, match="non-contiguous device array"):
        nbloss.huber_loss(to_device(np.zeros((4, 6), np.float32)).T, 0.0)
    with pytest.raises(ValueError, match="out shares memory with input"):
        nbloss.huber_loss(da, db, reduction="none", out=da)
    with pytest.raises(ValueError, match="out has shape"):
        nbloss.huber_loss(da, db, reduction="none", out=cuda.device_array(3, np.float32))
    with pytest.raises(TypeError, match="out has dtype"):
        nbloss.huber_loss(da, db, reduction="none", out=cuda.device_array(SMALL, np.float64))
    with pytest.raises(ValueError, match="do not broadcast"):
        nbloss.huber_loss(da, to_device(np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match="delta"):
        nbloss.huber_loss(da, db, delta=-1.0)
    with pytest.raises(ValueError, match="reduction"):
        nbloss.huber_loss(da, db, reduction="avg")
    with pytest.raises(TypeError, match="stream must be"):
        nbloss.huber_loss(da, db, stream="fast")
    np.testing.assert_array_equal(da.copy_to_host(), a)



# -- on a real GPU: torch CUDA tensors and CuPy arrays, zero copy -----------------------

def gpu_library(name):
    if SIMULATOR:
        pytest.skip(f"{name} needs a real GPU (the simulator cannot export its arrays)")
    module = pytest.importorskip(name)
    if name == "torch" and not module.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    return module


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("reduction", RED)
def test_torch_cuda_tensors_and_parity(dtype, reduction):
    """torch CUDA tensors in (zero copy); values and gradients as torch CUDA's, within an
    ulp elementwise (torch's kernels may contract into FMAs; nbloss's never do)."""
    torch = gpu_library("torch")
    F = torch.nn.functional
    a, b = random_pair(1_000_003, np.dtype(dtype), seed=21)
    ta = torch.as_tensor(a, device="cuda").requires_grad_()
    tb = torch.as_tensor(b, device="cuda")
    for p in (1.0, 0.5):
        ta.grad = None
        want = F.smooth_l1_loss(ta, tb, beta=p, reduction=reduction)
        want.backward(torch.ones_like(want))
        value, grad = nbloss.smooth_l1_loss_value_and_grad(ta.detach(), tb, p, reduction)
        # torch tensors in, torch tensors out (tests/cuda/test_array_kinds.py: zero copy)
        assert isinstance(value, torch.Tensor) and grad.device == ta.device
        eps = np.finfo(dtype).eps
        if reduction == "none":
            np.testing.assert_array_max_ulp(value.cpu().numpy(), want.detach().cpu().numpy(), maxulp=1)
        else:
            np.testing.assert_allclose(value.item(), want.item(), rtol=16 * eps)
        np.testing.assert_array_max_ulp(grad.cpu().numpy(), ta.grad.cpu().numpy(), maxulp=1)


def test_cupy_arrays_and_stream():
    cp = gpu_library("cupy")
    a, b = random_pair(1_000_003, np.float32, seed=22)
    ca, cb = cp.asarray(a), cp.asarray(b)
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        value, grad = nbloss.huber_loss_value_and_grad(ca, cb, 0.5, stream=stream)
    stream.synchronize()
    want_value, want_grad = nbloss.huber_loss_value_and_grad(a, b, 0.5)
    assert isinstance(value, cp.ndarray) and isinstance(grad, cp.ndarray)
    np.testing.assert_array_equal(cp.asnumpy(grad), want_grad)
    np.testing.assert_allclose(float(value), want_value, rtol=1e-6)


def test_cupy_robust_regression_example():
    """examples/robust_regression_cupy.py: the GPU fit lands on the CPU fit."""
    gpu_library("cupy")
    import importlib.util
    import pathlib
    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / "robust_regression_cupy.py"
    spec = importlib.util.spec_from_file_location("robust_regression_cupy", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    w_gpu, w_cpu = module.main(n=20_000)
    np.testing.assert_allclose(w_gpu, w_cpu, rtol=0, atol=1e-8)


# -- Dask arrays of device chunks ------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dask_chunk_tasks_on_device_chunks(dtype):
    """The tasks that nbloss's Dask layer runs per chunk, on device chunks: the CPU's
    gradient, loss and Hessian chunks to the bit, the float64 partial sum within the CPU's
    rounding, results left on the device in the chunk's type."""
    from conftest import require
    require("dask.array")
    from nbloss import _dask
    from nbloss._call import LossSpec

    a, b = random_pair(300, dtype, seed=31)
    w = np.random.default_rng(32).random(300).astype(dtype)
    scale = dtype(1 / 7000)  # the whole array's 1/N, not the chunk's
    for loss, param in (("smooth_l1", 0.5), ("huber", 1.0), ("smooth_l1", 0.0)):
        spec = LossSpec(loss, param)
        for weight in (None, w):
            host = _dask._chunk_loss_sum(a, b, weight, spec=spec, scale=scale, with_grad=True,
                                         ndim=2)
            dev = _dask._chunk_loss_sum(to_device(a), to_device(b), to_device(weight), spec=spec,
                                        scale=scale, with_grad=True, ndim=2)
            assert all(getattr(r, "__cuda_ndarray__", False) for r in dev)
            assert dev[0].shape == (1, 1) and dev[0].dtype == np.float64
            # the CPU adds float32 losses in float32 lanes (10 roundings on a term's path,
            # each within 2**-24), the CUDA kernels add every term in float64
            np.testing.assert_allclose(to_host(dev[0]), host[0],
                                       rtol=10 * 2.0**-24 if dtype == np.float32 else 1e-13)
            np.testing.assert_array_equal(to_host(dev[1]), host[1])
            for op in ("loss", "grad", "hess"):
                reduction = "none" if op == "loss" else "mean"
                want = _dask._chunk_elementwise(a, b, weight, spec=spec, reduction=reduction,
                                                op=op, scale=scale)
                got = _dask._chunk_elementwise(to_device(a), to_device(b), to_device(weight),
                                               spec=spec, reduction=reduction, op=op,
                                               scale=scale)
                np.testing.assert_array_equal(to_host(got), want)


def test_dask_arrays_of_device_chunks():
    """Dask arrays of numba device arrays (the simulator's too): the elementwise results
    as Dask arrays of device chunks, the in-memory NumPy results to the bit; chunks of
    another kind and host arrays beside device chunks refused. (Dask cannot sum numba
    arrays: the reductions run on CuPy chunks, below, and task by task, above.)"""
    from conftest import require
    da = require("dask.array")
    dask = require("dask")
    a, b = random_pair(1000, np.float32, seed=35)
    a, b = a.reshape(250, 4), b.reshape(250, 4)
    meta = cuda.to_device(np.empty((0, 0), np.float32))
    A = da.from_array(a, chunks=(70, 4)).map_blocks(cuda.to_device, meta=meta)
    B = da.from_array(b, chunks=(70, 4)).map_blocks(cuda.to_device, meta=meta)
    host = {"meta": np.empty((0, 0), np.float32)}
    with dask.config.set(scheduler="synchronous"):  # the simulator's threads are not Dask's
        for loss_fn, grad_fn, vg_fn, _, hess_fn in test_reference.FUNCS.values():
            for lazy, eager in ((loss_fn(A, B, 0.5, "none"), loss_fn(a, b, 0.5, "none")),
                                (loss_fn(A, 0.25, 0.5, "none"), loss_fn(a, 0.25, 0.5, "none")),
                                (grad_fn(A, B, 0.5, "mean"), grad_fn(a, b, 0.5, "mean")),
                                (hess_fn(A, B, 0.5, "sum"), hess_fn(a, b, 0.5, "sum")),
                                (vg_fn(A, B, 0.5, "none")[1], vg_fn(a, b, 0.5, "none")[1])):
                assert getattr(lazy._meta, "__cuda_ndarray__", False) and lazy.chunks == A.chunks
                got = lazy.map_blocks(lambda c: c.copy_to_host(), **host).compute()
                np.testing.assert_array_equal(got, eager)
        # a grad_output of the other dtype: each chunk's call rounds it (numba arrays
        # have no astype for Dask to call)
        go = np.random.default_rng(36).standard_normal((250, 4)) * 1e3
        Go = da.from_array(go, chunks=(70, 4)).map_blocks(cuda.to_device,
                                                           meta=cuda.to_device(np.empty((0, 0))))
        lazy = nbloss.huber_loss_backward(Go, A, B, 0.5, "none")[0]
        got = lazy.map_blocks(lambda c: c.copy_to_host(), **host).compute()
        np.testing.assert_array_equal(got, nbloss.huber_loss_backward(go, a, b, 0.5, "none")[0])
    with pytest.raises(TypeError, match="target's chunks are NumPy arrays but the loss's are CUDA"):
        nbloss.huber_loss(A, da.from_array(b, chunks=(70, 4)))
    with pytest.raises(TypeError, match="weight's chunks are CUDA arrays but the loss's are NumPy"):
        nbloss.huber_loss(da.from_array(a, chunks=(70, 4)), 0.0, weight=A)
    with pytest.raises(TypeError, match="target is a host ndarray but the loss's chunks are CUDA"):
        nbloss.huber_loss(A, b)


def test_dask_arrays_of_cupy_chunks():
    """Dask arrays of CuPy chunks: every function on the CUDA kernels, results Dask arrays
    of CuPy chunks equal to the in-memory NumPy results; mixed chunk types refused."""
    cp = gpu_library("cupy")
    from conftest import require
    da = require("dask.array")
    dask = require("dask")
    for dtype in (np.float32, np.float64):
        a, b = random_pair(10_000, dtype, seed=33)
        a, b = a.reshape(2500, 4), b.reshape(2500, 4)
        A = da.from_array(cp.asarray(a), chunks=(700, 4), asarray=False)
        B = da.from_array(cp.asarray(b), chunks=(700, 4), asarray=False)
        w = cp.asarray(np.random.default_rng(34).random(4).astype(dtype))
        for loss_fn, grad_fn, vg_fn, _, hess_fn in test_reference.FUNCS.values():
            for reduction in RED:
                for kw in ({}, {"weight": w}):
                    host_kw = {k: cp.asnumpy(x) for k, x in kw.items()}
                    lazy = loss_fn(A, B, 0.5, reduction, **kw)
                    assert isinstance(lazy._meta, cp.ndarray)
                    got = lazy.compute()
                    assert isinstance(got, cp.ndarray)
                    want = loss_fn(a, b, 0.5, reduction, **host_kw)
                    if reduction == "none":
                        np.testing.assert_array_equal(cp.asnumpy(got), want)
                    else:
                        np.testing.assert_allclose(cp.asnumpy(got), want, rtol=2e-7)
                for lazy, eager in ((grad_fn(A, B, 0.5, reduction), grad_fn(a, b, 0.5, reduction)),
                                    (hess_fn(A, B, 0.5, reduction), hess_fn(a, b, 0.5, reduction))):
                    np.testing.assert_array_equal(cp.asnumpy(lazy.compute()), eager)
                value, grad = dask.compute(*vg_fn(A, B, 0.5, reduction))
                want_value, want_grad = vg_fn(a, b, 0.5, reduction)
                np.testing.assert_array_equal(cp.asnumpy(grad), want_grad)
                np.testing.assert_allclose(cp.asnumpy(value), want_value, rtol=2e-7)
    host_chunks = da.from_array(b, chunks=(700, 4))
    with pytest.raises(TypeError, match="target's chunks are NumPy arrays but the loss's are CUDA"):
        nbloss.huber_loss(A, host_chunks)
    with pytest.raises(TypeError, match="target is a host ndarray but the loss's chunks are CUDA"):
        nbloss.huber_loss(A, b)
