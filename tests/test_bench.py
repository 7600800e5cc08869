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
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == ("python -m nbloss bench: error: argument --ops: unknown "
                                            "forward (choose from mean, none, grad, fused)")


# made-up timings (not measured): nbloss 1 us per 1000 elements, torch 2.5x, numpy 4x and
# the floor 0.5x nbloss's time, huber 10% slower than smooth_l1
FAKE_FACTORS = {"nbloss": 1.0, "torch": 2.5, "numpy": 4.0, "floor": 0.5}


def fake_records(sizes=(1000, 10_000, 100_000), ops=("mean", "fused"), dtypes=("float32", "float64")):
    return [{"loss": loss, "dtype": dtype, "op": op, "n": n, "contender": c,
             "median_s": 1e-9 * n * f * (1.1 if loss == "huber" else 1.0)}
            for loss in ("smooth_l1", "huber") for dtype in dtypes for op in ops
            for n in sizes for c, f in FAKE_FACTORS.items()]


def test_plot_has_time_and_speedup_panels_that_say_which_way_is_better(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.colors import to_hex

    from nbloss.bench import plot

    path = tmp_path / "results.png"
    axes = plot.plot(fake_records(), str(path), "test run")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert axes.shape == (2, 4)  # ops x (time, speed-up) per dtype
    for i, op in enumerate(("'mean' forward", "fused loss + gradient")):
        for j, dtype in enumerate(("float32", "float64")):
            t_ax, s_ax = axes[i][2 * j], axes[i][2 * j + 1]
            assert t_ax.get_title() == f"{op}, {dtype}\ntime per call (lower is better)"
            assert s_ax.get_title() == f"{op}, {dtype}\nnbloss's speed-up (higher is better)"
            assert t_ax.get_ylabel() == "time per call"
            assert s_ax.get_ylabel() == "contender's time / nbloss's"
            for ax in (t_ax, s_ax):
                assert ax.get_xscale() == ax.get_yscale() == "log"
            # the speed-up panel: a line at 1, and one line per contender and loss with the
            # contender's time over nbloss's (huber's ratios equal smooth_l1's here)
            lines = s_ax.get_lines()
            assert any(list(line.get_ydata()) == [1, 1] for line in lines)
            ratios = {(to_hex(line.get_color()), line.get_linestyle()): list(line.get_ydata())
                      for line in lines if len(line.get_ydata()) == 3}
            for c, f in FAKE_FACTORS.items():
                if c != "nbloss":
                    for style in ("-", ":"):
                        assert ratios[(to_hex(plot.COLORS[c]), style)] == pytest.approx([f] * 3)
            assert len(ratios) == 6
            # time ticks in units, not only at decades
            labels = [t_ax.yaxis.get_major_formatter()(v) for v in t_ax.get_yticks()]
            assert any(u in " ".join(labels) for u in ("ns", "µs"))
            assert any(label.startswith(("2 ", "3 ", "5 ")) for label in labels), labels
    for ax in axes[-1]:
        assert ax.get_xlabel() == "N, elements per array"
    assert [axes[-1][0].xaxis.get_major_formatter()(v) for v in (1000, 10_000, 100_000)] == ["1k", "10k", "100k"]
    legend = [t.get_text() for t in axes[0][0].figure.legends[0].get_texts()]
    assert "nbloss" in legend and "smooth_l1 (solid)" in legend and "huber (dotted)" in legend
    assert any(t.startswith("floor") and "memory bound" in t for t in legend)


def test_replot_redraws_from_results_json_without_timing(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from nbloss.__main__ import main

    def fail(*args, **kwargs):
        raise AssertionError("replot timed something")

    monkeypatch.setattr(bench.cli, "run_sweep", fail)
    monkeypatch.setattr(bench.cli.extras, "cold_start", fail)
    facts = {"date": "2026-01-01", "machine": {"cpu": "test CPU", "logical_cpus": 2},
             "results": fake_records(sizes=(1000, 10_000), ops=("grad",), dtypes=("float64",))}
    (tmp_path / "results.json").write_text(json.dumps(facts))
    assert main(["bench", "--replot", str(tmp_path / "results.json")]) == 0
    assert (tmp_path / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.json", "results.png"]


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
