"""nbloss from several Python threads, in forked worker processes, and with fewer numba
threads: the same bits every time. Each process-level case runs in a fresh interpreter,
because numba picks its threading layer once per process."""

import hashlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import nbloss
from conftest import LARGE, SMALL, random_pair, run_python


def digest(results):
    return hashlib.sha256(b"".join(np.asarray(r).tobytes() for r in results)).hexdigest()


def one_job(seed):
    """A mix of serial and threaded kernels, reductions and gradients."""
    n = LARGE if seed % 2 else SMALL
    a, b = random_pair(n, np.float32 if seed % 3 else np.float64, seed=seed)
    return digest([*nbloss.smooth_l1_loss_value_and_grad(a, b, 0.5, "mean"),
                   nbloss.huber_loss(a, b, 2.0, "sum"),
                   nbloss.huber_loss_grad(a, b, 1.5, "none"),
                   *nbloss.smooth_l1_loss_backward(2.0, a, b, 0.0, "sum")])


def test_eight_python_threads_get_the_serial_bits():
    seeds = list(range(48))
    serial = [one_job(s) for s in seeds]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(one_job, seeds))
    assert concurrent == serial


def test_the_threading_layer_is_tbb():
    """The declared dependency: TBB, the one numba layer that is safe both in threads
    and after fork (nbloss/_tbb.py)."""
    out = run_python("import numpy as np, numba, nbloss\n"
                     f"nbloss.huber_loss(np.ones({LARGE}), np.zeros({LARGE}))\n"
                     "print(numba.threading_layer())")
    assert out.split() == ["tbb"]


FORKED_WORKERS = """
import multiprocessing as mp
import numpy as np, nbloss
from scipy.optimize import differential_evolution

rng = np.random.default_rng(0)
A = rng.standard_normal((120_000, 2))
y = A @ np.array([1.5, -2.0]) + rng.standard_normal(120_000) * 0.1

def objective(w):
    return float(nbloss.huber_loss(A @ w, y, 1.0))

objective(np.zeros(2))  # the parent runs threaded kernels before forking
assert mp.get_start_method() == "fork", mp.get_start_method()
result = differential_evolution(objective, [(-5, 5), (-5, 5)], workers=2, updating="deferred",
                                maxiter=15, popsize=8, seed=1, polish=False, tol=0)
print(result.x[0], result.x[1])
"""


def test_differential_evolution_with_forked_workers():
    """With numba's OpenMP layer the forked children die ("fork() called from a process
    already using GNU OpenMP"); with TBB they finish, and the fit is near the truth."""
    out = run_python(FORKED_WORKERS, timeout=120)  # the OpenMP failure mode is a hang
    w = [float(v) for v in out.split()]
    assert abs(w[0] - 1.5) < 0.2 and abs(w[1] + 2.0) < 0.2


SAME_BITS = f"""
import hashlib, numpy as np, numba, nbloss
rng = np.random.default_rng(3)
a = rng.standard_normal({LARGE}).astype(np.float32); b = rng.standard_normal({LARGE}).astype(np.float32)
lowered = int(__import__("sys").argv[1]) if len(__import__("sys").argv) > 1 else 0
if lowered:
    numba.set_num_threads(lowered)
r = [*nbloss.smooth_l1_loss_value_and_grad(a, b, 0.5), nbloss.huber_loss(a, b, 2.0, "sum")]
print(numba.get_num_threads(), hashlib.sha256(b"".join(np.asarray(x).tobytes() for x in r)).hexdigest())
"""


def test_one_numba_thread_and_a_lowered_count_give_the_same_bits():
    default = run_python(SAME_BITS).split()
    one = run_python(SAME_BITS, NUMBA_NUM_THREADS=1).split()
    assert one[0] == "1" and one[1] == default[1]
    lowered = run_python(SAME_BITS, "1").split()
    assert lowered[0] == "1" and lowered[1] == default[1]
