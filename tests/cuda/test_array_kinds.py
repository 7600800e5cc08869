"""Results in the caller's array type on CUDA: numba device arrays in, numba device arrays
out; the dispatch by the deciding operand's type (``_device.RESULT_TYPES``), and the rule
for mixed kinds, checked with stand-in array types registered in that table; CuPy and
torch CUDA tensors on a real GPU (skipped on the simulator, which cannot export arrays).

    NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda/test_array_kinds.py
"""

import sys
import types
import warnings

import numpy as np
import pytest

import nbloss
from conftest import SIMULATOR, SMALL, cuda_or_skip, random_pair

cuda = cuda_or_skip()
from nbloss import _device  # noqa: E402  (after the simulator is chosen)

RED = ["none", "mean", "sum"]


def is_numba(x):
    return getattr(x, "__cuda_ndarray__", False) and type(x).__module__.startswith("numba")


def stand_in(module):
    """An array type of a library named ``module``, holding a numba device array's memory
    without a copy. On the simulator a subclass of its device arrays (they export no
    ``__cuda_array_interface__``); on a GPU an object that exports the array's
    ``__cuda_array_interface__``, as CuPy's and torch's do."""
    if SIMULATOR:
        base = type(cuda.to_device(np.zeros(1)))

        class Array(base):
            def __init__(self, d, device="fake:0"):
                super().__init__(d._ary)  # the same buffer
                self.device = device
    else:
        class Array:
            def __init__(self, d, device="fake:0"):
                self.d, self.device = d, device

            @property
            def __cuda_array_interface__(self):
                return self.d.__cuda_array_interface__

            @property
            def shape(self):
                return self.d.shape

            def copy_to_host(self):
                return self.d.copy_to_host()

            def __setitem__(self, index, value):
                self.d[index] = value
    Array.__module__ = module
    Array.__qualname__ = Array.__name__ = f"{module}.ndarray"
    return Array


FakeCupy, FakeTorch, Other = stand_in("fakecupy"), stand_in("faketorch.cuda"), stand_in("otherlib")


@pytest.fixture
def kinds(monkeypatch):
    """The stand-ins' libraries registered in the result table: each wraps a result (a
    numba device array) in its own type, on the deciding operand's device; every call is
    recorded as (library, result, deciding operand)."""
    calls = []

    def wrapper(name, cls):
        def wrap(result, like):
            assert is_numba(result), type(result)
            calls.append((name, result, like))
            return cls(result, device=like.device)
        return wrap
    monkeypatch.setitem(_device.RESULT_TYPES, "fakecupy", wrapper("fakecupy", FakeCupy))
    monkeypatch.setitem(_device.RESULT_TYPES, "faketorch", wrapper("faketorch", FakeTorch))
    return calls


def put(x, kind=None, device="fake:0"):
    d = cuda.to_device(np.array(x, order="C"))
    return d if kind is None else kind(d, device=device)


def host(x):
    return tuple(host(r) for r in x) if isinstance(x, tuple) else x.copy_to_host()


def every_operation(a, b, reduction, **kw):
    """(name, result) of every public operation on the device operands ``a`` and ``b``:
    the functions, value_and_grad's pair, the backward pair, a criterion's forward and
    backward, fvcore's drop-in."""
    go = 1.5 if reduction != "none" else 2.0
    crit = nbloss.HuberLoss(reduction=reduction, delta=0.5)
    value = crit(a, b)
    from nbloss.fvcore import smooth_l1_loss as fvcore_loss
    return [("loss", nbloss.huber_loss(a, b, 0.5, reduction, **kw)),
            ("grad", nbloss.smooth_l1_loss_grad(a, b, 0.5, reduction, **kw)),
            ("hess", nbloss.huber_loss_hess_diag(a, b, 0.5, reduction, **kw)),
            *zip(("value", "value_grad"), nbloss.smooth_l1_loss_value_and_grad(a, b, 0.5, reduction, **kw)),
            *zip(("grad_input", "grad_target"), nbloss.huber_loss_backward(go, a, b, 0.5, reduction, **kw)),
            ("criterion", value), *zip(("crit_input", "crit_target"), crit.backward(go)),
            ("fvcore", fvcore_loss(a, b, 0.5, reduction))]


# -- numba in, numba out -----------------------------------------------------------------

@pytest.mark.parametrize("reduction", RED)
def test_numba_arrays_in_numba_arrays_out(reduction):
    a, b = random_pair(SMALL, np.float32, seed=40)
    host_results = dict(every_operation(a, b, reduction))
    for name, got in every_operation(put(a), put(b), reduction):
        assert is_numba(got), (name, type(got))
        want = host_results[name]
        assert got.shape == np.shape(want) and got.dtype == np.asarray(want).dtype, name
        np.testing.assert_allclose(got.copy_to_host(), want, rtol=1e-6, err_msg=name)
    assert nbloss.huber_loss(put(a), put(b), reduction="mean").shape == ()


