"""`python -m nbloss bench`: it runs, shows progress, and writes a table, JSON and a plot
whose figures are the workers' own (no test here asserts a time)."""

import json
import subprocess
import sys

import numpy as np
import pytest

from nbloss import bench


def test_bench_command_writes_table_json_and_plot(tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "res"
    proc = subprocess.run(
        [sys.executable, "-m", "nbloss", "bench", "--sizes", "1000,30000", "--dtypes", "float32",
         "--losses", "huber", "--ops", "mean,fused", "--min-time", "0.001", "--out", str(out)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    # progress: one line per case, numbered
    assert "[  4/4]" in proc.stdout
    report = json.loads((out / "results.json").read_text())
    assert {"date", "command", "machine", "versions", "results", "cold_start", "memory"} <= set(report)
    contenders = {r["contender"] for r in report["results"]}
    assert {"nbloss", "numpy", "floor"} <= contenders
    assert all(r["median_s"] > 0 for r in report["results"]), report["results"]
    assert len(report["results"]) == 4 * len(contenders)
    md = (out / "results.md").read_text()
    assert md.count("| huber | float32 |") == 4 and md in proc.stdout
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_torch_is_a_note_not_an_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    chosen, notes = bench.available_contenders(["nbloss", "torch", "floor"])
    assert chosen == ["nbloss", "floor"] and "torch is not installed" in notes[0]


def test_ratios_come_from_the_medians():
    records = [{"loss": "huber", "dtype": "float32", "n": 1000, "op": "mean", "contender": c, "median_s": t}
               for c, t in (("nbloss", 2.0), ("torch", 5.0), ("numpy", 8.0), ("floor", 1.0))]
    (row,) = bench.ratio_rows(records)
    assert (row["torch_speedup"], row["numpy_speedup"], row["vs_floor"]) == (2.5, 4.0, 2.0)


def test_unknown_option_value_is_refused():
    proc = subprocess.run([sys.executable, "-m", "nbloss", "bench", "--ops", "forward"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "--ops: unknown forward" in proc.stderr


def test_reduction_memory_is_below_one_percent_of_the_input():
    """The 'mean'/'sum' forward allocates one float64 per block and nothing N-sized:
    measured in a fresh process by tracemalloc (NumPy's and numba's allocations) and by the
    growth of the peak RSS."""
    mem = bench.peak_memory(n=4_000_000, dtype="float32")
    for reduction in ("mean", "sum"):
        assert mem[reduction]["tracemalloc_peak_bytes"] <= 0.01 * mem["input_bytes"], mem
        assert mem[reduction]["maxrss_growth_bytes"] <= 0.01 * mem["input_bytes"], mem


@pytest.mark.parametrize("n", [1000, 100_000], ids=["serial", "threaded"])
@pytest.mark.parametrize("loss", ["smooth_l1", "huber"])
def test_compute_bound_computes_the_loss(loss, n, monkeypatch):
    """The compute contender is a bound only if it does the loss's arithmetic: its results
    match a float64 NumPy formula (beta = delta = 0.5 exercises the 1/beta factor)."""
    monkeypatch.setattr(bench.cases, "PARAM", 0.5)
    a, b = bench.case_data(np.dtype("float32"), n)
    x = a.astype(np.float64) - b
    z = np.abs(x)
    huber = np.where(z < 0.5, 0.5 * z * z, 0.5 * (z - 0.25))
    grad = np.clip(x, -0.5, 0.5) / n
    if loss == "smooth_l1":
        huber, grad = huber / 0.5, grad / 0.5
    run = {op: bench.compute_case(loss, op, a, b) for op in bench.OPS}
    np.testing.assert_allclose(run["mean"](), huber.mean(), rtol=1e-5)
    np.testing.assert_allclose(run["fused"](), huber.mean(), rtol=1e-5)
    np.testing.assert_allclose(run["none"](), huber, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(run["grad"](), grad, rtol=1e-6, atol=1e-12)


def test_workers_reuse_freed_memory_only_when_asked(monkeypatch):
    """Every contender's worker gets the same allocator environment: glibc's own by
    default, freed memory kept for reuse with --reuse-memory."""
    seen = []
    monkeypatch.setattr(subprocess, "Popen", lambda *a, env=None, **kw: seen.append(env))
    bench.Worker("floor")
    bench.Worker("torch", reuse_memory=True)
    assert seen[0] is None
    assert {k: seen[1][k] for k in bench.REUSE_MEMORY_ENV} == bench.REUSE_MEMORY_ENV
