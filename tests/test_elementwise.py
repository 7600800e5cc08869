"""nbloss.elementwise: from Python, inside @njit (serial and parallel), in @vectorize
ufuncs, bit for bit the array functions' elements with reduction='none', against plain
NumPy float64 formulas too; the parameters checked as the array functions check them;
importing it compiles nothing. (Inside @cuda.jit: tests/cuda and the PTX test below.)"""

import numba
import numpy as np
import pytest
from numba import njit, prange

import nbloss
import reference
from conftest import REQUIRE_COMPARE, adversarial, random_pair, run_python
from nbloss import elementwise as E

# beta = 0 and betas so small that 1/beta overflows (in float32 only, or in both) are
# exact L1; 1.0 is the array functions' shortcut to huber's kernels
BETAS = [0.0, 1e-40, 1e-320, 1e-300, 0.25, 1.0, 3.0]
DELTAS = [1e-3, 0.5, 1.0, 3.0]
DTYPES = [np.float32, np.float64]


def array_elements(name, x, param):
    """The array functions' elements at x (target 0), reduction 'none'."""
    loss = "smooth_l1" if name.startswith("smooth_l1") else "huber"
    suffix = {"": "", "_grad": "_grad", "_hess": "_hess_diag"}[name[len(loss):]]
    return getattr(nbloss, f"{loss}_loss{suffix}")(x, np.zeros_like(x), param, "none")


def cases():
    for name in ("smooth_l1", "smooth_l1_grad", "smooth_l1_hess"):
        for beta in BETAS:
            yield name, beta
    for name in ("huber", "huber_grad", "huber_hess"):
        for delta in DELTAS:
            yield name, delta


def values(dtype, param):
    """Adversarial differences (0, +-param, +-inf, NaN, subnormals, huge) and random ones."""
    a, b = adversarial(dtype, param if param else 1.0)
    with np.errstate(invalid="ignore", over="ignore"):
        x = np.concatenate([a - b, random_pair(500, dtype, seed=3)[0]])
    return np.concatenate([x, -x])


