"""nbloss against real torch: values, autograd gradients for input and target, every
reduction, broadcasting, legacy arguments and the texts of warnings and errors.

Same-dtype elementwise results are compared to the last bit (see assert_same_bits for
the one rounding where torch disagrees with itself); reductions, which torch sums with a float32
cascade and nbloss into float64 block sums, to the dtype's rounding.
"""

import pathlib
import warnings

import numpy as np
import pytest

import nbloss
from conftest import LARGE, MIDDLE, SMALL, adversarial, random_pair

RED = ["none", "mean", "sum"]


def torch_run(torch, name, a, b, param, reduction, weight=None, grad_output=None):
    """torch's loss and its autograd gradients for input and target, as NumPy."""
    F = torch.nn.functional
    ta = torch.from_numpy(np.ascontiguousarray(a)).requires_grad_()
    tb = torch.from_numpy(np.ascontiguousarray(b)).requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        if name == "smooth_l1":
            loss = F.smooth_l1_loss(ta, tb, reduction=reduction, beta=param)
        else:
            kw = {} if weight is None else {"weight": torch.from_numpy(weight)}
            loss = F.huber_loss(ta, tb, reduction=reduction, delta=param, **kw)
    go = torch.ones_like(loss) if grad_output is None else torch.as_tensor(grad_output, dtype=loss.dtype)
    loss.backward(go)
    return loss.detach().numpy(), ta.grad.numpy(), tb.grad.numpy()


