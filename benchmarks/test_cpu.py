"""nbloss vs torch vs NumPy vs the floor on the CPU, with pytest-benchmark.

    python -m pytest benchmarks --benchmark-enable --benchmark-only -k "float32 and fused"

Each test times one (contender, loss, dtype, operation, N) case; the groups put the
contenders of a case (the bounds floor and compute among them) side by side. The test
suite runs each case once as a smoke test (``--benchmark-disable`` is in the default
options), so the suite cannot rot; it asserts no time. For ratios to quote, use
``python -m nbloss bench``, which runs every contender in its own process: in one process
torch's and numba's thread pools fight over a small machine's cores (the README's
*Speed* section explains).
"""

import functools
import importlib.util
import os

import numpy as np
import pytest

from nbloss import bench


@pytest.fixture(scope="session")
def have_torch():
    """Whether torch can be compared against; its absence fails under
    NBLOSS_REQUIRE_COMPARE=1 (set by .ci/run) instead of skipping quietly. (No conftest.py
    here: it would shadow the tests' own conftest module.)"""
    if importlib.util.find_spec("torch") is not None:
        return True
    if os.environ.get("NBLOSS_REQUIRE_COMPARE") == "1":
        raise RuntimeError("NBLOSS_REQUIRE_COMPARE=1 but torch is not installed")
    return False


@functools.lru_cache(maxsize=2)
def data(dtype, n):
    return bench.case_data(np.dtype(dtype), n)


@pytest.mark.parametrize("n", bench.SIZES, ids=bench.fmt_n)
@pytest.mark.parametrize("op", bench.OPS)
@pytest.mark.parametrize("dtype", bench.DTYPES)
@pytest.mark.parametrize("loss", bench.LOSSES)
@pytest.mark.parametrize("contender", bench.CONTENDERS + bench.EXTRA_CONTENDERS)
def test_case(benchmark, have_torch, contender, loss, dtype, op, n):
    if contender == "torch" and not have_torch:
        pytest.skip("torch is not installed")
    a, b = data(dtype, n)
    a0, b0 = a.copy(), b.copy()
    benchmark.group = f"{loss} {dtype} {op} N={bench.fmt_n(n)}"
    result = benchmark(bench.CASE_BUILDERS[contender](loss, op, a, b))
    assert result is not None
    # a case must not touch the shared inputs, or the next one would time other data
    assert np.array_equal(a, a0) and np.array_equal(b, b0)
