"""Adversarial arguments: odd layouts, byte orders, ndarray subclasses, aliasing between
arguments, read-only data, and the caller's arrays: never modified, never shared with
a result. References are the plain float64 formulas of tests/reference.py."""

import tracemalloc
import warnings

import numpy as np
import pytest

import nbloss
import reference as ref
from test_reference import check_all

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


@pytest.mark.parametrize("cls,name,param", CRITERIA)
@pytest.mark.parametrize("reduction", RED)
def test_criterion_backward_is_of_what_the_forward_saw(cls, name, param, reduction):
    """backward(g) multiplies the gradient the forward saved, as torch's autograd does: an
    in-place step on input between forward and backward does not change it; and it is the
    functional backward of the forward's data to the bit."""
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(50).astype(np.float32) * 2, rng.standard_normal(50).astype(np.float32)
    go = np.float32(3.0) if reduction != "none" else rng.standard_normal(50).astype(np.float32)
    want = getattr(nbloss, f"{name}_loss_backward")(go, a, b, 0.7, reduction)
    crit = cls(reduction=reduction, **{param: 0.7})
    crit(a, b)
    a += 1.0  # an optimiser's step, in place
    for got, expected in zip(crit.backward(go), want):
        np.testing.assert_array_equal(got, expected)


# -- every public entry point, one way to call each ------------------------------------------

FUNCS = {name: (getattr(nbloss, f"{name}_loss"), getattr(nbloss, f"{name}_loss_grad"),
                getattr(nbloss, f"{name}_loss_value_and_grad"),
                getattr(nbloss, f"{name}_loss_backward"), getattr(nbloss, f"{name}_loss_hess_diag"))
         for name in ("smooth_l1", "huber")}


def every_result(name, a, b, param, reduction, weight=None, grad_output=None):
    """Every public function's result for these operands (values and arrays), and both
    criteria's forward and backward (without a weight, which they do not take)."""
    loss, grad, value_and_grad, backward, hess = FUNCS[name]
    if grad_output is None:
        grad_output = 1.0 if reduction != "none" else np.ones(np.broadcast_shapes(np.shape(a), np.shape(b)))
    kw = {} if weight is None else {"weight": weight}
    results = [loss(a, b, param, reduction, **kw), grad(a, b, param, reduction, **kw),
               *value_and_grad(a, b, param, reduction, **kw),
               *backward(grad_output, a, b, param, reduction, **kw),
               hess(a, b, param, reduction, **kw)]
    if weight is None:
        crit = (nbloss.SmoothL1Loss(reduction=reduction, beta=param) if name == "smooth_l1"
                else nbloss.HuberLoss(reduction=reduction, delta=param))
        results += [crit(a, b), *crit.backward(grad_output)]
    return results


def assert_identical(got, want):
    """The same values, bits, dtypes and shapes, as plain ndarrays or NumPy scalars."""
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert type(g) in (np.ndarray, np.float16, np.float32, np.float64), type(g)
        assert type(g) is type(w) and np.shape(g) == np.shape(w) and np.asarray(g).dtype == np.asarray(w).dtype
        assert_same_bits(g, w)


def assert_same_bits(x, y):
    """Equal to the bit (NaN payloads, signed zeros, byte order) and in shape."""
    x, y = np.asarray(x), np.asarray(y)
    assert x.shape == y.shape and x.dtype == y.dtype
    np.testing.assert_array_equal(np.ascontiguousarray(x).reshape(-1).view(np.uint8),
                                  np.ascontiguousarray(y).reshape(-1).view(np.uint8))


def sample(shape=(6, 5), seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    a = (rng.standard_normal(shape) * 2).astype(dtype)
    b = rng.standard_normal(shape).astype(dtype)
    w = rng.random(shape).astype(dtype)
    a.flat[:3] = [np.nan, np.inf, 0.0]
    return a, b, w


# -- byte order ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_other_byte_order_gives_the_same_bits(name, reduction, dtype):
    a, b, w = sample(dtype=dtype)
    swapped = [x.astype(x.dtype.newbyteorder()) for x in (a, b, w)]
    assert not swapped[0].dtype.isnative
    go = 1.5 if reduction != "none" else b + 1
    with np.errstate(invalid="ignore"):
        want = every_result(name, a, b, 0.8, reduction, grad_output=go)
        want_w = every_result(name, a, b, 0.8, reduction, weight=w, grad_output=go)
        go_swapped = go if reduction != "none" else swapped[1] + 1
        assert_identical(every_result(name, *swapped[:2], 0.8, reduction, grad_output=go_swapped), want)
        assert_identical(every_result(name, *swapped[:2], 0.8, reduction, weight=swapped[2],
                                      grad_output=go_swapped), want_w)
        # one operand swapped, beside a native one
        assert_identical(every_result(name, a, swapped[1], 0.8, reduction, grad_output=go), want)


@pytest.mark.parametrize("byteorder", ["=", "S"])
def test_out_of_either_byte_order_receives_the_result(byteorder):
    a, b, _ = sample()
    want_loss = nbloss.huber_loss(a, b, 0.5, "none")
    want_value, want_grad = nbloss.smooth_l1_loss_value_and_grad(a, b, 0.5, "mean")
    out = np.zeros(a.shape, np.dtype(np.float64).newbyteorder(byteorder))
    assert nbloss.huber_loss(a, b, 0.5, "none", out=out) is out
    np.testing.assert_array_equal(out, want_loss)
    value, g = nbloss.smooth_l1_loss_value_and_grad(a, b, 0.5, "mean", out=out)
    assert g is out
    np.testing.assert_equal(value, want_value)
    np.testing.assert_array_equal(out, want_grad)
    a16, b16 = a.astype(np.float16), b.astype(np.float16)
    out16 = np.zeros(a.shape, np.dtype(np.float16).newbyteorder(byteorder))
    nbloss.huber_loss_hess_diag(a16, b16, 0.5, "sum", out=out16)
    np.testing.assert_array_equal(out16, nbloss.huber_loss_hess_diag(a16, b16, 0.5, "sum"))


# -- ndarray subclasses ----------------------------------------------------------------------

class Tagged(np.ndarray):
    """A user subclass: nbloss reads its values; results are plain ndarrays."""


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("reduction", RED)
def test_subclasses_are_read_as_ndarrays(name, reduction, tmp_path):
    a, b, w = sample()
    want = every_result(name, a, b, 0.8, reduction)
    want_w = every_result(name, a, b, 0.8, reduction, weight=w)
    np.save(tmp_path / "a.npy", a)
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")  # a read-only np.memmap
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    with np.errstate(invalid="ignore"):
        assert_identical(every_result(name, mapped, b, 0.8, reduction), want)
        assert_identical(every_result(name, a.view(Tagged), b.view(Tagged), 0.8, reduction), want)
        assert_identical(every_result(name, a, b, 0.8, reduction, weight=w.view(Tagged)), want_w)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PendingDeprecationWarning)  # np.matrix's own
            assert_identical(every_result(name, np.asmatrix(a), np.asmatrix(b), 0.8, reduction), want)


def test_writable_memmap_as_out(tmp_path):
    a, b, _ = sample()
    out = np.memmap(tmp_path / "out.bin", dtype=np.float64, mode="w+", shape=a.shape)
    assert nbloss.smooth_l1_loss(a, b, 0.5, "none", out=out) is out
    out.flush()
    np.testing.assert_array_equal(np.fromfile(tmp_path / "out.bin").reshape(a.shape),
                                  nbloss.smooth_l1_loss(a, b, 0.5, "none"))
    nbloss.huber_loss_grad(a, b, 0.5, "sum", out=out)
    np.testing.assert_array_equal(out, nbloss.huber_loss_grad(a, b, 0.5, "sum"))


