"""The same bits on every run: whatever numba's cache holds, however many threads run,
and in the order of additions that nbloss documents.

A reduction's order is written in nbloss's source (``nbloss._cpu._block_loss_sum``), so
the compiler may not change it; these tests check the result against that order
replayed in NumPy, and across processes that compiled the kernels or loaded them from
the disk cache."""

import json
import pathlib
import warnings

import numpy as np
import pytest
from numba import njit

import nbloss
from conftest import random_pair, run_python

# one empty cache folder, three processes: the first compiles every kernel and writes
# the cache, the second and third load them (the third with one numba thread)
EVERY_RESULT = r"""
import hashlib, json
import numpy as np, nbloss
from nbloss import fvcore

def digest(x):
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()[:16]

digests = []
rng = np.random.default_rng(2024)
# both sides of the threading thresholds (288 KiB and 384 KiB per operand), runs,
# blocks and their remainders
for n in (37, 513, 2049, 4099, 50_001, 100_003, 250_001):
    for dtype in (np.float32, np.float64):
        for weighted in (False, True):
            for seed in range(3):
                a = (rng.standard_normal(n) * 2).astype(dtype)
                b = rng.standard_normal(n).astype(dtype)
                w = rng.random(n).astype(dtype) if weighted else None
                kw = dict(weight=w)
                out = []
                for red in ("mean", "sum"):
                    out += [nbloss.smooth_l1_loss(a, b, 0.5, red, **kw),
                            nbloss.smooth_l1_loss(a, b, 1.0, red, **kw),
                            nbloss.huber_loss(a, b, 2.0, red, **kw),
                            *nbloss.smooth_l1_loss_value_and_grad(a, b, 0.7, red, **kw),
                            *nbloss.huber_loss_value_and_grad(a, b, 1.5, red, **kw),
                            nbloss.smooth_l1_loss_grad(a, b, 0.0, red, **kw),
                            nbloss.huber_loss_hess_diag(a, b, 1.0, red, **kw),
                            *nbloss.huber_loss_backward(1.5, a, b, 0.5, red, **kw)]
                out += [nbloss.huber_loss(a, b, 0.5, "none", **kw),
                        *nbloss.smooth_l1_loss_backward(a, a, b, 0.5, "none", **kw)]
                if not weighted:
                    crit = nbloss.SmoothL1Loss(beta=0.3)
                    out += [crit(a, b), *crit.backward()]
                    out += [fvcore.smooth_l1_loss(a, b, 0.2, "sum")]
                digests += [digest(x) for x in out]
print(json.dumps(digests))
"""


def test_every_result_is_the_same_whether_compiled_or_loaded_from_the_cache(tmp_path):
    cold = json.loads(run_python(EVERY_RESULT, NUMBA_CACHE_DIR=tmp_path))
    warm = json.loads(run_python(EVERY_RESULT, NUMBA_CACHE_DIR=tmp_path))
    one_thread = json.loads(run_python(EVERY_RESULT, NUMBA_CACHE_DIR=tmp_path,
                                       NUMBA_NUM_THREADS=1))
    # as many as the README says
    readme = " ".join((pathlib.Path(__file__).parent.parent / "README.md").read_text().split())
    assert f"same bits for {len(cold)} results of every public function" in readme
    assert any(p.suffix == ".nbc" for p in tmp_path.rglob("*"))  # the cache was used
    for name, other in (("warm cache", warm), ("warm cache, one thread", one_thread)):
        differ = [i for i, (x, y) in enumerate(zip(cold, other)) if x != y]
        assert len(other) == len(cold) and not differ, (name, len(differ), differ[:10])


# -- the documented order, replayed in NumPy ---------------------------------------------

def block_sum(terms, lanes, rows_per_run, wide_lanes):
    """One block's sum in nbloss's order: lane k adds element r * lanes + k of each run
    in the terms' dtype; after a run the lanes are folded pairwise to ``wide_lanes`` and
    added to float64 sums; those are added in a pairwise tree, then the remainder one by
    one in float64."""
    dtype = terms.dtype
    rows = terms.size // lanes
    wide = np.zeros(wide_lanes)
    for first in range(0, rows, rows_per_run):
        acc = np.zeros(lanes, dtype)
        for r in range(first, min(first + rows_per_run, rows)):
            acc = acc + terms[r * lanes:(r + 1) * lanes]
        h = lanes // 2
        while h >= wide_lanes:
            acc[:h] = acc[:h] + acc[h:2 * h]
            h //= 2
        wide = wide + acc[:wide_lanes].astype(np.float64)
    h = wide_lanes // 2
    while h:
        wide[:h] = wide[:h] + wide[h:2 * h]
        h //= 2
    total = float(wide[0])
    for t in terms[rows * lanes:]:
        total += float(t)
    return total