def nbloss_run(name, a, b, param, reduction, weight=None, grad_output=None):
    f = {"smooth_l1": nbloss.smooth_l1_loss, "huber": nbloss.huber_loss}[name]
    bw = {"smooth_l1": nbloss.smooth_l1_loss_backward, "huber": nbloss.huber_loss_backward}[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loss = f(a, b, param, reduction, weight=weight)
    if grad_output is None:
        grad_output = 1.0 if reduction != "none" else np.ones(np.shape(loss))
    gi, gt = bw(grad_output, a, b, param, reduction, weight=weight)
    return np.asarray(loss), gi, gt


def assert_same_bits(got, want, dtype):
    """Equal to the last bit, but for one rounding where torch disagrees with itself:
    its scalar tail loop (the last elements, those at thread-chunk ends) multiplies in
    another order (``norm * x * g / beta``) than its vectorised body, which nbloss
    follows (``norm * (x / beta) * g``)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape and got.dtype == want.dtype
    tiny = np.finfo(dtype).tiny
    special = ~np.isfinite(want)
    np.testing.assert_array_equal(got[special], want[special])
    small = np.abs(want) < tiny
    np.testing.assert_allclose(got[small], want[small], rtol=0, atol=tiny)
    rest = ~special & ~small
    np.testing.assert_array_max_ulp(got[rest], want[rest], maxulp=1)
    assert np.mean(got[rest] == want[rest]) > 0.8  # most of it is bit-identical


def assert_parity(got, want, reduction, dtype, exact=True):
    loss, gi, gt = got
    tloss, tgi, tgt = want
    eps = np.finfo(dtype).eps
    if reduction == "none" and exact:
        assert_same_bits(loss, tloss, dtype)
    else:
        np.testing.assert_allclose(loss, tloss, rtol=16 * eps, atol=np.finfo(dtype).tiny)
    if exact:
        assert_same_bits(gi, tgi, dtype)
        assert_same_bits(gt, tgt, dtype)
    else:
        np.testing.assert_allclose(gi, tgi, rtol=16 * eps, atol=16 * eps * np.nanmax(np.abs(tgi), initial=0))
        np.testing.assert_allclose(gt, tgt, rtol=16 * eps, atol=16 * eps * np.nanmax(np.abs(tgt), initial=0))


@pytest.mark.parametrize("name,params", [("smooth_l1", [1.0, 0.5, 0.0, 2.0]), ("huber", [1.0, 0.5, 2.0])])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("n", [SMALL, MIDDLE, LARGE])
def test_random(torch, name, params, dtype, reduction, n):
    a, b = random_pair(n, dtype, seed=n + 1)
    for p in params:
        assert_parity(nbloss_run(name, a, b, p, reduction), torch_run(torch, name, a, b, p, reduction),
                      reduction, dtype)


def test_float32_sums_are_within_an_ulp_and_closer_than_torch(torch):
    """A float32 'sum' is the exact sum of the elements' float32 losses, rounded: nbloss
    adds them in float32 lanes folded into float64 sums every 512 elements, torch in a
    float32 cascade. nbloss is never more than 1 ulp off, and is off less often than
    torch."""
    import math

    rng = np.random.default_rng(11)
    # whole runs, run remainders, whole blocks and several blocks
    sizes = [511, 512, 513, 2047, 2048, 2049, 5000, 20_000] * 25
    off = {"nbloss": 0, "torch": 0}
    worst = {"nbloss": 0.0, "torch": 0.0}
    for n in sizes:
        a, b = random_pair(n, np.float32, seed=int(rng.integers(2**31)))
        terms = torch_run(torch, "huber", a, b, 1.0, "none")[0]  # float32, as torch sums them
        exact = np.float32(math.fsum(terms.astype(np.float64).tolist()))
        got = nbloss.huber_loss(a, b, 1.0, "sum")
        want = torch_run(torch, "huber", a, b, 1.0, "sum")[0]
        ulps = {"nbloss": abs(float(got) - float(exact)) / float(np.spacing(exact)),
                "torch": abs(float(want) - float(exact)) / float(np.spacing(exact))}
        assert ulps["nbloss"] <= 1, (n, ulps)
        for k in off:
            off[k] += ulps[k] != 0
            worst[k] = max(worst[k], ulps[k])
    assert off["nbloss"] < off["torch"], off
    if torch.__version__.startswith("2.13."):  # the version the README quotes
        readme = " ".join((pathlib.Path(__file__).parent.parent / "README.md").read_text().split())
        said = (f"{len(sizes)} random float32 sums of {min(sizes)}-{max(sizes)} elements",
                f"checks, {off['nbloss']} are 1 ulp from the correctly rounded sum",
                f"torch's are off in {off['torch']}, by up to {worst['torch']:g} ulp")
        assert all(s in readme for s in said), (off, worst)


@pytest.mark.parametrize("name,params", [("smooth_l1", [1.0, 0.5, 2.0]), ("huber", [1.0, 0.5, 2.0])])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", RED)
def test_adversarial(torch, name, params, dtype, reduction):
    for p in params:
        a, b = adversarial(dtype, beta=p)
        with np.errstate(all="ignore"):
            assert_parity(nbloss_run(name, a, b, p, reduction), torch_run(torch, name, a, b, p, reduction),
                          reduction, dtype)
            big = np.resize(a, LARGE), np.resize(b, LARGE)
            assert_parity(nbloss_run(name, *big, p, reduction), torch_run(torch, name, *big, p, reduction),
                          reduction, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("beta", [0.0, 1e-300, 1e-320])
def test_beta_zero_is_l1_with_zero_gradient_at_zero(torch, dtype, beta):
    a, b = adversarial(dtype)
    with np.errstate(invalid="ignore"):
        x = a - b
        keep = ~np.isnan(x)  # NaN: see test_l1_gradient_of_nan
    if beta != 0:
        # nbloss is exact L1 once 1/beta overflows; torch keeps a quadratic piece on
        # the subnormal sliver 0 < |x| < beta
        keep &= ~((0 < np.abs(x)) & (np.abs(x) < np.finfo(dtype).tiny))
    a, b = a[keep], b[keep]
    at_zero = (a - b) == 0
    with np.errstate(all="ignore"):
        for reduction in RED:
            got = nbloss_run("smooth_l1", a, b, beta, reduction)
            want = torch_run(torch, "smooth_l1", a, b, beta, reduction)
            assert got[1][at_zero].tolist() == [0] * int(at_zero.sum())
            if beta != 0 and dtype == np.float32:
                # beta rounds to 0 in float32 and torch gives -1 (times 1/N) at x == 0
                # (pytorch#96813); everywhere else the results agree
                assert (want[1][at_zero] < 0).all()
                want = (want[0], np.where(at_zero, 0, want[1]), np.where(at_zero, 0, want[2]))
            if beta != 0:
                # L1 drops the 0.5 beta offset of the linear branch: below any normal number
                np.testing.assert_allclose(got[0], want[0], rtol=1e-15, atol=beta)
                got = (want[0],) + got[1:]
            assert_parity(got, want, reduction, dtype)


def test_l1_gradient_of_nan(torch):
    # torch's sign(NaN) is 0, so its beta = 0 gradient hides NaN; nbloss propagates it
    a = np.array([np.nan, 1.0]); b = np.zeros(2)
    _, tgi, _ = torch_run(torch, "smooth_l1", a, b, 0.0, "sum")
    _, gi, _ = nbloss_run("smooth_l1", a, b, 0.0, "sum")
    assert tgi[0] == 0 and np.isnan(gi[0]) and gi[1] == tgi[1] == 1


@pytest.mark.parametrize("name", ["smooth_l1", "huber"])
@pytest.mark.parametrize("shapes", [((3, 1), (3,)), ((4, 5), (5,)), ((2, 1, 4), (3, 1)), ((5,), ())])
@pytest.mark.parametrize("reduction", RED)
def test_broadcasting(torch, name, shapes, reduction):
    rng = np.random.default_rng(2)
    a = rng.standard_normal(shapes[0]) * 2
    b = rng.standard_normal(shapes[1])
    assert_parity(nbloss_run(name, a, b, 0.7, reduction), torch_run(torch, name, a, b, 0.7, reduction),
                  reduction, np.float64, exact=False)


@pytest.mark.parametrize("name", ["smooth_l1", "huber"])
def test_upstream_gradient(torch, name):
    a, b = random_pair(SMALL, np.float64, seed=3)
    go = np.random.default_rng(4).standard_normal(SMALL)
    assert_parity(nbloss_run(name, a, b, 0.8, "none", grad_output=go),
                  torch_run(torch, name, a, b, 0.8, "none", grad_output=go), "none", np.float64)
    assert_parity(nbloss_run(name, a, b, 0.8, "mean", grad_output=-3.5),
                  torch_run(torch, name, a, b, 0.8, "mean", grad_output=-3.5), "mean", np.float64)


@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huber_weight(torch, reduction, dtype):
    a, b = random_pair(LARGE, dtype, seed=5)
    w = np.random.default_rng(6).random(LARGE).astype(dtype)
    assert_parity(nbloss_run("huber", a, b, 0.9, reduction, weight=w),
                  torch_run(torch, "huber", a, b, 0.9, reduction, weight=w), reduction, dtype, exact=False)


def test_shape_warning_text(torch):
    F = torch.nn.functional
    a, b = np.zeros((3, 1)), np.zeros(3)
    for ours, theirs in ((nbloss.smooth_l1_loss, F.smooth_l1_loss), (nbloss.huber_loss, F.huber_loss)):
        with pytest.warns(UserWarning) as got:
            ours(a, b)
        with pytest.warns(UserWarning) as want:
            theirs(torch.from_numpy(a), torch.from_numpy(b))
        assert [str(w.message) for w in got] == [str(w.message) for w in want]
        assert got[0].filename == __file__  # points at the caller's line


@pytest.mark.parametrize("size_average,reduce", [(None, False), (False, None), (True, True), (False, True),
                                                 (None, True), (True, None), (True, False)])
def test_legacy_arguments(torch, size_average, reduce):
    a, b = random_pair(SMALL, np.float64, seed=7)
    with pytest.warns(UserWarning) as want:
        crit = torch.nn.SmoothL1Loss(size_average=size_average, reduce=reduce)
    with pytest.warns(UserWarning) as got:
        ours = nbloss.SmoothL1Loss(size_average=size_average, reduce=reduce)
    assert [str(w.message) for w in got] == [str(w.message) for w in want]
    assert ours.reduction == crit.reduction
    np.testing.assert_allclose(ours(a, b), crit(torch.from_numpy(a), torch.from_numpy(b)).numpy(), rtol=1e-15)
    with pytest.warns(UserWarning) as got_f:
        f = nbloss.smooth_l1_loss(a, b, size_average=size_average, reduce=reduce)
    with pytest.warns(UserWarning) as want_f:
        t = torch.nn.functional.smooth_l1_loss(torch.from_numpy(a), torch.from_numpy(b),
                                               size_average=size_average, reduce=reduce)
    assert [str(w.message) for w in got_f] == [str(w.message) for w in want_f]
    np.testing.assert_allclose(f, t.numpy(), rtol=1e-15)


def test_error_texts(torch):
    F = torch.nn.functional
    t = torch.zeros(3)
    z = np.zeros(3)
    with pytest.raises(ValueError) as want:
        F.smooth_l1_loss(t, t, reduction="avg")
    with pytest.raises(ValueError) as got:
        nbloss.smooth_l1_loss(z, z, reduction="avg")
    assert str(got.value).startswith(str(want.value))
    with pytest.raises(RuntimeError) as want:
        F.smooth_l1_loss(t, t, beta=-1.0)
    with pytest.raises(ValueError) as got:
        nbloss.smooth_l1_loss(z, z, beta=-1.0)
    assert str(want.value).rstrip(".") in str(got.value)
    with pytest.raises(RuntimeError) as want:
        F.huber_loss(t, t, delta=0.0)
    with pytest.raises(ValueError) as got:
        nbloss.huber_loss(z, z, delta=0.0)
    assert str(want.value).rstrip(".") in str(got.value)


@pytest.mark.parametrize("name", ["smooth_l1", "huber"])
def test_empty(torch, name):
    e = np.zeros(0, np.float32)
    for reduction in RED:
        got = nbloss_run(name, e, e, 1.0, reduction)
        want = torch_run(torch, name, e, e, 1.0, reduction)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)


def test_mixed_dtypes(torch):
    a, _ = random_pair(SMALL, np.float32, seed=8)
    _, b = random_pair(SMALL, np.float64, seed=9)
    # smooth_l1: torch promotes to float64 like nbloss
    loss, gi, gt = nbloss_run("smooth_l1", a, b, 1.0, "mean")
    tloss, tgi, tgt = torch_run(torch, "smooth_l1", a, b, 1.0, "mean")
    assert loss.dtype == gi.dtype == gt.dtype == np.float64 and tloss.dtype == np.float64
    np.testing.assert_allclose(loss, tloss, rtol=1e-15)
    np.testing.assert_allclose(gi, tgi, rtol=1e-7)  # torch casts grad_input back to float32
    np.testing.assert_array_equal(gt, tgt)
    # huber: torch's backward fails (pytorch#76646); nbloss gives what float64 gives
    with pytest.raises(RuntimeError):
        torch_run(torch, "huber", a, b, 1.0, "mean")
    loss, gi, gt = nbloss_run("huber", a, b, 1.0, "mean")
    assert loss.dtype == gi.dtype == gt.dtype == np.float64
    assert_parity((loss, gi, gt), torch_run(torch, "huber", a.astype(np.float64), b, 1.0, "mean"),
                  "mean", np.float64)


@pytest.mark.parametrize("reduction", RED)
def test_float16(torch, reduction):
    a, b = random_pair(SMALL, np.float16, seed=10)
    for name in ("smooth_l1", "huber"):
        loss, gi, gt = nbloss_run(name, a, b, 1.0, reduction)
        tloss, tgi, tgt = torch_run(torch, name, a, b, 1.0, reduction)
        assert loss.dtype == tloss.dtype == gi.dtype == np.float16
        np.testing.assert_allclose(loss.astype(float), tloss.astype(float), rtol=2e-3)
        np.testing.assert_allclose(gi.astype(float), tgi.astype(float), rtol=2e-3, atol=1e-7)


@pytest.mark.parametrize("reduction", RED)
def test_criteria(torch, reduction):
    rng = np.random.default_rng(11)
    a, b = rng.standard_normal((5, 1)), rng.standard_normal(4)
    for ours, theirs in ((nbloss.SmoothL1Loss(reduction=reduction, beta=0.6),
                          torch.nn.SmoothL1Loss(reduction=reduction, beta=0.6)),
                         (nbloss.HuberLoss(reduction=reduction, delta=0.6),
                          torch.nn.HuberLoss(reduction=reduction, delta=0.6))):
        ta = torch.from_numpy(a).requires_grad_()
        tb = torch.from_numpy(b).requires_grad_()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            tloss = theirs(ta, tb)
            loss = ours(a, b)
        go = np.full(tloss.shape, 1.5)
        tloss.backward(torch.from_numpy(go))
        gi, gt = ours.backward(go if reduction == "none" else 1.5)
        np.testing.assert_allclose(loss, tloss.detach().numpy(), rtol=1e-15)
        np.testing.assert_allclose(gi, ta.grad.numpy(), rtol=1e-14)
        np.testing.assert_allclose(gt, tb.grad.numpy(), rtol=1e-14)


def test_hess_diag_is_torch_double_backward(torch):
    a, b = adversarial(np.float64, beta=0.7)
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = np.resize(a[keep], 500), np.resize(b[keep], 500)
    for name, f in (("smooth_l1", nbloss.smooth_l1_loss_hess_diag), ("huber", nbloss.huber_loss_hess_diag)):
        for reduction in ("mean", "sum"):
            ta = torch.from_numpy(a).requires_grad_()
            F = torch.nn.functional
            loss = (F.smooth_l1_loss(ta, torch.from_numpy(b), reduction=reduction, beta=0.7) if name == "smooth_l1"
                    else F.huber_loss(ta, torch.from_numpy(b), reduction=reduction, delta=0.7))
            (g,) = torch.autograd.grad(loss, ta, create_graph=True)
            (h,) = torch.autograd.grad(g.sum(), ta)  # the Hessian is diagonal: this is its diagonal
            np.testing.assert_allclose(f(a, b, 0.7, reduction), h.numpy(), rtol=1e-15)


def torch_hess_diag(torch, name, a, b, param, reduction, weight):
    """torch's double backward: the gradient of sum(d loss / d input) w.r.t. input, with
    ``weight`` multiplied into the unreduced loss (huber's own ``weight=``)."""
    F = torch.nn.functional
    ta, tb, tw = (torch.from_numpy(x) for x in (a, b, weight))
    ta.requires_grad_()
    if name == "huber":
        loss = F.huber_loss(ta, tb, reduction=reduction, delta=param, weight=tw)
    else:
        loss = F.smooth_l1_loss(ta, tb, reduction="none", beta=param) * tw
        loss = {"none": loss, "mean": loss.mean(), "sum": loss.sum()}[reduction]
    (g,) = torch.autograd.grad(loss.sum(), ta, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), ta, materialize_grads=True)
    return np.zeros_like(a) if h._is_zerotensor() else h.detach().numpy()


@pytest.mark.parametrize("name,param", [("smooth_l1", 0.7), ("smooth_l1", 0.0), ("huber", 0.7)])
@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hess_diag_of_nan_and_inf_weights_is_torch_double_backward(torch, name, param, reduction, dtype):
    """torch multiplies the upstream gradient (the weight) by the mask |x| < beta: NaN or
    inf weights give NaN outside it (0 * inf), NaN x gives 0 (or NaN with them); beta = 0
    is L1, whose double backward is zero whatever the weight."""
    hess = {"smooth_l1": nbloss.smooth_l1_loss_hess_diag, "huber": nbloss.huber_loss_hess_diag}[name]
    p = param or 0.7
    xs = [0.0, 0.3 * p, -0.3 * p, p, -p, 2 * p, -2 * p, np.inf, np.nan]
    ws = [np.nan, np.inf, -np.inf, 2.0, -2.0, 0.0]
    a = np.array([x for x in xs for _ in ws], dtype)
    w = np.array([w for _ in xs for w in ws], dtype)
    b = np.zeros_like(a)
    got = hess(a, b, param, reduction, weight=w)
    want = torch_hess_diag(torch, name, a, b, param, reduction, w)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
    np.testing.assert_allclose(got, want, rtol=2 * np.finfo(dtype).eps, atol=0)


# -- the dtype rule: integer and bool operands, NumPy scalars, grad_output ----------------

def run_both(torch, name, a, b, reduction, weight=None, grad_output=None):
    """nbloss's and torch's (loss, grad_input, grad_target, warning texts) for operands
    that may be integer or bool arrays. torch's gradient of an integer operand does not
    exist: it is taken from the same call with that operand in the result's dtype."""
    F = torch.nn.functional
    fn = {"smooth_l1": F.smooth_l1_loss, "huber": F.huber_loss}[name]
    ours = {"smooth_l1": nbloss.smooth_l1_loss, "huber": nbloss.huber_loss}[name]
    kw = {} if weight is None else {"weight": torch.from_numpy(weight)}
    ta, tb = (torch.from_numpy(np.asarray(x)) for x in (a, b))
    with warnings.catch_warnings(record=True) as want_warnings:
        warnings.simplefilter("always")
        want = fn(ta, tb, reduction=reduction, **kw)
    floats = [t.to(want.dtype).requires_grad_() for t in (ta, tb)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        loss = fn(*floats, reduction=reduction, **kw)
    go = torch.ones_like(loss) if grad_output is None else torch.from_numpy(np.asarray(grad_output))
    loss.backward(go)
    torch_result = (want.detach().numpy(), floats[0].grad.numpy(), floats[1].grad.numpy())
    with warnings.catch_warnings(record=True) as got_warnings:
        warnings.simplefilter("always")
        ours(a, b, 1.0, reduction, weight=weight)
    got = nbloss_run(name, a, b, 1.0, reduction, weight=weight, grad_output=grad_output)
    return got, torch_result, ([str(w.message) for w in got_warnings], [str(w.message) for w in want_warnings])


INTEGERS = [np.int64, np.int32, np.uint8, np.bool_]


@pytest.mark.parametrize("int_dtype", INTEGERS)
@pytest.mark.parametrize("float_dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("reduction", RED)
def test_integer_target_takes_the_float_input_dtype(torch, int_dtype, float_dtype, reduction):
    """torch's category rule: F.smooth_l1_loss(torch.ones(3), torch.tensor([1, 2, 3])) is
    float32 (NumPy's result_type would say float64)."""
    rng = np.random.default_rng(20)
    a = (rng.standard_normal((4, 6)) * 3).astype(float_dtype)
    b = rng.integers(-3, 4, (4, 6)).astype(int_dtype) if int_dtype is not np.bool_ else rng.random((4, 6)) > 0.5
    if int_dtype is np.uint8:
        b = np.abs(b).astype(np.uint8)
    for name in ("smooth_l1", "huber"):
        got, want, (got_w, want_w) = run_both(torch, name, a, b, reduction)
        assert got_w == want_w == []
        for g, w in zip(got, want):
            assert g.dtype == w.dtype == float_dtype  # the integer operand's gradient too
        if float_dtype == np.float16:
            for g, w in zip(got, want):
                np.testing.assert_allclose(g.astype(float), w.astype(float), rtol=2e-3, atol=1e-6)
        else:
            assert_parity(got, want, reduction, float_dtype, exact=reduction == "none")


@pytest.mark.parametrize("int_dtype", INTEGERS)
@pytest.mark.parametrize("float_dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", RED)
def test_integer_input_takes_the_float_target_dtype(torch, int_dtype, float_dtype, reduction):
    """smooth_l1 as torch (an int input with a float64 target is float64); torch's huber
    fails there ('result type Float can't be cast to the desired output type Long'):
    nbloss gives what the same input as a float array gives."""
    rng = np.random.default_rng(21)
    a = rng.integers(-3, 4, 7).astype(int_dtype) if int_dtype is not np.bool_ else rng.random(7) > 0.5
    if int_dtype is np.uint8:
        a = np.abs(a).astype(np.uint8)
    b = rng.standard_normal(7).astype(float_dtype)
    got, want, _ = run_both(torch, "smooth_l1", a, b, reduction)
    assert [g.dtype for g in got] == [w.dtype for w in want] == [float_dtype] * 3
    assert_parity(got, want, reduction, float_dtype, exact=reduction == "none")
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type"):
        torch.nn.functional.huber_loss(torch.from_numpy(a), torch.from_numpy(b))
    got = nbloss_run("huber", a, b, 1.0, reduction)
    want = nbloss_run("huber", a.astype(float_dtype), b, 1.0, reduction)
    for g, w in zip(got, want):
        assert g.dtype == float_dtype
        np.testing.assert_array_equal(g, w)


@pytest.mark.parametrize("reduction", RED)
def test_integer_operand_with_broadcasting_warns_as_torch(torch, reduction):
    a = np.random.default_rng(22).standard_normal((3, 1)).astype(np.float32)
    b = np.array([1, 2, 3])
    for name in ("smooth_l1", "huber"):
        got, want, (got_w, want_w) = run_both(torch, name, a, b, reduction)
        assert got_w == want_w and len(got_w) == 1
        assert_parity(got, want, reduction, np.float32, exact=False)


@pytest.mark.parametrize("weight_dtype", [np.int64, np.bool_, np.float64])
@pytest.mark.parametrize("reduction", RED)
def test_huber_weight_dtype_as_torch(torch, weight_dtype, reduction):
    """An integer or bool weight takes the operands' dtype (torch's loss * weight); a
    float64 weight beside float32 operands makes the result float64 (torch: the loss in
    float32 times the weight in float64; nbloss: all of it in float64)."""
    a, b = random_pair(SMALL, np.float32, seed=23)
    w = np.random.default_rng(24).integers(0, 3, SMALL).astype(weight_dtype)
    got, want, _ = run_both(torch, "huber", a, b, reduction, weight=w)
    assert got[0].dtype == want[0].dtype == np.result_type(np.float32, w.dtype if w.dtype.kind == "f" else np.float32)
    assert_parity(got, want, reduction, np.float32, exact=False)


def test_two_integer_operands_raise_a_clear_type_error(torch):
    F = torch.nn.functional
    for a, b in ((np.array([1, 2, 3]), np.array([1, 2, 4])),
                 (np.array([True, False]), np.array([1, 0], np.int32)),
                 (np.array([1, 2]), np.int64(1))):
        for fn, ours in ((F.smooth_l1_loss, nbloss.smooth_l1_loss), (F.huber_loss, nbloss.huber_loss)):
            with pytest.raises((NotImplementedError, RuntimeError), match="not implemented for|can't be cast"):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    fn(torch.from_numpy(a), torch.as_tensor(b))
            with pytest.raises(TypeError, match=r"input \(.*\) and target \(.*\) are both integer or bool "
                                                r"arrays; the loss needs a floating-point input or target"):
                ours(a, b, weight=np.ones(np.shape(a)))
    # Python ints stay numbers: the float64 default, as before
    assert nbloss.smooth_l1_loss(3, 1).dtype == np.float64
    assert nbloss.smooth_l1_loss(np.array([1, 2]), 0, reduction="sum") == 2.0


@pytest.mark.parametrize("scalar", [np.float32(0.5), np.float64(0.5), np.float16(0.5), np.int64(2),
                                    np.array(0.5), np.array(0.5, np.float32)])
@pytest.mark.parametrize("input_dtype", [np.float32, np.float64])
def test_numpy_scalar_target_is_a_0d_tensor(torch, scalar, input_dtype):
    """Every NumPy scalar is a typed 0-d array: torch's shape warning, and its dtype
    counts (smooth_l1; torch's huber keeps input's dtype: pytorch#76646)."""
    a = np.random.default_rng(25).standard_normal(5).astype(input_dtype)
    for reduction in RED:
        got, want, (got_w, want_w) = run_both(torch, "smooth_l1", a, np.asarray(scalar), reduction)
        _, _, (scalar_w, _) = run_both(torch, "smooth_l1", a, scalar, reduction)
        assert got_w == want_w == scalar_w and len(got_w) == 1
        ours = nbloss_run("smooth_l1", a, scalar, 1.0, reduction)
        assert [x.dtype for x in ours] == [x.dtype for x in want]
        for o, g in zip(ours, got):
            np.testing.assert_array_equal(o, g)
        assert_parity(got, want, reduction, want[0].dtype, exact=False)


def test_python_numbers_stay_weak_and_warning_free(recwarn):
    a = np.ones(5, np.float32)
    for scalar in (0.5, 2):
        for fn in (nbloss.smooth_l1_loss, nbloss.huber_loss):
            assert fn(a, scalar, reduction="none").dtype == np.float32
    assert not recwarn.list


@pytest.mark.parametrize("go_dtype", [np.int64, np.bool_, np.float64, np.float16])
def test_grad_output_is_cast_to_the_computation_dtype(torch, go_dtype):
    """grad_output does not decide the dtype: torch casts it to the loss's."""
    a, b = random_pair(SMALL, np.float32, seed=26)
    go = np.random.default_rng(27).integers(0, 4, SMALL).astype(go_dtype)
    got, want, _ = run_both(torch, "smooth_l1", a, b, "none", grad_output=go)
    assert [g.dtype for g in got] == [w.dtype for w in want] == [np.float32] * 3
    assert_parity(got, want, "none", np.float32)
    crit = nbloss.HuberLoss(reduction="sum")
    crit(a, b)
    for g in crit.backward(np.array(3, go_dtype)):
        assert g.dtype == np.float32


def test_elementwise_mean_is_mean_with_torch_warning(torch):
    F = torch.nn.functional
    a, b = random_pair(SMALL, np.float64, seed=28)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    pairs = [(lambda r: F.smooth_l1_loss(ta, tb, reduction=r), lambda r: nbloss.smooth_l1_loss(a, b, reduction=r)),
             (lambda r: F.huber_loss(ta, tb, reduction=r), lambda r: nbloss.huber_loss(a, b, reduction=r)),
             (lambda r: F.huber_loss(ta, tb, reduction=r),
              lambda r: nbloss.huber_loss_value_and_grad(a, b, reduction=r)[0]),
             (lambda r: torch.nn.SmoothL1Loss(reduction=r)(ta, tb), lambda r: nbloss.SmoothL1Loss(reduction=r)(a, b)),
             (lambda r: torch.nn.HuberLoss(reduction=r)(ta, tb), lambda r: nbloss.HuberLoss(reduction=r)(a, b))]
    for theirs, ours in pairs:
        with pytest.warns(UserWarning) as want:
            t = theirs("elementwise_mean")
        with pytest.warns(UserWarning) as got:
            value = ours("elementwise_mean")
        assert [str(w.message) for w in got] == [str(w.message) for w in want] == [
            "reduction='elementwise_mean' is deprecated. Please use reduction='mean' instead."]
        assert got[0].filename == __file__
        np.testing.assert_allclose(value, t.numpy(), rtol=1e-15)
        assert value == ours("mean")
    # a criterion checks its reduction once: it warns when made, and holds 'mean'
    with pytest.warns(UserWarning, match="elementwise_mean"):
        crit = nbloss.SmoothL1Loss(reduction="elementwise_mean")
    assert crit.reduction == "mean"
    grad = nbloss.smooth_l1_loss_grad
    with pytest.warns(UserWarning, match="elementwise_mean"):
        np.testing.assert_array_equal(grad(a, b, reduction="elementwise_mean"), grad(a, b))


def test_operands_that_take_float16_are_rounded_to_it_first(torch):
    """torch converts an integer operand, and the upstream gradient, to the loss's dtype
    before its float32 arithmetic: float16 rounds 4097 to 4096 (and 1/3 to 0.33325)."""
    a = np.array([4096, 2048, -3000, 0.5, 6e4], np.float16)
    b = np.array([4097, 2049, -3001, 0, 60001])
    go = np.array([1 / 3, 0.1, -7.3, 1e-5, 2.0])
    for name in ("smooth_l1", "huber"):
        got, want, _ = run_both(torch, name, a, b, "none", grad_output=go)
        for g, w in zip(got, want):
            assert g.dtype == w.dtype == np.float16
            np.testing.assert_array_equal(g, w)
        assert got[0][0] == 0  # 4097 is 4096 in float16
    w = np.array([4097, 3, 1, 2049, 1])
    got, want, _ = run_both(torch, "huber", a, a + np.float16(2), "none", weight=w, grad_output=go)
    for g, t in zip(got, want):
        np.testing.assert_array_equal(g, t)