@pytest.mark.parametrize("argument", ["input", "target", "weight", "grad_output", "out"])
def test_masked_arrays_are_refused_and_nothing_changes(argument):
    a, b, w = sample()
    masked = np.ma.masked_array(b.copy(), mask=b > 0)
    before = masked.data.copy(), masked.mask.copy()
    args = {"input": a, "target": b, "weight": w, "grad_output": np.ones(a.shape), "out": None}
    args[argument] = masked
    calls = []
    if argument != "out":
        calls.append(lambda: nbloss.smooth_l1_loss_backward(
            args["grad_output"], args["input"], args["target"], 0.5, "none", weight=args["weight"]))
    if argument != "grad_output":
        calls += [lambda f=f: f(args["input"], args["target"], 0.5, "none", weight=args["weight"],
                                out=args["out"])
                  for f in (nbloss.huber_loss, nbloss.smooth_l1_loss_grad, nbloss.huber_loss_hess_diag)]
    if argument in ("input", "target"):
        calls.append(lambda: nbloss.HuberLoss()(args["input"], args["target"]))
    advice = {"input": r"input.data with weight=~input.mask", "target": r"target.compressed\(\)",
              "weight": r"weight.filled\(0\)", "grad_output": r"grad_output.filled\(0\)",
              "out": "pass out.data"}[argument]
    for call in calls:
        with pytest.raises(TypeError, match=f"{argument} is a numpy.ma.MaskedArray.*{advice}"):
            call()
    np.testing.assert_array_equal(masked.data, before[0])
    np.testing.assert_array_equal(masked.mask, before[1])
    # what the advice gives: the loss of the unmasked elements
    if argument == "target":
        np.testing.assert_allclose(
            nbloss.huber_loss(a, masked.data, 0.5, "sum", weight=~masked.mask),
            nbloss.huber_loss(a[~masked.mask], masked.compressed(), 0.5, "sum"), rtol=1e-14)


# -- the dtype rule --------------------------------------------------------------------------

@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("reduction", RED)
def test_all_arithmetic_happens_in_the_computation_dtype(name, reduction):
    """float32 input and target with a float64 weight: the difference is taken in float64
    (float32 would round 1e8 - 0.1 to 1e8 and give 99999999.5)."""
    a, b, w = np.array([1e8], np.float32), np.array([0.1], np.float32), np.ones(1)
    want_loss, want_gi, want_gt = ref.loss_and_grads(name, a, b, 1.0, reduction, w)
    loss, grad, value_and_grad, backward, hess = FUNCS[name]
    got = loss(a, b, 1.0, reduction, weight=w)
    assert np.asarray(got).dtype == np.float64
    np.testing.assert_array_equal(got, want_loss)
    assert float(np.ravel(got)[0]) == 99999999.4
    np.testing.assert_array_equal(value_and_grad(a, b, 1.0, reduction, weight=w)[0], want_loss)
    # near the kink, the float32 difference would land on the other side of it
    a, b = np.array([1.0], np.float32), np.array([1e-8], np.float32)
    _, want_gi, want_gt = ref.loss_and_grads(name, a, b, 1.0, reduction, w)
    np.testing.assert_array_equal(grad(a, b, 1.0, reduction, weight=w), want_gi)
    gi, gt = backward(1.0 if reduction != "none" else np.ones(1), a, b, 1.0, reduction, weight=w)
    np.testing.assert_array_equal(gi, want_gi)
    np.testing.assert_array_equal(gt, want_gt)
    assert want_gi[0] != 1 and hess(a, b, 1.0, reduction, weight=w) == 1  # |x| < 1 in float64


def test_integer_and_bool_operands_match_the_float_formula():
    """An integer operand takes the float operand's dtype; the values are those of the
    float64 formula, rounded once (float32 here)."""
    a = np.array([0.25, -3.5, 2.0, 7.0], np.float32)
    for b in (np.array([0, 1, -2, 7]), np.array([0, 1, 1, 0], np.uint8), np.array([True, False, True, True])):
        for name, (loss, grad, value_and_grad, backward, hess) in FUNCS.items():
            want_loss, want_gi, want_gt = ref.loss_and_grads(name, a, b, 0.5, "sum")
            got = loss(a, b, 0.5, "sum")
            assert got.dtype == np.float32 and got == np.float32(want_loss)
            gi, gt = backward(1.0, a, b, 0.5, "sum")
            assert gi.dtype == gt.dtype == np.float32
            np.testing.assert_array_equal(gi, want_gi.astype(np.float32))
            np.testing.assert_array_equal(gt, want_gt.astype(np.float32))
            gi, gt = backward(1.0, b, a, 0.5, "sum")  # the integer operand as input
            np.testing.assert_array_equal(gi, -want_gi.astype(np.float32))
            # an integer weight, and a list of Python ints (float64, NumPy's default)
            np.testing.assert_array_equal(loss(a, a, 0.5, "none", weight=b),
                                          loss(a, a, 0.5, "none", weight=b.astype(np.float32)))
            assert loss(a, b.astype(int).tolist(), 0.5, "sum").dtype == np.float64