def same_bits(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes(), np.flatnonzero(got.view(np.uint8) != want.view(np.uint8))[:5]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,param", list(cases()))
def test_python_call_is_the_array_functions_element(name, param, dtype):
    x = values(dtype, param)
    fn = getattr(E, name)
    same_bits(fn(x, param), array_elements(name, x, param))
    # one number at a time: a NumPy scalar of x's type
    for i in (0, 3, 8, 12, 20):
        got = fn(x[i], param)
        assert isinstance(got, dtype)
        same_bits(got, array_elements(name, x[i:i + 1], param)[0])


@pytest.mark.parametrize("name,param", [("smooth_l1", 0.0), ("smooth_l1", 0.7), ("smooth_l1_grad", 0.0),
                                        ("smooth_l1_grad", 0.7), ("smooth_l1_hess", 0.7),
                                        ("huber", 1.5), ("huber_grad", 1.5), ("huber_hess", 1.5)])
def test_matches_plain_float64_formulas(name, param):
    x = values(np.float64, param)
    finite = np.isfinite(x) & (np.abs(x) < 1e150)
    got = getattr(E, name)(x[finite], param)
    want = getattr(reference, name)(x[finite], 0.0, param)
    np.testing.assert_allclose(got, want, rtol=4 * np.finfo(np.float64).eps, atol=0)


def test_python_numbers_are_float64_and_nan_inf_as_torch():
    assert isinstance(E.huber(3, 1.0), np.float64) and E.huber(3, 1.0) == 2.5
    assert E.smooth_l1(0.2, 0.5) == 0.5 * 0.2 * 0.2 / 0.5
    assert np.isnan(E.smooth_l1(np.nan, 1.0)) and np.isnan(E.huber_grad(np.nan, 1.0))
    assert E.smooth_l1_grad(np.inf, 0.5) == 1.0 and E.huber_grad(-np.inf, 2.0) == -2.0
    assert E.smooth_l1_grad(0.0, 0.0) == 0.0 and E.smooth_l1_grad(-3.0, 0.0) == -1.0
    assert E.smooth_l1_hess(0.0, 0.0) == 0.0 and E.huber_hess(1.0, 1.0) == 0.0  # strict <


BAD = [("smooth_l1", -1.0, ValueError, "negative values for beta"),
       ("smooth_l1_grad", float("nan"), ValueError, "NaN"),
       ("huber", 0.0, ValueError, "non-positive values for delta"),
       ("huber_hess", -2.0, ValueError, "non-positive values for delta"),
       ("huber_grad", float("nan"), ValueError, "NaN")]


@pytest.mark.parametrize("name,param,exc,match", BAD)
def test_bad_parameters_raise_as_the_array_functions(name, param, exc, match):
    with pytest.raises(exc, match=match):
        getattr(E, name)(1.0, param)
    loss = "smooth_l1_loss" if name.startswith("smooth_l1") else "huber_loss"
    with pytest.raises(exc):
        getattr(nbloss, loss)(np.ones(2), np.zeros(2), param)


def test_bad_types_from_python():
    with pytest.raises(TypeError):
        E.huber(1.0, "1")
    with pytest.raises(TypeError):
        E.huber(np.ones(3, np.int64), 1.0)
    with pytest.raises(TypeError):
        E.smooth_l1(True, 1.0)


@njit
def _serial(name_id, x, param, out):
    for i in range(x.size):
        if name_id == 0:
            out[i] = E.smooth_l1(x[i], param)
        elif name_id == 1:
            out[i] = E.smooth_l1_grad(x[i], param)
        elif name_id == 2:
            out[i] = E.smooth_l1_hess(x[i], param)
        elif name_id == 3:
            out[i] = E.huber(x[i], param)
        elif name_id == 4:
            out[i] = E.huber_grad(x[i], param)
        else:
            out[i] = E.huber_hess(x[i], param)


@njit(parallel=True)
def _parallel(name_id, x, param, out):
    for i in prange(x.size):
        if name_id == 0:
            out[i] = E.smooth_l1(x[i], param)
        elif name_id == 1:
            out[i] = E.smooth_l1_grad(x[i], param)
        elif name_id == 2:
            out[i] = E.smooth_l1_hess(x[i], param)
        elif name_id == 3:
            out[i] = E.huber(x[i], delta=param)
        elif name_id == 4:
            out[i] = E.huber_grad(x[i], param)
        else:
            out[i] = E.huber_hess(x[i], param)


NAMES = ["smooth_l1", "smooth_l1_grad", "smooth_l1_hess", "huber", "huber_grad", "huber_hess"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_njit_loops_serial_and_parallel_give_the_array_functions_bits(dtype):
    for name, param in cases():
        x = values(dtype, param)
        want = array_elements(name, x, param)
        for loop in (_serial, _parallel):
            out = np.empty_like(x)
            loop(NAMES.index(name), x, param, out)
            same_bits(out, want)


def test_vectorize_ufunc_gives_the_array_functions_bits():
    @numba.vectorize(["float32(float32, float64)", "float64(float64, float64)"])
    def smooth(x, beta):
        return E.smooth_l1_grad(x, beta)

    @numba.vectorize
    def huber(x, delta):
        return E.huber(x, delta)

    for dtype in DTYPES:
        x = values(dtype, 0.5)
        with np.errstate(all="ignore"):  # NumPy's checks of a ufunc's inf and NaN results
            same_bits(smooth(x, 0.5), array_elements("smooth_l1_grad", x, 0.5))
            same_bits(smooth(x, 0.0), array_elements("smooth_l1_grad", x, 0.0))
            same_bits(huber(x, 2.0), array_elements("huber", x, 2.0))
    with pytest.raises(ValueError, match="non-positive values for delta"):
        huber(np.ones(3), -1.0)


def test_njit_raises_valueerror_for_bad_parameters_and_typingerror_for_bad_types():
    x = np.ones(4)
    for name, param, exc, match in BAD:
        with pytest.raises(exc, match=match):
            _serial(NAMES.index(name), x, param, np.empty_like(x))

    @njit
    def bad_type(x):
        return E.huber(x, 1.0)
    with pytest.raises(numba.core.errors.TypingError, match="float32 or float64"):
        bad_type(np.ones(3))


@pytest.mark.parametrize("order", ["numba first", "nbloss first"])
def test_callable_from_njit_whichever_is_imported_first(order):
    imports = ["import numba", "from nbloss import elementwise"]
    if order == "nbloss first":
        imports.reverse()
    code = "\n".join(imports) + """
import sys
@numba.njit
def f(x):
    return elementwise.huber(x, 1.0) + elementwise.smooth_l1_grad(x, 0.5)
print(f(3.0))
"""
    assert run_python(code).split() == ["3.5"]


def test_import_compiles_and_loads_nothing():
    out = run_python("import sys, nbloss, nbloss.elementwise as e\n"
                     "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'llvmlite')))\n"
                     "print(hasattr(nbloss, 'elementwise'))")
    assert out.split() == ["[]", "True"]


CUDA_CODE = r"""
import sys, types
from numba import cuda
from numba import types as T
from numba.cuda import dispatcher
cc = tuple(int(c) for c in sys.argv[1].split("."))
dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=cc)
from importlib.metadata import entry_points
from numba.cuda.core import entrypoints
from nbloss import elementwise as E

# what a kernel launch does before it compiles (compile_ptx does not): numba-cuda loads
# the numba_cuda_extensions entry points, nbloss's among them
assert [e.value for e in entry_points(group="numba_cuda_extensions")
        if e.value.startswith("nbloss")] == ["nbloss._numba_cuda:init"]
entrypoints.init_all()

@cuda.jit
def kernel(x, param, out):
    i = cuda.grid(1)
    if i < x.size:
        out[i] = (E.smooth_l1(x[i], param) + E.smooth_l1_grad(x[i], param)
                  + E.smooth_l1_hess(x[i], param) + E.huber(x[i], param)
                  + E.huber_grad(x[i], param) + E.huber_hess(x[i], param))

for ft in (T.float32, T.float64):
    code, _ = cuda.compile_ptx(kernel.py_func, (ft[::1], T.float64, ft[::1]), cc=cc)
    width = "f32" if ft == T.float32 else "f64"
    # half * p rounded on its own: never contracted into a fused multiply-add
    assert code.count(f"mul.rn.{width}") >= 2, code
    assert "fma" not in code
print("ok")
"""


def test_cuda_overloads_compile_to_ptx_without_contraction():
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    probe = run_python("from numba.cuda.cudadrv import nvvm\n"
                       "try:\n    nvvm.NVVM()\n    print('yes')\nexcept Exception as e:\n    print('no', e)")
    if not probe.startswith("yes"):
        if REQUIRE_COMPARE:
            raise RuntimeError(f"NBLOSS_REQUIRE_COMPARE=1 but NVVM is missing: {probe.strip()}")
        pytest.skip("NVVM is not installed (pip install 'nbloss[cuda12]')")
    assert run_python(CUDA_CODE, "8.0", NUMBA_ENABLE_CUDASIM=0).strip() == "ok"