def documented_sum(terms):
    """The float64 total of a reduction over ``terms`` (the weighted elementwise losses
    in the computation dtype), block by block, the blocks added left to right."""
    from nbloss import _cpu

    itemsize = terms.dtype.itemsize
    block = _cpu.BLOCK_BYTES // itemsize
    lanes = _cpu.LANE_BYTES // itemsize
    run = _cpu.FLOAT32_RUN if terms.dtype == np.float32 else block
    total = 0.0
    for lo in range(0, terms.size, block):
        total += block_sum(terms[lo:lo + block], lanes, run // lanes, _cpu.WIDE_LANES)
    return total


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 63, 64, 65, 511, 512, 513, 1500, 2047, 2048, 2049, 7001,
                               100_003])
def test_sums_follow_the_documented_order_to_the_bit(dtype, n):
    """'sum' and the fused kernel's sum both equal the order written in the source,
    replayed in NumPy from the elementwise losses ('none', which the torch parity tests
    check to the bit); with a weight too."""
    a, b = random_pair(n, dtype, seed=n)
    w = np.random.default_rng(n).random(n).astype(dtype)
    for weight in (None, w):
        terms = nbloss.huber_loss(a, b, 0.8, "none", weight=weight)
        want = dtype(documented_sum(terms))
        assert nbloss.huber_loss(a, b, 0.8, "sum", weight=weight).tobytes() == want.tobytes()
        got, _ = nbloss.huber_loss_value_and_grad(a, b, 0.8, "sum", weight=weight)
        assert got.tobytes() == want.tobytes()
        mean = nbloss.huber_loss(a, b, 0.8, "mean", weight=weight)
        assert mean.tobytes() == dtype(documented_sum(terms) / n).tobytes()


@njit
def _compiled_means(a, b):
    return nbloss.huber_loss(a, b, 1.0, "mean"), nbloss.smooth_l1_loss_value_and_grad(a, b, 0.5)[0]


@pytest.mark.parametrize("n", [3000, 120_000])  # serial, and threaded (_cpu.kernels)
def test_float32_runs_that_overflow_are_summed_again_in_float64(n):
    """Terms of 1e38 overflow a float32 lane (8 of them exceed float32's 3.4e38), but
    their mean, 1e38, and their float64 total are finite: the block is summed again with
    every term in float64, so the mean is exact here; from Python and from compiled
    code, with a (rows, 1) target read in place too. Elsewhere in the array a block
    of ordinary terms is summed as usual."""
    a = np.full(n, 5e37, np.float32)
    a[:2048] = np.linspace(-3, 3, 2048, dtype=np.float32)  # the first block stays finite
    for loss in (nbloss.huber_loss, nbloss.smooth_l1_loss):
        terms = loss(a, -a, 1.0, "none")
        assert np.all(np.isfinite(terms))
        want = np.float32(terms.astype(np.float64).sum() / n)
        assert loss(a, -a, 1.0, "mean") == want
        value, _ = nbloss.huber_loss_value_and_grad(a, -a, 1.0, "mean")
        assert value == want
        rows, column = a.reshape(-1, 10), -a.reshape(-1, 10)[:, :1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's shape warning
            broadcast = loss(rows, column, 1.0, "mean")
        assert broadcast == np.float32(loss(rows, np.repeat(column, 10, axis=1), 1.0, "none")
                                       .astype(np.float64).sum() / n)
    compiled = _compiled_means(a, -a)
    assert compiled[0] == want
    assert compiled[1] == np.float32(nbloss.smooth_l1_loss(a, -a, 0.5, "none").astype(np.float64).sum() / n)
    # a sum whose float64 total overflows float32 is inf, as in torch
    assert np.isinf(nbloss.huber_loss(a, -a, 1.0, "sum"))
    # a NaN or an inf term still gives NaN or inf
    a[5] = np.nan
    assert np.isnan(nbloss.huber_loss(a, -a, 1.0, "mean"))
    a[5] = np.inf
    assert np.isinf(nbloss.huber_loss(a, -a, 1.0, "mean"))
