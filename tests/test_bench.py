"""`python -m nbloss bench`: it runs, shows progress, and writes a table, JSON and a plot
whose figures are the workers' own (no test here asserts a time)."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from conftest import REQUIRE_COMPARE, require

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


# the compiled peers: the same values and gradients as nbloss, at beta = delta = 0.5 (where
# smooth_l1 and huber differ), in the dtype of the data
TINY = 257


def nbloss_results(loss, a, b):
    return {op: bench.CASE_BUILDERS["nbloss"](loss, op, a, b)() for op in bench.OPS}


def assert_same_results(got, want, dtype):
    """``got`` and ``want``: {op: result}, a fused result as (value, gradient)."""
    rtol = 1e-5 if dtype == "float32" else 1e-12
    for op in bench.OPS:
        pairs = zip(got[op], want[op]) if op == "fused" else [(got[op], want[op])]
        for mine, theirs in pairs:
            mine = np.asarray(mine.detach() if hasattr(mine, "detach") else mine)
            assert mine.dtype == np.dtype(dtype) and mine.shape == np.shape(theirs), op
            np.testing.assert_allclose(mine, theirs, rtol=rtol, atol=rtol / TINY, err_msg=op)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("loss", ["smooth_l1", "huber"])
def test_jax_contender_matches_nbloss(loss, dtype, monkeypatch):
    require("jax")
    monkeypatch.setattr(bench.cases, "PARAM", 0.5)
    a, b = bench.case_data(np.dtype(dtype), TINY)
    fns = {op: bench.CASE_BUILDERS["jax"](loss, op, a, b) for op in bench.OPS}
    assert all(fn.first_call_s > 0 for fn in fns.values())
    assert_same_results({op: fn() for op, fn in fns.items()}, nbloss_results(loss, a, b), dtype)


# torch.compile takes seconds per case (inductor writes and compiles C++): two cases,
# both losses, both dtypes, the gradient and the fused transforms
@pytest.mark.parametrize("loss, dtype, op", [("huber", "float32", "fused"),
                                             ("smooth_l1", "float64", "grad")])
def test_torch_compile_contender_matches_nbloss(loss, dtype, op, torch, monkeypatch):
    from torch._dynamo.utils import counters

    if not any(map(shutil.which, ("g++", "clang++", "c++"))) and not REQUIRE_COMPARE:
        pytest.skip("torch.compile's inductor needs a C++ compiler")

    monkeypatch.setattr(bench.cases, "PARAM", 0.5)
    a, b = bench.case_data(np.dtype(dtype), TINY)
    graphs = counters["stats"]["unique_graphs"]
    fn = bench.CASE_BUILDERS["torch-compile"](loss, op, a, b)
    assert counters["stats"]["unique_graphs"] > graphs  # compiled, not run eagerly
    assert fn.first_call_s > 0
    want = nbloss_results(loss, a, b)
    assert_same_results({o: fn() if o == op else want[o] for o in bench.OPS}, want, dtype)


def test_missing_compiled_peers_are_notes_not_errors(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("torch", "jax") else real(name, *a))
    chosen, notes = bench.available_contenders(["nbloss", "torch-compile", "jax", "compute"])
    assert chosen == ["nbloss", "compute"]
    assert [n.split(":")[0] for n in notes] == ["torch is not installed", "jax is not installed"]
    assert "torch-compile skipped" in notes[0] and "jax skipped" in notes[1]


def test_compile_time_is_kept_apart_from_the_timed_calls():
    """A compiled contender's record keeps its longest first call over the rounds (the
    round that compiled) as compile_s; its median comes from the timed calls alone."""
    from nbloss.bench.sweep import _record

    replies = [{"median": 2e-6, "min": 1e-6, "samples": 9, "setup_s": s + 0.5, "compile_s": s}
               for s in (3.0, 0.01, 0.02)]
    rec = _record(("huber", "float32", 1000, "fused", "torch-compile"), replies)
    assert rec["compile_s"] == 3.0 and rec["median_s"] == 2e-6 and rec["rounds"] == 3
    plain = [{k: v for k, v in r.items() if k != "compile_s"} for r in replies]
    assert "compile_s" not in _record(("huber", "float32", 1000, "fused", "nbloss"), plain)


PEER_FACTORS = {"torch-compile": 1.5, "jax": 3.0}


def peer_records(**kwargs):
    """fake_records with the compiled peers too, and a made-up compile time per case."""
    records = fake_records(**kwargs)
    for r in [r for r in records if r["contender"] == "nbloss"]:
        for c, f in PEER_FACTORS.items():
            records.append(dict(r, contender=c, median_s=r["median_s"] * f,
                                compile_s=r["n"] / (1e5 if c == "jax" else 1e4)))
    return records


def test_table_shows_the_compiled_peers_and_their_compile_time_only_when_they_ran():
    from nbloss.bench import report

    facts = {"date": "2026-01-01", "command": "python -m nbloss bench", "param": 1.0,
             "machine": {"cpu": "test CPU", "logical_cpus": 2, "python": "3"}, "versions": {}}
    plain = report.summary_markdown(dict(facts, results=fake_records(sizes=(1000,))),
                                    report.ratio_rows(fake_records(sizes=(1000,))))
    assert "torch-compile" not in plain and "jax" not in plain and "Compile time" not in plain
    records = peer_records(sizes=(1000, 10_000, 100_000))
    rows = report.ratio_rows(records)
    assert {(r["torch-compile_speedup"], r["jax_speedup"]) for r in rows} == {(1.5, 3.0)}
    md = report.summary_markdown(dict(facts, results=records), rows)
    head = md.splitlines()[2].split(" | ")
    assert head[4:] == ["nbloss", "torch", "numpy", "floor", "torch-compile", "jax",
                        "torch / nbloss", "numpy / nbloss", "torch-compile / nbloss",
                        "jax / nbloss", "nbloss / floor |"]
    assert "| 1.50 | 3.00 | 2.00 |" in md  # the speed-ups over nbloss, then nbloss / floor
    # compile times: min, max and median over the 24 cases of each peer, not in the table
    assert ("torch-compile 100 ms to 10 s, median 1 s over 24 cases (slowest: smooth_l1 "
            "float32 mean 1e5); jax 10 ms to 1 s, median 100 ms over 24 cases") in md


def test_speedup_panel_has_a_line_for_each_compiled_peer(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.colors import to_hex

    from nbloss.bench import plot

    axes = plot.plot(peer_records(dtypes=("float64",)), str(tmp_path / "results.png"), "test")
    for row in axes:
        ratios = {(to_hex(line.get_color()), line.get_linestyle()): list(line.get_ydata())
                  for line in row[1].get_lines() if len(line.get_ydata()) == 3}
        for c, f in {**FAKE_FACTORS, **PEER_FACTORS}.items():
            if c != "nbloss":
                for style in ("-", ":"):
                    assert ratios[(to_hex(plot.COLORS[c]), style)] == pytest.approx([f] * 3)
        assert len(ratios) == 10
    legend = [t.get_text() for t in axes[0][0].figure.legends[0].get_texts()]
    assert any(t.startswith("torch.compile") for t in legend)
    assert any(t.startswith("jax.jit") for t in legend)


def test_bench_command_reports_jax_compile_time_apart(tmp_path):
    """The jax worker end to end: its first call per case compiles, and that time comes
    back in results.json and results.md, never in the medians."""
    require("jax")
    out = tmp_path / "res"
    proc = subprocess.run(
        [sys.executable, "-m", "nbloss", "bench", "--sizes", "1000", "--dtypes", "float64",
         "--losses", "smooth_l1", "--ops", "mean,fused", "--contenders", "nbloss,jax",
         "--min-time", "0.001", "--no-extras", "--out", str(out)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "results.json").read_text())
    assert report["versions"]["jax"] and report["versions"]["jaxlib"]
    peers = [r for r in report["results"] if r["contender"] == "jax"]
    assert len(peers) == 2 and all(r["median_s"] > 0 and r["compile_s"] > 0 for r in peers)
    md = (out / "results.md").read_text()
    assert "jax / nbloss" in md and "Compile time" in md and "jax " in md.split("Compile time")[1]
    assert "(first call " in proc.stdout
