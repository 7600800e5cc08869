"""Dask arrays: every function lazily, chunk by chunk, against the in-memory results; one
fused task per chunk; chunk alignment; errors at compute(); the cluster example."""

import importlib.util
import math
import pathlib
import tracemalloc
import warnings

import numpy as np
import pytest

import nbloss
from conftest import random_pair, require
from test_reference import FUNCS

da = require("dask.array")
dask = require("dask")

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
RED = ["none", "mean", "sum"]


def assert_same(lazy, eager, reduction, exact_sum=False):
    assert isinstance(lazy, da.Array)
    got = lazy.compute()
    assert got.shape == np.shape(eager) and got.dtype == np.asarray(eager).dtype
    if reduction == "none" or exact_sum:
        np.testing.assert_array_equal(got, eager)
    else:  # float64 partial sums per chunk, then Dask's tree: rounding of the float64 sum
        np.testing.assert_allclose(got, eager, rtol=1e-14 if got.dtype == np.float64 else 1.2e-7)


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", RED)
def test_every_function_matches_in_memory(name, dtype, reduction):
    loss_fn, grad_fn, vg_fn, bw_fn, hess_fn = FUNCS[name]
    a, b = random_pair(10_000, dtype, seed=1)
    a, b = a.reshape(2500, 4), b.reshape(2500, 4)
    A, B = da.from_array(a, chunks=(700, 4)), da.from_array(b, chunks=(700, 4))
    w = np.random.default_rng(2).random(4).astype(dtype)
    for p in (1.0, 0.5):
        loss = loss_fn(A, B, p, reduction)
        assert loss.chunks == (A.chunks if reduction == "none" else ())
        assert_same(loss, loss_fn(a, b, p, reduction), reduction)
        assert_same(loss_fn(A, B, p, reduction, weight=w), loss_fn(a, b, p, reduction, weight=w), reduction)
        # gradients are elementwise: the in-memory bits, chunk by chunk
        assert_same(grad_fn(A, B, p, reduction), grad_fn(a, b, p, reduction), "none")
        assert_same(hess_fn(A, B, p, reduction), hess_fn(a, b, p, reduction), "none")
        value, grad = vg_fn(A, B, p, reduction)
        want_value, want_grad = vg_fn(a, b, p, reduction)
        assert_same(value, want_value, reduction)
        assert_same(grad, want_grad, "none")
        go = 2.0 if reduction != "none" else np.full(a.shape, 2.0, dtype)
        for lazy, eager in zip(bw_fn(go, A, B, p, reduction), bw_fn(go, a, b, p, reduction)):
            assert_same(lazy, eager, "none")


def test_one_chunk_is_bit_identical_and_scalars_broadcast():
    a, b = random_pair(50_001, np.float64, seed=3)
    A = da.from_array(a, chunks=a.shape)
    assert_same(nbloss.huber_loss(A, b, 0.7, "mean"), nbloss.huber_loss(a, b, 0.7, "mean"), "mean",
                exact_sum=True)
    assert_same(nbloss.huber_loss(A, 0.25, 0.7, "sum"), nbloss.huber_loss(a, 0.25, 0.7, "sum"), "sum",
                exact_sum=True)


def test_broadcast_operands_and_criteria():
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((600, 1)), rng.standard_normal(5)
    A = da.from_array(a, chunks=(250, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for lazy, eager in zip(nbloss.smooth_l1_loss_backward(1.0, A, b, 0.5, "mean"),
                               nbloss.smooth_l1_loss_backward(1.0, a, b, 0.5, "mean")):
            np.testing.assert_allclose(lazy.compute(), eager, rtol=1e-13)
        crit, ref_crit = nbloss.HuberLoss(delta=0.5), nbloss.HuberLoss(delta=0.5)
        np.testing.assert_allclose(crit(A, b).compute(), ref_crit(a, b), rtol=1e-14)
    for lazy, eager in zip(crit.backward(3.0), ref_crit.backward(3.0)):
        np.testing.assert_allclose(lazy.compute(), eager, rtol=1e-13)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numpy_operands_beside_dask_arrays_are_never_expanded(dtype, monkeypatch):
    """A NumPy target, weight or grad_output broadcast along axes of a Dask loss is not
    copied to the loss's size, neither into the graph when the call is built nor into
    a chunk: each chunk call gets the operand's own elements (checked with a spy on
    ``_host.kernel_operand``), and the results are the in-memory call's bits."""
    from nbloss import _host

    rng = np.random.default_rng(7)
    shape, chunks = (3000, 1000), (750, 1000)  # C-contiguous chunks: not laid out again
    a = rng.standard_normal(shape).astype(dtype)
    col = rng.standard_normal((shape[0], 1)).astype(dtype)
    w = rng.random(shape[1]).astype(dtype)
    go = rng.standard_normal((shape[0], 1)).astype(dtype)
    A = da.from_array(a, chunks=chunks)
    def build():
        return [nbloss.huber_loss(A, col, 0.5, "none", weight=w),
                nbloss.smooth_l1_loss_value_and_grad(A, col, 0.5, "sum", weight=w)[1],
                nbloss.huber_loss_backward(go, A, col, 0.5, "none", weight=w)[0]]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        build()  # imports what building a graph needs, before measuring
        tracemalloc.start()
        try:
            lazy = build()
            built = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert built <= 0.1 * a.nbytes, built  # the graph's own objects: 2% here
        eager = [nbloss.huber_loss(a, col, 0.5, "none", weight=w),
                 nbloss.smooth_l1_loss_value_and_grad(a, col, 0.5, "sum", weight=w)[1],
                 nbloss.huber_loss_backward(go, a, col, 0.5, "none", weight=w)[0]]
        seen = []
        kernel_operand = _host.kernel_operand
        monkeypatch.setattr(_host, "kernel_operand",
                            lambda array, to: seen.append(array.shape) or kernel_operand(array, to))
        got = dask.compute(*lazy, scheduler="sync")
    for result, want in zip(got, eager):
        np.testing.assert_array_equal(result, want)
    assert seen and all(math.prod(s) <= max(shape) for s in seen), seen


def test_dask_operands_broadcast_along_chunked_axes_are_read_at_their_own_size(monkeypatch):
    """A Dask target, weight or grad_output broadcast along axes the loss is chunked
    along is neither rechunked (no warning) nor broadcast to the loss's chunks: each chunk
    call gets the operand's own elements, and the results are the in-memory call's bits.
    The loss takes its chunks along an axis from the first Dask operand that has it, here
    the target's for the rows although the input comes first."""
    from nbloss import _host

    rng = np.random.default_rng(8)
    a = rng.standard_normal((400, 100))
    col, w, go = rng.standard_normal((400, 1)), rng.random(100), rng.standard_normal((400, 1))
    A = da.from_array(a, chunks=(100, 50))
    Col, W, Go = (da.from_array(col, chunks=(100, 1)), da.from_array(w, chunks=50),
                  da.from_array(go, chunks=(100, 1)))
    seen = []  # (size, strides) of what the chunk calls lay out
    kernel_operand = _host.kernel_operand
    monkeypatch.setattr(_host, "kernel_operand", lambda array, to: seen.append(
        (array.size, array.strides)) or kernel_operand(array, to))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.filterwarnings("error", "(?s).*chunks differ")
        pairs = [(nbloss.huber_loss(A, Col, 0.5, "none", weight=W),
                  nbloss.huber_loss(a, col, 0.5, "none", weight=w)),
                 (nbloss.smooth_l1_loss_value_and_grad(A, Col, 0.5, "mean", weight=W)[1],
                  nbloss.smooth_l1_loss_value_and_grad(a, col, 0.5, "mean", weight=w)[1]),
                 (nbloss.huber_loss_backward(Go, A, Col, 0.5, "none", weight=W)[0],
                  nbloss.huber_loss_backward(go, a, col, 0.5, "none", weight=w)[0])]
        lazy_rows = nbloss.huber_loss(Col, a, 0.5, "sum")  # the input is the broadcast one
        assert lazy_rows.ndim == 0
        pairs.append((lazy_rows, nbloss.huber_loss(col, a, 0.5, "sum")))
    seen.clear()
    got = dask.compute(*[lazy for lazy, _ in pairs], scheduler="sync")
    for result, (lazy, want) in zip(got, pairs):
        if lazy.ndim:
            assert lazy.chunks == A.chunks
            np.testing.assert_array_equal(result, want)
        else:  # partial sums added in another order
            np.testing.assert_allclose(result, want, rtol=1e-14)
    # the broadcast operands arrive at their own size, not as stride-0 views of a chunk
    assert seen and not [s for s in seen if 0 in s[1] and s[0] > 100], seen


def test_a_length_one_axis_chunked_with_an_empty_chunk_is_one_chunk():
    """Dask allows chunks (1, 0) along an axis of length 1; such an axis is one chunk of
    the loss, silently: right lazy shapes, the in-memory results, no warning."""
    x, t = np.array([[0.5]]), np.array([[1.0, 3.0]])
    X = da.from_array(x, chunks=((1, 0), (1,)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        warnings.filterwarnings("error", "(?s).*chunks differ")
        loss = nbloss.huber_loss(X, t, 1.0, "none")
        assert loss.chunks == ((1,), (2,))
        assert_same(loss, nbloss.huber_loss(x, t, 1.0, "none"), "none")
        criterion = nbloss.HuberLoss("none", 1.0)
        criterion(X, t)
        for lazy, want in zip(criterion.backward(2.0), nbloss.huber_loss_backward(2.0, x, t, 1.0, "none")):
            assert lazy.shape == want.shape
            np.testing.assert_array_equal(lazy.compute(), want)
        W = da.from_array(np.array([2.0]), chunks=((1, 0),))
        a = np.linspace(-2, 2, 15, dtype=np.float32).reshape(5, 3, 1, 1)
        assert_same(nbloss.huber_loss_grad(a, np.ones(1, np.float32), 0.5, "mean", weight=W),
                    nbloss.huber_loss_grad(a, np.ones(1, np.float32), 0.5, "mean", weight=np.array([2.0])),
                    "none")


def test_a_one_element_grad_output_of_a_reduced_loss_is_its_one_value():
    """As on the host: for 'mean' and 'sum', a NumPy array of one element of any shape, or
    a Dask one (0-d or not, lazy), multiplies the gradient; more elements are refused."""
    a = np.array([0.5, 2.0, -3.0])
    A = da.from_array(a, chunks=2)
    for reduction in ("mean", "sum"):
        want = nbloss.huber_loss_backward(2.0, a, np.zeros(3), 1.0, reduction)
        for go in (np.float64(2.0), np.array([2.0]), np.array([[2.0]]), da.from_array(np.array(2.0)),
                   da.from_array(np.array([[2.0]])), da.from_array(np.array([2.0]), chunks=((1, 0),))):
            got = nbloss.huber_loss_backward(go, A, np.zeros(3), 1.0, reduction)
            for lazy, expected in zip(got, want):
                np.testing.assert_array_equal(lazy.compute(), expected)
        for go in (np.ones(2), da.ones(2, chunks=1)):
            with pytest.raises(ValueError, match=rf"grad_output of a '{reduction}' loss must be a scalar, got shape \(2,\)"):
                nbloss.huber_loss_backward(go, A, np.zeros(3), 1.0, reduction)


def test_a_dask_grad_output_beside_numpy_operands_makes_the_backward_lazy():
    """The one Dask array of a backward is its grad_output: the results are Dask arrays
    chunked like it ('none') or in one chunk ('mean'/'sum'), nothing is computed before
    compute(), and the values are the in-memory backward's."""
    rng = np.random.default_rng(4)
    a = rng.standard_normal((6, 40)).astype(np.float32) * 3
    b = rng.standard_normal((6, 1)).astype(np.float32)
    calls = []

    def counted(chunk):
        calls.append(chunk.shape)
        return chunk

    for name in ("smooth_l1", "huber"):
        backward = getattr(nbloss, f"{name}_loss_backward")
        for reduction in RED:
            go = rng.standard_normal((6, 40) if reduction == "none" else ()).astype(np.float32)
            GO = da.from_array(go, chunks=(3, 20) if reduction == "none" else ())
            GO = GO.map_blocks(counted, dtype=GO.dtype, meta=np.empty((0,) * go.ndim, go.dtype))
            lazy = backward(GO, a, b, 0.5, reduction)
            want = backward(go, a, b, 0.5, reduction)
            assert calls == []
            rows, cols = ((3, 3), (20, 20)) if reduction == "none" else ((6,), (40,))
            assert [got.chunks for got in lazy] == [(rows, cols), (rows, (1,))]
            grad_input, grad_target = dask.compute(*lazy, scheduler="sync")
            assert calls
            np.testing.assert_array_equal(grad_input, want[0])
            # summed over the grad_output's column chunks: the same 40 terms added in
            # another order, apart by at most 40 roundings of the terms' magnitude
            bound = 40 * np.finfo(np.float32).eps * np.abs(want[0]).astype(np.float64).sum(axis=1, keepdims=True)
            assert np.all(np.abs(grad_target.astype(np.float64) - want[1]) <= bound)
            calls.clear()
    with pytest.raises(ValueError, match="grad_output of shape \\(2,\\) does not broadcast"):
        nbloss.huber_loss_backward(da.ones(2, chunks=1), a, b, 1.0, "none")


def test_an_empty_losss_one_value_dask_grad_output_gives_empty_gradients():
    """An empty loss has nothing to multiply: a one-value Dask grad_output of a 'mean' or
    'sum' backward gives the in-memory call's empty gradients, beside NumPy or Dask
    operands (it was broadcast to the empty shape, which each chunk call refused)."""
    a = np.zeros((0, 4), np.float32)
    for reduction in ("mean", "sum"):
        want = nbloss.smooth_l1_loss_backward(np.float32(2), a, a, 0.5, reduction)
        for x in (a, da.from_array(a)):
            for go in (da.from_array(np.float32(2)), da.from_array(np.array([[2.0]]))):
                got = dask.compute(*nbloss.smooth_l1_loss_backward(go, x, a, 0.5, reduction))
                for g, w in zip(got, want):
                    assert g.shape == w.shape and g.dtype == w.dtype


@pytest.mark.parametrize("loss_dtype", [np.float16, np.float32, np.float64])
def test_a_grad_output_of_another_dtype_is_rounded_as_on_the_host(loss_dtype):
    """A Dask grad_output of any float dtype (or ints) next to a loss of another: each
    chunk call rounds it as the host does (to the result dtype first): the in-memory
    backward's grad_input to the bit."""
    rng = np.random.default_rng(9)
    a = (rng.standard_normal((6, 40)) * 3).astype(loss_dtype)
    b = rng.standard_normal((6, 1)).astype(loss_dtype)
    A = da.from_array(a, chunks=(3, 20))
    for go_dtype in (np.float16, np.float32, np.float64, np.int32):
        go = (rng.standard_normal((6, 40)) * 1e3 + 0.1234567).astype(go_dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's shape warning
            want = nbloss.smooth_l1_loss_backward(go, a, b, 0.5, "none")
            lazy = nbloss.smooth_l1_loss_backward(da.from_array(go, chunks=(3, 20)), A, b, 0.5, "none")
        grad_input, grad_target = dask.compute(*lazy, scheduler="sync")
        assert grad_input.dtype == want[0].dtype and grad_target.dtype == want[1].dtype
        np.testing.assert_array_equal(grad_input, want[0])
        # summed over the columns' two chunks: the same 40 terms added in another order,
        # apart by at most 40 roundings of the terms' magnitude
        bound = 40 * np.finfo(loss_dtype).eps * np.abs(want[0]).astype(np.float64).sum(axis=1, keepdims=True)
        assert np.all(np.abs(grad_target.astype(np.float64) - want[1]) <= bound)


def test_a_numpy_input_broadcast_beside_one_dask_chunk_keeps_the_losss_shape():
    """A NumPy input broadcast along an axis where the loss has one chunk: the lazy
    results have the loss's (or the input's) shape and the in-memory call's values."""
    x = np.array([[0.5], [-1.0], [2.0], [0.0]])
    t = np.array([[0.0, 1.0, 3.0]])
    T = da.from_array(t)  # one chunk
    for reduction in RED:
        assert_same(nbloss.huber_loss(x, T, 1.0, reduction), nbloss.huber_loss(x, t, 1.0, reduction),
                    reduction)
        for f in (nbloss.huber_loss_grad, nbloss.smooth_l1_loss_hess_diag):
            assert_same(f(x, T, 1.0, reduction), f(x, t, 1.0, reduction), "none")
        go = 2.0 if reduction != "none" else np.full((4, 3), 2.0)
        for lazy, eager in zip(nbloss.huber_loss_backward(go, x, T, 1.0, reduction),
                               nbloss.huber_loss_backward(go, x, t, 1.0, reduction)):
            np.testing.assert_allclose(lazy.compute(), eager, rtol=1e-15)
    lazy = nbloss.huber_loss(np.float64(2.0), da.zeros(5, chunks=5), 1.0, "none")
    assert_same(lazy, nbloss.huber_loss(np.float64(2.0), np.zeros(5), 1.0, "none"), "none")


def _count_kernel_runs(monkeypatch):
    """Record the name of every CPU kernel run from now on (the host backend's plans are
    rebuilt with counting kernels)."""
    from nbloss import _cpu, _host

    runs = []
    kernels = _cpu.kernels

    def counting(*args, **kw):
        chosen = kernels(*args, **kw)

        def counted(name):
            def run(*a):
                runs.append(name)
                return getattr(chosen, name)(*a)
            return run

        return type(chosen)(*(counted(name) for name in chosen._fields))

    monkeypatch.setattr(_cpu, "kernels", counting)
    # plans and kernel calls of their own, with the counting kernels (dispatched: they
    # are not the serial kernels whose entry points _cpu.DirectCalls calls); the cached
    # ones return afterwards
    monkeypatch.setattr(_host, "_PLANS", {})
    monkeypatch.setattr(_cpu, "_BY_VARIANT", {})
    return runs


def test_value_and_grad_runs_one_kernel_per_chunk(monkeypatch):
    a, b = random_pair(10_000, np.float32, seed=5)
    A, B = da.from_array(a, chunks=1000), da.from_array(b, chunks=1000)
    want = nbloss.smooth_l1_loss_value_and_grad(a, b, 1.0, "mean")
    runs = _count_kernel_runs(monkeypatch)
    value, grad = nbloss.smooth_l1_loss_value_and_grad(A, B, 1.0, "mean")
    value, grad = dask.compute(value, grad, scheduler="sync")
    assert runs == ["loss_sum"] * A.numblocks[0]
    np.testing.assert_array_equal(grad, want[1])
    np.testing.assert_allclose(value, want[0], rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_none_value_and_grad_runs_one_kernel_per_chunk(monkeypatch, dtype):
    """'none' value_and_grad: one fused kernel per chunk for both results, every chunk read
    once; the in-memory results to the bit."""
    a, b = random_pair(10_000, dtype, seed=6)
    A, B = da.from_array(a, chunks=1000), da.from_array(b, chunks=1000)
    want_value, want_grad = nbloss.huber_loss_value_and_grad(a, b, 0.5, "none")
    runs = _count_kernel_runs(monkeypatch)
    value, grad = nbloss.huber_loss_value_and_grad(A, B, 0.5, "none")
    value, grad = dask.compute(value, grad, scheduler="sync")
    assert runs == ["loss_each"] * A.numblocks[0]
    assert value.dtype == want_value.dtype and grad.dtype == want_grad.dtype
    np.testing.assert_array_equal(value, want_value)
    np.testing.assert_array_equal(grad, want_grad)


def test_mismatched_chunks_are_rechunked_with_a_warning():
    a, b = random_pair(1000, np.float64, seed=6)
    A, B = da.from_array(a, chunks=300), da.from_array(b, chunks=250)
    with pytest.warns(UserWarning, match="target's chunks differ .* rechunked"):
        loss = nbloss.huber_loss(A, B, reduction="none")
    assert loss.chunks == A.chunks
    np.testing.assert_array_equal(loss.compute(), nbloss.huber_loss(a, b, reduction="none"))


def test_errors_are_raised_early_or_at_compute():
    a = da.from_array(np.ones(10, np.float32), chunks=5)
    with pytest.raises(TypeError, match="input must be a float16, float32 or float64 array"):
        nbloss.huber_loss(a.astype(np.complex64), 0.0)
    with pytest.raises(TypeError, match=r"input \(int64\) and target \(int64\) are both integer"):
        nbloss.huber_loss(a.astype(np.int64), np.arange(10))
    with pytest.raises(ValueError, match="do not broadcast"):
        nbloss.huber_loss(a, np.zeros(3))
    with pytest.raises(ValueError, match="delta"):
        nbloss.huber_loss(a, a, delta=-1.0)
    sparse_like = a.map_blocks(lambda x: x, meta=np.ma.masked_array(np.empty(0, np.float32)))
    with pytest.raises(TypeError, match="nbloss takes Dask arrays of NumPy chunks"):
        nbloss.huber_loss(sparse_like, 0.0)
    with pytest.raises(ValueError, match="out= is not supported for Dask arrays"):
        nbloss.huber_loss(a, a, reduction="none", out=np.empty(10, np.float32))
    # a chunk that is not what its array claims: the kernel's check fails inside the task
    lying = a.map_blocks(lambda x: x.astype(np.complex64), dtype=np.float32)
    loss = nbloss.huber_loss(lying, 0.0, reduction="sum")
    with pytest.raises(TypeError, match="got dtype complex64"):
        loss.compute()


def test_import_does_not_import_dask():
    from conftest import run_python
    out = run_python("import sys, numpy as np, nbloss\n"
                     "nbloss.huber_loss(np.ones(3), np.zeros(3))\n"
                     "print('dask' in sys.modules)")
    assert out.strip() == "False"


def load_example():
    spec = importlib.util.spec_from_file_location("dask_regression", EXAMPLES / "dask_regression.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cluster_example_matches_the_in_memory_fit():
    """2 worker processes on 127.0.0.1: the fit equals the in-memory one, and a failing
    task on a worker surfaces at compute() with its cause."""
    require("distributed")
    example = load_example()
    import io
    out = io.StringIO()
    w_memory, w_cluster, _ = example.main(rows=20_000, workers=2, chunks=4, out=out)
    np.testing.assert_allclose(w_cluster, w_memory, rtol=0, atol=1e-9)
    assert "2 workers" in out.getvalue()

    cluster, client = example.local_cluster(2)
    try:
        assert all(addr.startswith("tcp://127.0.0.1:") for addr in client.scheduler_info()["workers"])
        a = da.from_array(np.ones(10, np.float32), chunks=5)
        lying = a.map_blocks(lambda x: x.astype(np.complex64), dtype=np.float32)
        with pytest.raises(TypeError, match="got dtype complex64"):
            client.compute(nbloss.huber_loss(lying, 0.0, reduction="sum")).result()
    finally:
        client.close()
        cluster.close()


@pytest.mark.parametrize("reduction", RED)
def test_criterion_backward_returns_arrays_the_caller_owns(reduction):
    a, b = random_pair(1000, np.float64, seed=7)
    A, B = da.from_array(a, chunks=300), da.from_array(b, chunks=300)
    crit, eager = nbloss.SmoothL1Loss(reduction=reduction), nbloss.SmoothL1Loss(reduction=reduction)
    crit(A, B)
    eager(a, b)
    gi, gt = crit.backward()
    gi[:] = 0.0  # Dask's __setitem__ changes this array object's graph
    gt[:] = 0.0
    for lazy, want in zip(crit.backward(), eager.backward()):
        np.testing.assert_array_equal(lazy.compute(), want)


def test_dtype_rule_matches_in_memory():
    """Integer chunks, a list of Python ints (float64) and a NumPy scalar (a typed 0-d
    array, with torch's shape warning) give what the in-memory call gives."""
    a, b = random_pair(1000, np.float32, seed=8)
    ints = np.arange(1000) % 5 - 2
    A = da.from_array(a, chunks=300)
    cases = [(A, da.from_array(ints, chunks=300), a, ints), (A, ints.tolist(), a, ints.tolist()),
             (da.from_array(ints, chunks=300), b, ints, b)]
    for lazy_a, lazy_b, eager_a, eager_b in cases:
        for reduction in RED:
            assert_same(nbloss.huber_loss(lazy_a, lazy_b, 0.5, reduction),
                        nbloss.huber_loss(eager_a, eager_b, 0.5, reduction), reduction)
            for lazy, eager in zip(nbloss.smooth_l1_loss_backward(1.0, lazy_a, lazy_b, 0.5, "sum"),
                                   nbloss.smooth_l1_loss_backward(1.0, eager_a, eager_b, 0.5, "sum")):
                assert_same(lazy, eager, "none")
    with pytest.warns(UserWarning, match="Using a target size"):
        loss = nbloss.smooth_l1_loss(A, np.float64(0.5), reduction="none")
        want = nbloss.smooth_l1_loss(a, np.float64(0.5), reduction="none")
    assert_same(loss, want, "none")
    assert loss.dtype == np.float64


def test_reduction_beyond_float32_is_inf_without_a_warning():
    """Rounded as on the CPU (and CUDA): inf, no NumPy overflow warning."""
    a = np.full(3, 3e38, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lazy = nbloss.huber_loss(da.from_array(a, chunks=2), 0.0, reduction="sum").compute()
    assert lazy == nbloss.huber_loss(a, 0.0, reduction="sum") == np.inf and lazy.dtype == np.float32


@pytest.mark.parametrize("target", [0.3, np.full(8, 0.3)], ids=["number", "ndarray"])
def test_a_dask_weight_beside_host_operands_stays_lazy(target):
    """The host shortcut for an ndarray and a Python number or an ndarray must still see
    a Dask weight."""
    a = np.linspace(-2, 2, 8)
    w = np.full(8, 2.0)
    result = nbloss.smooth_l1_loss(a, target, 1.0, "sum", weight=da.from_array(w, chunks=4))
    assert isinstance(result, da.Array)
    np.testing.assert_allclose(result.compute(), nbloss.smooth_l1_loss(a, 0.3, 1.0, "sum",
                                                                       weight=w), rtol=1e-12)
