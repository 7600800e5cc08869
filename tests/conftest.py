import importlib
import os
import subprocess
import sys

import numpy as np
import pytest

REQUIRE_COMPARE = os.environ.get("NBLOSS_REQUIRE_COMPARE") == "1"
# numba's CUDA simulator, asked for by the environment before numba loads (tests/cuda)
SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")

# sizes below, between and above the thresholds of the threaded kernels (nbloss._cpu's
# PARALLEL_MIN_BYTES, 288 KiB, and PARALLEL_MIN_BYTES_SUM, 384 KiB, per operand): MIDDLE
# runs the threaded kernels in float64 and the serial ones in float32
SMALL, MIDDLE, LARGE = 37, 50001, 100_003


def cuda_or_skip():
    """``numba.cuda`` for a module of tests/cuda, called at its import: the simulator when
    NUMBA_ENABLE_CUDASIM is set (a missing numba-cuda is then an error, not a skip), else
    the GPU; without numba-cuda or a GPU the calling module is skipped."""
    if SIMULATOR:
        from numba import cuda
        return cuda
    cuda = pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    if not cuda.is_available():
        pytest.skip("no CUDA GPU; run NUMBA_ENABLE_CUDASIM=1 python -m pytest tests/cuda",
                    allow_module_level=True)
    return cuda


def require(module, extra="compare"):
    """Import a reference library or tool; skip without it, unless NBLOSS_REQUIRE_COMPARE=1
    (set by .ci/run), where its absence is an error: parity tests, the typing check and
    the docs build must not silently vanish."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        if REQUIRE_COMPARE:
            raise RuntimeError(f"NBLOSS_REQUIRE_COMPARE=1 but {module} cannot be imported: {exc}") from exc
        pytest.skip(f"{module} is not installed (pip install 'nbloss[{extra}]')")


@pytest.fixture(scope="session")
def torch():
    return require("torch")


@pytest.fixture(scope="session")
def fvcore_nn():
    return require("fvcore.nn")


def adversarial(dtype, beta=1.0):
    """Pairs (input, target) hitting every edge: exactly +-beta, 0, +-inf, NaN, inf-inf,
    subnormals, huge values (1e300 where the dtype holds it)."""
    info = np.finfo(dtype)
    tiny = info.smallest_subnormal
    huge = info.max / 4
    vals = [
        (beta, 0), (-beta, 0), (0, 0), (0, -0.0), (beta, beta), (2 * beta, beta),
        (np.nextafter(dtype(beta), dtype(0)), 0), (np.nextafter(dtype(beta), dtype(np.inf)), 0),
        (np.inf, 0), (-np.inf, 0), (np.inf, np.inf), (0, np.inf), (np.nan, 0), (0, np.nan),
        (tiny, 0), (0, tiny), (3 * tiny, tiny), (info.tiny, 0), (huge, 0), (-huge, 0),
        (1e300 if dtype == np.float64 else 1e30, 0), (0.5 * beta, 0), (-0.5 * beta, 0),
    ]
    a = np.array([p[0] for p in vals], dtype=dtype)
    b = np.array([p[1] for p in vals], dtype=dtype)
    return a, b


def random_pair(n, dtype, seed=0, scale=2.0):
    rng = np.random.default_rng(seed)
    return ((rng.standard_normal(n) * scale).astype(dtype), rng.standard_normal(n).astype(dtype))


def run_python(code, *args, timeout=600, **env):
    """Run ``code`` in a fresh interpreter with extra environment variables; its stdout."""
    full_env = dict(os.environ, **{k: str(v) for k, v in env.items()})
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout
