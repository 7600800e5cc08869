"""Import cost, disk caching, thread-count independence and reduction accuracy, each in
a fresh process where it matters."""

import json
import math

import numpy as np

import nbloss
from conftest import run_python


def test_import_compiles_nothing_and_imports_no_numba():
    out = run_python("import sys, nbloss; print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('numba', 'llvmlite', 'scipy', 'torch'))))"
                     .replace("import sys", "import sys, json"))
    assert json.loads(out) == []


def test_host_calls_never_load_cuda():
    out = run_python("import sys, numpy as np, nbloss\n"
                     "nbloss.huber_loss_value_and_grad(np.ones(3), np.zeros(3))\n"
                     "print(sorted(m for m in sys.modules if m.startswith(('numba.cuda', 'numba_cuda', "
                     "'nbloss._cuda', 'nbloss._device'))))")
    assert out.strip() == "[]"


def test_kernels_are_cached_on_disk(tmp_path):
    code = """
import numpy as np, nbloss, json
from nbloss import _cpu, _math
nbloss.huber_loss_value_and_grad(np.ones(10), np.zeros(10))
d = _cpu.FAMILIES[_math.HUBER].serial.loss_sum
print(json.dumps([sum(d.stats.cache_hits.values()), sum(d.stats.cache_misses.values())]))
"""
    first = json.loads(run_python(code, NUMBA_CACHE_DIR=tmp_path))
    second = json.loads(run_python(code, NUMBA_CACHE_DIR=tmp_path))
    assert first == [0, 1]  # compiled once, written to the cache...
    assert second == [1, 0]  # ...and loaded from it by the next process
    assert any(p.suffix == ".nbc" for p in tmp_path.rglob("*"))


def test_bit_identical_for_one_to_four_threads():
    code = """
import numpy as np, numba, nbloss, hashlib
rng = np.random.default_rng(5)
a = rng.standard_normal(1_000_003).astype(np.float32); b = rng.standard_normal(1_000_003).astype(np.float32)
for t in range(1, 5):
    numba.set_num_threads(t)
    r = [nbloss.smooth_l1_loss(a, b, 0.5, 'mean'), nbloss.huber_loss(a, b, 2.0, 'sum'),
         *nbloss.smooth_l1_loss_value_and_grad(a, b, 0.5, 'sum')]
    print(hashlib.sha256(b''.join(np.asarray(x).tobytes() for x in r)).hexdigest())
"""
    digests = run_python(code, NUMBA_NUM_THREADS=4).split()
    assert len(digests) == 4 and len(set(digests)) == 1


def test_float32_mean_of_ten_million_is_accurate():
    rng = np.random.default_rng(6)
    n = 10_000_000
    a = (rng.standard_normal(n) * 3).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    got = nbloss.smooth_l1_loss(a, b, 1.0, "mean")
    assert got.dtype == np.float32
    # exact: each element's float32 loss (torch's per-element value), summed exactly
    x = a - b
    z = np.abs(x)
    elem = np.where(z < 1, np.float32(0.5) * z * z / np.float32(1), z - np.float32(0.5))
    exact = math.fsum(elem.astype(np.float64)) / n
    assert abs(float(got) - exact) <= 1e-7 * exact
    # and 0.1 repeated, where a float32 running sum drifts by 9%
    tenth = np.full(n, 0.1, np.float32)
    got = nbloss.huber_loss(tenth, np.zeros(n, np.float32), 1.0, "sum")
    exact = n * float(np.float32(0.5) * np.float32(0.1) * np.float32(0.1))
    assert abs(float(got) - exact) <= 1e-7 * exact
