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


FORK_UNDER_LOAD = f"""
import os, signal, sys, threading, time
import numpy as np, nbloss

FORKS, LIVE, CHILD_TIMEOUT = 1000, 4, 10.0
rng = np.random.default_rng(11)
# float32, above both threading thresholds: every call below runs threaded kernels
a = rng.standard_normal({LARGE}).astype(np.float32)
b = rng.standard_normal({LARGE}).astype(np.float32)

def work():
    return [nbloss.huber_loss_grad(a, b, 1.5, "none"), *nbloss.smooth_l1_loss_value_and_grad(a, b, 0.5),
            nbloss.huber_loss(a, b, 2.0, "sum")]

def digest(results):
    return b"".join(np.asarray(r).tobytes() for r in results)

expected = digest(work())  # the main thread starts the thread pool
calls = [0]
stop = threading.Event()

def load():
    while not stop.is_set():
        work()
        calls[0] += 1

threading.Thread(target=load, daemon=True).start()
while calls[0] < 3:
    time.sleep(0.01)
calls_before = calls[0]
live, hung, failed = {{}}, 0, 0

def reap():
    global hung, failed
    for pid, started in list(live.items()):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            del live[pid]
            failed += os.waitstatus_to_exitcode(status) != 0
        elif time.monotonic() - started > CHILD_TIMEOUT:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            del live[pid]
            hung += 1

for _ in range(FORKS):
    while len(live) >= LIVE:
        reap()
        time.sleep(0.001)
    pid = os.fork()
    if pid == 0:
        os._exit(0 if digest(work()) == expected else 1)
    live[pid] = time.monotonic()
    reap()
calls_during = calls[0] - calls_before
while live:
    reap()
    time.sleep(0.01)
stop.set()
print("RESULT", hung, failed, calls_during)
"""


def test_forks_while_another_thread_runs_threaded_kernels():
    """1,000 forks while another thread runs threaded kernels in a loop: every child runs
    them too and gets the parent's bits; none hangs. Before nbloss/_tbb.py's fork guard,
    about 1% of such children hung inside TBB."""
    out = run_python(FORK_UNDER_LOAD, timeout=300)
    hung, failed, calls_during = map(int, out.split("RESULT", 1)[1].split())
    assert (hung, failed) == (0, 0)
    assert calls_during > 100  # the forks really overlapped the other thread's kernels


FORK_KEEPS_THREADS = f"""
import os, threading, numpy as np, nbloss
from nbloss import _tbb
a = np.linspace(-3, 3, {LARGE}); b = np.zeros({LARGE})
expected = nbloss.huber_loss_grad(a, b).tobytes()  # the main thread starts the pool

def child():
    pid = os.fork()
    if pid == 0:
        same = nbloss.huber_loss_grad(a, b).tobytes() == expected
        os._exit(2 * (not same) + (not _tbb.threads_usable()))
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])

first = child()
ran, leave = threading.Event(), threading.Event()
def other():
    nbloss.huber_loss_grad(a, b)
    ran.set()
    leave.wait()
thread = threading.Thread(target=other)
thread.start()
ran.wait()
second = child()
leave.set()
thread.join()
print(first, second, child())
"""


def test_forked_children_keep_threads_where_numba_can_stop_tbb():
    """Exit code 0: right bits, threads; 1: right bits, serial kernels. A single-threaded
    parent's children keep their threads (numba stops and restarts TBB around the fork);
    while another live thread has run a threaded kernel, numba cannot stop TBB's workers
    and the child runs the serial kernels; once that thread is gone, threads again."""
    assert run_python(FORK_KEEPS_THREADS, timeout=120).split()[-3:] == ["0", "1", "0"]


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