# -- the dispatch: each library's results in its own type ---------------------------------

@pytest.mark.parametrize("reduction", RED)
@pytest.mark.parametrize("kind", [FakeCupy, FakeTorch])
def test_results_take_the_operands_type(kinds, kind, reduction):
    a, b = random_pair(SMALL, np.float64, seed=41)
    w = np.linspace(0.5, 2, SMALL)
    host_results = dict(every_operation(a, b, reduction, weight=w))
    dev = [put(x, kind, device="fake:1") for x in (a, b, w)]
    for name, got in every_operation(dev[0], dev[1], reduction, weight=dev[2]):
        assert type(got) is kind, (name, type(got))
        assert got.device == "fake:1", name  # on the operand's device
        want = host_results[name]  # fvcore's takes no weight, on either side
        assert tuple(got.shape) == np.shape(want), name
        np.testing.assert_allclose(got.copy_to_host(), want, rtol=1e-12, err_msg=name)
    # one wrap per result, given the input: the deciding operand
    assert len(kinds) == 11 and all(like is dev[0] for _, _, like in kinds)


def test_out_is_returned_as_given(kinds):
    a, b = random_pair(SMALL, np.float32, seed=42)
    da, db = put(a, FakeCupy), put(b, FakeCupy)
    out = put(np.empty(SMALL, np.float32), FakeTorch)  # any device array: returned as is
    assert nbloss.huber_loss(da, db, 1.0, "none", out=out) is out
    np.testing.assert_array_equal(out.copy_to_host(), nbloss.huber_loss(a, b, 1.0, "none"))
    for reduction in RED:
        gout = put(np.empty(SMALL, np.float32), FakeCupy)
        value, g = nbloss.smooth_l1_loss_value_and_grad(da, db, 0.5, reduction, out=gout)
        assert g is gout and type(value) is FakeCupy
        np.testing.assert_array_equal(gout.copy_to_host(), nbloss.smooth_l1_loss_grad(a, b, 0.5, reduction))
        hout = put(np.empty(SMALL, np.float32), FakeCupy)
        assert nbloss.huber_loss_hess_diag(da, db, 0.5, reduction, out=hout) is hout
        gout = put(np.empty(SMALL, np.float32))
        assert nbloss.huber_loss_grad(da, db, 0.5, reduction, out=gout) is gout
    # a broadcast input: out has its shape and receives the summed gradient
    col = put(a[:5].reshape(5, 1), FakeCupy)
    gcol = put(np.empty((5, 1), np.float32), FakeCupy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert nbloss.huber_loss_grad(col, put(b[:4], FakeCupy), 1.0, "sum", out=gcol) is gcol
        want = nbloss.huber_loss_grad(a[:5].reshape(5, 1), b[:4], 1.0, "sum")
    np.testing.assert_allclose(gcol.copy_to_host(), want, rtol=1e-6)


def test_criterion_results_are_the_callers_to_change(kinds):
    a, b = random_pair(SMALL, np.float64, seed=43)
    crit = nbloss.SmoothL1Loss(reduction="sum", beta=0.6)
    crit(put(a, FakeCupy), put(b, FakeCupy))
    gi, gt = crit.backward()
    assert type(gi) is FakeCupy and type(gt) is FakeCupy
    gi[:] = 0.0
    gt[:] = 0.0
    want = nbloss.smooth_l1_loss_backward(1.0, a, b, 0.6, "sum")
    for got, expected in zip(host(crit.backward()), want):
        np.testing.assert_array_equal(got, expected)


# -- mixed kinds: the input decides; a Python number or a 0-d array does not -----------

def test_mixed_kinds_rule(kinds):
    a, b = random_pair(6, np.float64, seed=44)
    s = np.float64(0.75)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # shape mismatches, as torch warns
        cases = [
            # (input, target, weight) -> the type of the results
            ((put(a, FakeCupy), put(b), None), FakeCupy),
            ((put(a), put(b, FakeCupy), None), cuda.to_device(a).__class__),
            ((put(a, FakeTorch), put(b, FakeCupy), put(b, FakeCupy)), FakeTorch),
            ((put(a, FakeCupy), put(b, FakeTorch), None), FakeCupy),
            ((0.5, put(b, FakeTorch), None), FakeTorch),  # a Python number does not decide
            ((put(s, FakeCupy), put(b, FakeTorch), None), FakeTorch),  # nor does a 0-d array
            ((put(s), put(b, FakeCupy), None), FakeCupy),
            ((put(a), put(s, FakeCupy), None), cuda.to_device(a).__class__),
            ((0.5, put(s, FakeTorch), put(s, FakeCupy)), FakeTorch),  # all 0-d: the first
            ((0.5, 0.25, put(s, FakeCupy)), FakeCupy),  # the weight, the only array
            ((put(a, Other), put(b, FakeCupy), None), cuda.to_device(a).__class__),  # not listed
        ]
        for (x, y, w), want in cases:
            results = [nbloss.huber_loss(x, y, 1.0, red, weight=w) for red in RED]
            results += list(nbloss.huber_loss_value_and_grad(x, y, 1.0, "mean", weight=w))
            results += list(nbloss.huber_loss_backward(1.0, x, y, 1.0, "sum", weight=w))
            for got in results:
                assert type(got) is want, ([type(o).__name__ for o in (x, y, w)], type(got))
    # the deciding operand is what a wrapper is given (torch: the device it puts results on)
    kinds.clear()
    x = put(b, FakeTorch, device="fake:3")
    assert nbloss.huber_loss(0.5, x, reduction="none").device == "fake:3"
    assert kinds[0][2] is x


def test_grad_output_does_not_decide(kinds):
    a, b = random_pair(SMALL, np.float64, seed=45)
    go = put(np.ones(SMALL), FakeTorch)
    gi, gt = nbloss.huber_loss_backward(go, put(a), put(b), 1.0, "none")
    assert is_numba(gi) and is_numba(gt)
    gi, gt = nbloss.huber_loss_backward(go, put(a, FakeCupy), put(b), 1.0, "none")
    assert type(gi) is FakeCupy and type(gt) is FakeCupy


# -- the real CuPy and torch entries, with stand-in modules ----------------------------

def test_cupy_and_torch_entries_wrap_without_a_copy_or_a_stream(monkeypatch):
    """The table's CuPy and torch entries hand their library an export of the result
    itself (the same memory) that names no stream to wait for, and torch the deciding
    operand's device; the libraries are taken from sys.modules, never imported."""
    seen = []
    fake_cupy = types.ModuleType("cupy")
    fake_cupy.asarray = lambda obj: seen.append(("cupy", obj, None)) or FakeCupy(obj.array)
    fake_torch = types.ModuleType("torch")
    fake_torch.as_tensor = lambda obj, device: seen.append(("torch", obj, device)) or FakeTorch(
        obj.array, device=device)
    fake_cupy.empty = lambda shape, dtype: seen.append(("cupy.empty", shape, dtype)) or FakeCupy(
        cuda.device_array(shape, dtype))
    fake_torch.float32 = "torch.float32"
    fake_torch.empty = lambda shape, dtype, device: seen.append(("torch.empty", shape, dtype)) or (
        FakeTorch(cuda.device_array(shape, np.float32), device=device))
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setitem(sys.modules, "torch", fake_torch)
    Cupy, Torch = stand_in("cupy"), stand_in("torch")
    a, b = random_pair(SMALL, np.float32, seed=46)
    got = nbloss.huber_loss(put(a, Cupy), put(b, Cupy), 0.5, "none")
    assert type(got) is FakeCupy
    got = nbloss.huber_loss(put(a, Torch, device="cuda:1"), put(b), 0.5, "mean")
    assert type(got) is FakeTorch and got.device == "cuda:1" and tuple(got.shape) == ()
    assert [(lib, device) for lib, _, device in seen] == [("cupy", None), ("torch", "cuda:1")]
    for _, export, _ in seen:
        assert is_numba(export.array)
    np.testing.assert_allclose(got.copy_to_host(), nbloss.huber_loss(a, b, 0.5), rtol=1e-6)
    # an empty result has no memory to wrap (a null pointer): an empty array of the library
    seen.clear()
    e = np.zeros((0, 3), np.float32)
    got = nbloss.huber_loss(put(e, Cupy), put(e), 0.5, "none")
    assert type(got) is FakeCupy and tuple(got.shape) == (0, 3)
    got = nbloss.huber_loss_grad(put(e, Torch, device="cuda:2"), 0.0, 0.5)
    assert type(got) is FakeTorch and got.device == "cuda:2"
    assert [s[:3] for s in seen] == [("cupy.empty", (0, 3), np.float32),
                                     ("torch.empty", (0, 3), "torch.float32")]

    class Interface:  # what numba exports: a stream to wait for
        __cuda_array_interface__ = {"shape": (3,), "strides": None, "data": (1 << 20, False),
                                    "typestr": "<f4", "stream": 7, "version": 3}
    assert _device._Export(Interface()).__cuda_array_interface__ == dict(
        Interface.__cuda_array_interface__, stream=None)


def test_cupy_and_torch_are_never_imported():
    """Results for numba arrays (and stand-ins of any other library) import neither CuPy
    nor torch: only their own arrays make their results."""
    from conftest import run_python
    out = run_python(
        "import sys, numpy as np, nbloss\n"
        "from numba import cuda\n"
        "a = cuda.to_device(np.linspace(-2, 2, 9))\n"
        "r = nbloss.huber_loss_value_and_grad(a, 0.5, reduction='mean')\n"
        "r += nbloss.huber_loss_backward(1.0, a, a, reduction='sum')\n"
        "assert all(getattr(x, '__cuda_ndarray__', False) for x in r)\n"
        "print(sorted(m for m in ('cupy', 'torch') if m in sys.modules))\n")
    assert out.strip() == "[]"


# -- on a real GPU: CuPy arrays and torch CUDA tensors ------------------------------------

def gpu_library(name):
    if SIMULATOR:
        pytest.skip(f"{name} needs a real GPU (the simulator cannot export its arrays)")
    module = pytest.importorskip(name)
    if name == "torch" and not module.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    return module


@pytest.fixture
def allocations(monkeypatch):
    """The device pointers of every array a DeviceCall allocates."""
    pointers = []
    empty = _device.DeviceCall._empty

    def recording(self, shape, dtype):
        array = empty(self, shape, dtype)
        pointers.append(array.device_ctypes_pointer.value)
        return array
    monkeypatch.setattr(_device.DeviceCall, "_empty", recording)
    return pointers


@pytest.mark.parametrize("reduction", RED)
def test_cupy_in_cupy_out(allocations, reduction):
    cp = gpu_library("cupy")
    a, b = random_pair(10_001, np.float32, seed=47)
    host_results = dict(every_operation(a, b, reduction))
    for name, got in every_operation(cp.asarray(a), cp.asarray(b), reduction):
        assert isinstance(got, cp.ndarray), (name, type(got))
        want = host_results[name]
        assert got.shape == np.shape(want) and got.dtype == np.asarray(want).dtype, name
        if got.size:  # zero copy: the memory the kernels wrote
            assert got.data.ptr in allocations, name
        np.testing.assert_allclose(cp.asnumpy(got), want, rtol=1e-6, err_msg=name)
    out = cp.empty(10_001, cp.float32)
    assert nbloss.huber_loss(cp.asarray(a), cp.asarray(b), reduction="none", out=out) is out
    e = cp.zeros((0, 2), cp.float32)
    got = nbloss.huber_loss_value_and_grad(e, e, 1.0, reduction)
    assert all(isinstance(r, cp.ndarray) for r in got) and got[1].shape == (0, 2)


@pytest.mark.parametrize("reduction", RED)
def test_torch_cuda_in_torch_cuda_out(allocations, reduction):
    torch = gpu_library("torch")
    device = torch.device("cuda", torch.cuda.current_device())
    a, b = random_pair(10_001, np.float64, seed=48)
    host_results = dict(every_operation(a, b, reduction))
    ta, tb = torch.as_tensor(a, device=device), torch.as_tensor(b, device=device)
    for name, got in every_operation(ta, tb, reduction):
        assert isinstance(got, torch.Tensor) and got.device == device, (name, type(got))
        want = host_results[name]
        assert tuple(got.shape) == np.shape(want) and got.dtype == torch.float64, name
        if got.numel():
            assert got.data_ptr() in allocations, name
        np.testing.assert_allclose(got.cpu().numpy(), want, rtol=1e-12, err_msg=name)
    out = torch.empty(10_001, dtype=torch.float64, device=device)
    assert nbloss.huber_loss(ta, tb, reduction="none", out=out) is out
    e = torch.zeros((0, 2), dtype=torch.float32, device=device)
    got = nbloss.huber_loss_value_and_grad(e, e, 1.0, reduction)
    assert all(isinstance(r, torch.Tensor) and r.device == device for r in got)
    assert tuple(got[1].shape) == (0, 2) and got[1].dtype == torch.float32


def test_cupy_and_torch_mixed():
    """The input decides: torch and CuPy operands in one call."""
    torch, cp = gpu_library("torch"), gpu_library("cupy")
    a, b = random_pair(1001, np.float32, seed=49)
    ta, cb = torch.as_tensor(a, device="cuda"), cp.asarray(b)
    for x, y, kind in ((ta, cb, torch.Tensor), (cp.asarray(a), torch.as_tensor(b, device="cuda"),
                                                 cp.ndarray)):
        value, grad = nbloss.huber_loss_value_and_grad(x, y, 0.5, "mean")
        assert isinstance(value, kind) and isinstance(grad, kind) and tuple(value.shape) == ()
        loss = nbloss.huber_loss(0.5, y, reduction="none")  # a Python number does not decide
        assert isinstance(loss, type(y))
        np.testing.assert_allclose(float(value), float(nbloss.huber_loss(a, b, 0.5)), rtol=1e-6)