def test_python_number_beside_float16_is_rounded_to_float16_as_in_numpy():
    """A weak Python number takes the array's dtype, as in NumPy (float16 - 4097 is
    float16 - 4096), before the float32 arithmetic."""
    a = np.array([0.0, 4096.0, 1.5, -3.0], np.float16)
    for target in (0.1, 4097, -2.7):
        want = ref.huber(a, np.float16(target), 1.0).astype(np.float16)
        assert_same_bits(nbloss.huber_loss(a, target, 1.0, "none"), want)
        assert_same_bits(nbloss.huber_loss_grad(a, target, 1.0, "none"),
                         ref.huber_grad(a, np.float16(target), 1.0).astype(np.float16))
    assert nbloss.huber_loss(a[1:2], 4097, 1.0, "sum") == 0


# -- out= is untouched by a call that raises, warnings-as-errors included ----------------------

def test_out_is_untouched_when_a_float16_cast_raises():
    """float16 results are computed in float32 and cast: NumPy's overflow warning, as an
    error, must come before out= is written."""
    a = np.array([60000, -60000, 1, 0.5], np.float16)
    b = np.array([-60000, 60000, 0, 0], np.float16)
    calls = [lambda out: nbloss.huber_loss(a, b, 1.0, "none", out=out),  # 120000 > float16's max
             lambda out: nbloss.huber_loss_grad(a, b, 1e5, "none", out=out),
             lambda out: nbloss.smooth_l1_loss_value_and_grad(a, b, 1.0, "none", out=out)[1],
             lambda out: nbloss.smooth_l1_loss_hess_diag(b, b, 1e-3, "none", weight=np.float16(100), out=out)]
    for call in calls:
        with warnings.catch_warnings():  # without the filter: a warning, and inf in the result
            warnings.simplefilter("ignore", RuntimeWarning)
            want = call(None)
        for out in (np.full(4, 7, np.float16), np.full(8, 7, np.float16)[::2],
                    np.full(4, 7, np.dtype(np.float16).newbyteorder())):
            before = out.copy()
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                with pytest.raises(RuntimeWarning, match="overflow"):
                    call(out)
            assert_same_bits(out, before)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                call(out)
            np.testing.assert_array_equal(out, want)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_reductions_beyond_the_dtype_are_inf_without_a_warning(dtype):
    """The float64 sum rounds to inf as torch and the CUDA kernels give it: no NumPy
    overflow warning, which, raised as an error, would come after the fused kernel wrote
    the gradient into out=."""
    big = float(np.finfo(dtype).max) * 0.75
    a, b = np.array([big, big, -big], dtype), np.zeros(3, dtype)
    out = np.full(3, 7, dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for reduction, want in (("sum", np.inf), ("mean", ref.huber(a, b, 1.0).mean())):
            assert nbloss.huber_loss(a, b, 1.0, reduction) == np.asarray(want, dtype)
            value, g = nbloss.huber_loss_value_and_grad(a, b, 1.0, reduction, out=out)
            assert value == np.asarray(want, dtype) and value.dtype == dtype and g is out
            np.testing.assert_array_equal(out, nbloss.huber_loss_grad(a, b, 1.0, reduction))
        assert nbloss.huber_loss(a, b, 1.0, "sum", weight=-np.ones(3, dtype)) == -np.inf
    # the rounding itself: the largest float64 that rounds to the dtype's largest finite
    # value stays finite, the next one is inf
    from nbloss._call import total_to_result
    info = np.finfo(dtype)
    edge = float(info.max) + 2.0 ** (info.maxexp - info.nmant - 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for total, want in ((float(np.nextafter(edge, 0)), info.max), (edge, np.inf), (-edge, -np.inf)):
            assert total_to_result(total, 1, "sum", np.dtype(dtype)) == want
        assert np.isnan(total_to_result(np.nan, 1, "sum", np.dtype(dtype)))


# -- odd layouts -----------------------------------------------------------------------------

def odd_layouts(dtype=np.float64):
    """(label, input, target, weight): the operands in layouts a kernel must not trip on."""
    rng = np.random.default_rng(30)
    a, b, w = (x.astype(dtype) for x in (rng.standard_normal((12, 10)) * 2, rng.standard_normal((12, 10)),
                                         rng.random((12, 10))))
    wide = np.zeros((5, 2**20 // np.dtype(dtype).itemsize), dtype)  # rows 1 MiB apart: a column
    wide[:, 3] = rng.standard_normal(5) * 2                              # is a huge-stride view
    yield "fortran", np.asfortranarray(a), np.asfortranarray(b), np.asfortranarray(w)
    yield "fortran input, C target", np.asfortranarray(a), b, w.T.copy().T
    yield "negative strides", a[::-1, ::-1], b[::-1], w[:, ::-1]
    yield "non-contiguous slices", a[::2, 1::3], b[1::2, 2::3], w[::2, 2::3]
    yield "transposed", a.T, b.T, w.T
    yield "huge stride", wide[:, 3], b[0, :5], wide[::-1, 3]
    yield "broadcast view", a, np.broadcast_to(b[0], a.shape), np.broadcast_to(w[:, :1], a.shape)
    yield "0-d", a[0, 0, ...], b[0, 0, ...], w[0, 0, ...]
    yield "empty", a[:0, :3], b[:0, :3], w[:0, :3]
    yield "empty broadcast", a[:4, :0], b[:1, :0], w[:4, :0]


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("layout", [x[0] for x in odd_layouts()])
def test_odd_layouts_match_the_reference(name, reduction, layout):
    for dtype in (np.float32, np.float64):
        _, a, b, w = next(x for x in odd_layouts(dtype) if x[0] == layout)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # broadcast shapes
            check_all(name, a, b, 0.8, reduction)
            check_all(name, a, b, 0.8, reduction, weight=w)


# -- aliasing between arguments ----------------------------------------------------------------

@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("reduction", RED)
def test_one_array_as_several_arguments(name, reduction):
    """input is target (loss 0), weight is input, grad_output is input: read, never written."""
    rng = np.random.default_rng(31)
    a, b = rng.random(40) * 3, rng.standard_normal(40)  # a positive: a weight without cancellation
    keep = a.copy()
    check_all(name, a, a, 0.8, reduction)
    check_all(name, a, b, 0.8, reduction, weight=a)
    check_all(name, b, a, 0.8, reduction, weight=a[::-1])
    if reduction == "none":
        gi, gt = FUNCS[name][3](a, a, b, 0.8, "none")
        g = ref.LOSSES[name][1](a, b, 0.8) * a
        np.testing.assert_allclose(gi, g, rtol=1e-15)
        np.testing.assert_allclose(gt, -g, rtol=1e-15)
    crit = nbloss.SmoothL1Loss(reduction=reduction) if name == "smooth_l1" else nbloss.HuberLoss(reduction)
    assert crit(a, a) == 0 if reduction != "none" else not crit(a, a).any()
    np.testing.assert_array_equal(a, keep)


def out_overlaps(dtype=np.float64):
    """(label, input, target, weight, out, name of the operand out overlaps)."""
    buf = np.arange(60.0, dtype=dtype)
    a, b, w = buf[:20], np.linspace(-1, 1, 20, dtype=dtype), np.ones(20, dtype)
    yield "out is input", a, b, w, a, "input"
    yield "out is target", a, b, w, b, "target"
    yield "out is a view of weight", a, b, w, w[::-1], "weight"
    yield "out overlaps input by half", a, b, w, buf[10:30], "input"
    yield "out interleaves with input", buf[0:40:2], b, w, buf[1:41:2], "input"
    yield "out is a reshaped input", a.reshape(4, 5), b.reshape(4, 5), w.reshape(4, 5), a.reshape(5, 4).T, "input"
    base = np.zeros((5, 20), dtype)
    yield "out is the base of a broadcast weight", a, b, np.broadcast_to(base[0], (20,)), base[0], "weight"
    # operands nbloss converts before reading: out= still may not overlap the caller's data
    swapped = a.astype(a.dtype.newbyteorder())
    yield "out is a native view of a big-endian input", swapped, b, w, swapped.view(dtype), "input"
    ints = np.arange(20, dtype=f"i{np.dtype(dtype).itemsize}")
    yield "out is a float view of an integer target", a, ints, w, ints.view(dtype), "target"


@pytest.mark.parametrize("label", [x[0] for x in out_overlaps()])
@pytest.mark.parametrize("dtype", [np.float64, np.float16])  # float16: the path that casts into out=
def test_out_overlapping_an_operand_raises_and_changes_nothing(label, dtype):
    _, a, b, w, out, name = next(x for x in out_overlaps(dtype) if x[0] == label)
    arrays = (a, b, w, out)
    before = [x.copy() for x in arrays]
    for f, reduction in ((nbloss.smooth_l1_loss, "none"), (nbloss.huber_loss, "none"),
                         (nbloss.smooth_l1_loss_grad, "mean"), (nbloss.huber_loss_grad, "sum"),
                         (nbloss.smooth_l1_loss_value_and_grad, "sum"), (nbloss.huber_loss_value_and_grad, "none"),
                         (nbloss.smooth_l1_loss_hess_diag, "mean"), (nbloss.huber_loss_hess_diag, "none")):
        with pytest.raises(ValueError, match=f"out shares memory with {name}: nbloss never writes into its inputs"):
            f(a, b, 0.5, reduction, weight=w, out=out)
        for x, x0 in zip(arrays, before):
            np.testing.assert_array_equal(x, x0)


# -- read-only data and the caller's arrays --------------------------------------------------------

def frozen(x):
    x = np.array(x, copy=True)
    x.flags.writeable = False
    return x


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("reduction", RED)
def test_read_only_operands(name, reduction):
    rng = np.random.default_rng(32)
    a, b, w = (frozen(x) for x in (rng.standard_normal((6, 7)) * 2, rng.standard_normal(7), rng.random((6, 7))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        check_all(name, a, b, 0.8, reduction, weight=w)
        go = frozen(np.ones((6, 7))) if reduction == "none" else 1.0
        results = every_result(name, a, b, 0.8, reduction, grad_output=go)
    for r in results:  # results are the caller's to change
        assert np.ndim(r) == 0 or r.flags.writeable


def callers_arguments():
    """(label, input, target, weight, grad_output for 'none'): dtypes, layouts, broadcasting."""
    rng = np.random.default_rng(33)
    a, b, w = rng.standard_normal((5, 4)) * 2, rng.standard_normal((5, 4)), rng.random((5, 4))
    yield "float64", a, b, w, rng.standard_normal((5, 4))
    yield "float32 and float64", a.astype(np.float32), b, w.astype(np.float32), rng.standard_normal((5, 4))
    yield "float16", a.astype(np.float16), b.astype(np.float16), w.astype(np.float16), np.ones((5, 4), np.float16)
    yield "integer target, bool weight", a.astype(np.float32), np.round(b).astype(int), w > 0.5, np.ones((5, 4), int)
    yield "big-endian", a.astype(">f8"), b.astype(">f4"), w.astype(">f8"), np.ones((5, 4), ">f8")
    yield "broadcast", a[:, :1], b[0], w, rng.standard_normal((5, 4))
    yield "strided", a[::-1, ::2], np.asfortranarray(b)[:, 1::2], w[:, ::2], rng.standard_normal((5, 2))[::-1]


@pytest.mark.parametrize("label", [x[0] for x in callers_arguments()])
@pytest.mark.parametrize("reduction", RED)
def test_nothing_of_the_callers_is_modified_or_shared(label, reduction):
    """Every public function and both criteria: each argument is bit-for-bit what it
    was, and no result shares memory with an argument or with another result."""
    _, a, b, w, go = next(x for x in callers_arguments() if x[0] == label)
    go = go if reduction == "none" else np.float32(1.5)
    arguments = (a, b, w, go)
    before = [np.array(x, copy=True) for x in arguments]
    results = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for name in FUNCS:
            results += every_result(name, a, b, 0.8, reduction, weight=w, grad_output=go)
            results += every_result(name, a, b, 0.8, reduction, grad_output=go)  # and the criteria
    for x, x0 in zip(arguments, before):
        assert_same_bits(x, x0)
    arrays = [r for r in results if isinstance(r, np.ndarray)]
    for i, r in enumerate(arrays):
        assert not any(np.shares_memory(r, x) for x in arguments if isinstance(x, np.ndarray))
        assert not any(np.shares_memory(r, s) for s in arrays[i + 1:])


@pytest.mark.parametrize("reduction", ["none", "mean", "sum"])
def test_a_criterion_reuses_its_gradient_buffer_and_never_one_it_handed_out(reduction):
    """A training loop's forward writes the gradient into the buffer of the last forward
    (no fresh allocation of the input's size), and what backward() returned stays as it
    was."""
    rng = np.random.default_rng(40)
    n = 300_000  # float64: 2.4 MB, above REUSE_MIN_BYTES
    crit = nbloss.HuberLoss(reduction, delta=0.5)
    steps = [(rng.standard_normal(n), rng.standard_normal(n)) for _ in range(3)]
    nbloss.HuberLoss(reduction, delta=0.5)(*steps[0])  # compiled before measuring
    handed_out = []
    for i, (x, y) in enumerate(steps):
        tracemalloc.start()
        try:
            value = crit(x, y)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        # 'none' allocates its loss array; the gradient only on the first step
        expected = (x.nbytes if reduction == "none" else 0) + (x.nbytes if i == 0 else 0)
        assert peak <= expected + 0.01 * x.nbytes, (i, peak)
        np.testing.assert_array_equal(value, nbloss.huber_loss(x, y, 0.5, reduction))
        grads = crit.backward(2.0)
        want = nbloss.huber_loss_backward(2.0, x, y, 0.5, reduction)
        for got, expect in zip(grads, want, strict=True):
            np.testing.assert_array_equal(got, expect)
        np.testing.assert_array_equal(crit.backward(2.0)[0], want[0])  # twice: the same
        handed_out.append((grads, [g.copy() for g in grads]))
    for grads, copies in handed_out:
        for got, copy in zip(grads, copies, strict=True):
            np.testing.assert_array_equal(got, copy)


# -- the direct kernel calls get the types they were compiled for -----------------------------

def unaligned(x):
    """A writeable C-contiguous copy of ``x`` whose data starts one byte off its alignment."""
    raw = np.zeros(x.nbytes + 1, np.uint8)
    y = raw[1:].view(x.dtype).reshape(x.shape)
    y[...] = x
    assert not y.flags.aligned and y.flags.writeable and y.flags.c_contiguous
    return y


class Sub(np.ndarray):
    pass


def direct_cases():
    """(label, input, target, whether every direct call's operands are the caller's)."""
    rng = np.random.default_rng(40)
    for dtype in (np.float32, np.float64):
        a, b = (rng.standard_normal(60).astype(dtype) * 2 for _ in range(2))
        yield f"1-D {dtype.__name__}", a, b
        yield f"2-D {dtype.__name__}", a.reshape(6, 10), b.reshape(6, 10)
        yield f"number target {dtype.__name__}", a, 0.25
        yield f"read-only input {dtype.__name__}", frozen(a), b
        yield f"read-only target {dtype.__name__}", a, frozen(b)
        yield f"unaligned input {dtype.__name__}", unaligned(a), b
        yield f"unaligned target {dtype.__name__}", a, unaligned(b)
        yield f"subclass input {dtype.__name__}", a.view(Sub), b
        yield f"Fortran-ordered {dtype.__name__}", np.asfortranarray(a.reshape(6, 10)), b.reshape(6, 10)


@pytest.mark.parametrize("label,a,b", [c for c in direct_cases()], ids=[c[0] for c in direct_cases()])
@pytest.mark.parametrize("reduction", RED)
def test_the_direct_kernel_calls_get_exactly_the_types_they_were_compiled_for(
        monkeypatch, label, a, b, reduction):
    """A host call of the common operands runs ``_cpu.DirectCalls``, compiled entry points
    that convert their arguments by their signature and check nothing. Every argument
    they are given must have the type numba's own ``typeof`` gives it, for every result
    of every public function (out= arrays of odd kinds included); anything else (a
    read-only, unaligned, Fortran-ordered or subclassed operand, an upstream array) must
    go through numba's dispatcher. The results are those of the dispatcher's calls, bit
    for bit."""
    import numba

    from nbloss import _cpu, _host

    def results():
        monkeypatch.setattr(_cpu, "_BY_VARIANT", {})
        monkeypatch.setattr(_host, "_PLANS", {})
        got = every_result("huber", a, b, 0.7, reduction)
        got += every_result("smooth_l1", a, b, 0.7, reduction)
        shape = np.shape(a)
        dtype = np.asarray(a).dtype
        for out in (np.empty(shape, dtype), unaligned(np.empty(shape, dtype)),
                    np.empty(shape, dtype).view(Sub), np.empty(shape, dtype, order="F")):
            got.append(np.array(nbloss.huber_loss_grad(a, b, 0.7, reduction, out=out)))
            if reduction == "none":
                got.append(np.array(nbloss.huber_loss(a, b, 0.7, reduction, out=out)))
        return got

    calls = []
    entry_get = _cpu._Entry.__get__

    def checked(self, direct, owner=None):
        entry = entry_get(self, direct, owner)
        kernel = getattr(direct.kernels, _cpu.KERNEL_CALLS[self.name][0])
        signature = next(sig for sig, cres in kernel.overloads.items() if cres.entry_point is entry)

        def run(*args):
            calls.append(self.name)
            assert tuple(numba.typeof(x) for x in args) == signature, (self.name, args)
            return entry(*args)

        direct.__dict__[self.name] = run
        return run

    want = []
    with monkeypatch.context() as m:  # every call through the dispatcher
        m.setattr(_cpu, "DirectCalls", lambda kernels, dtype, ndim: _cpu.DispatchedCalls(kernels, kernels))
        want = results()
    monkeypatch.setattr(_cpu._Entry, "__get__", checked)
    assert_identical(results(), want)
    common = label.split(" float")[0] in ("1-D", "2-D", "number target")
    assert bool(calls) == common, calls  # the common operands do run the direct calls


# Code of the caller's that runs inside a call (a grad_output's __array__, an out=
# subclass's __array_function__) and reshapes the input in place, up to 8 and 32 axes: the
# kernels must still get the arrays they were checked for (a 1-D signature handed an N-d
# array overflows numba's argument struct). Run in a child process: a crash is the failure.
RESHAPING_CALLERS = {
    "grad_output": """
class Hook:
    def __array__(self, dtype=None, copy=None):
        x.shape = (1,) * 31 + (60,)
        return np.array(1.0, np.float32)
want = nbloss.huber_loss_backward(1.0, x.copy(), y, 1.0, "sum")
got = nbloss.huber_loss_backward(Hook(), x, y, 1.0, "sum")
""",
    "out": """
class Out(np.ndarray):
    def __array_function__(self, func, types, args, kwargs):
        if func is np.may_share_memory:  # out='s check
            x.shape = (1,) * 7 + (60,)
            return False
        return super().__array_function__(func, types, args, kwargs)
want = nbloss.huber_loss_value_and_grad(x.copy(), y, 1.0, "sum")
got = nbloss.huber_loss_value_and_grad(x, y, 1.0, "sum", out=np.empty(60, np.float32).view(Out))
""",
}


@pytest.mark.parametrize("hook", RESHAPING_CALLERS)
def test_callers_code_that_reshapes_an_operand_during_the_call_cannot_crash_it(hook):
    import subprocess
    import sys

    script = ("import numpy as np, nbloss\n"
              "x = np.linspace(-3, 3, 60).astype(np.float32)\n"
              "y = np.zeros(60, np.float32)\n"
              + RESHAPING_CALLERS[hook] +
              "assert x.ndim > 1  # the hook ran\n"
              "for g, w in zip(got, want):\n"
              "    assert np.array_equal(np.asarray(g), w), (g, w)\n"
              "print('same')\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0 and run.stdout.strip() == "same", (run.returncode, run.stderr[-2000:])
