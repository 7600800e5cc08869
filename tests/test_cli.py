"""`python -m nbloss demo` (the main job), `warmup` and `info`, as a user runs them."""

import os
import re
import subprocess
import sys

import numpy as np
import pytest

from nbloss.__main__ import fit_robust_line, robust_line_data


def test_demo_prints_the_three_lines():
    proc = subprocess.run([sys.executable, "-m", "nbloss", "demo"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = {}
    for line in proc.stdout.splitlines():
        m = re.match(r"(true line|ordinary least squares|nbloss Huber \(robust\))\s+(\S+)\s+(\S+)\s+(\S+)", line)
        if m:
            rows[m.group(1)] = [float(v) for v in m.groups()[1:]]
    assert set(rows) == {"true line", "ordinary least squares", "nbloss Huber (robust)"}
    assert rows["nbloss Huber (robust)"][2] < rows["ordinary least squares"][2] / 5


def test_demo_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "fit.png"
    proc = subprocess.run([sys.executable, "-m", "nbloss", "demo", "--plot", str(path)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {path}" in proc.stdout


def test_robust_fit_is_the_huber_minimum():
    """At the fit, the Huber gradient w.r.t. (slope, intercept) vanishes (a plain NumPy
    evaluation, not nbloss's)."""
    x, y, _, _ = robust_line_data(300, 0.25, seed=3)
    w, _ = fit_robust_line(x, y, delta=1.0)
    r = w[0] * x + w[1] - y
    g = np.clip(r, -1, 1) / r.size
    # L-BFGS-B stops at gtol = 1e-10 on the projected gradient, or when the loss stalls
    assert abs(g @ x) < 1e-7 and abs(g.sum()) < 1e-7


def test_info_runs():
    proc = subprocess.run([sys.executable, "-m", "nbloss", "info"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "threading layer" in proc.stdout


# a new process calls the kernels that warmup compiled, and reports what numba compiled
AFTER_WARMUP = """
import numpy as np, nbloss
from nbloss import _cpu
a = np.linspace(-2, 2, 1000, dtype=np.float32)
nbloss.huber_loss_value_and_grad(a, 0.0)
nbloss.smooth_l1_loss(a, np.zeros_like(a), 0.5, "none")
big = np.linspace(-2, 2, 200_000, dtype=np.float32)
nbloss.smooth_l1_loss_grad(big, np.zeros_like(big), 0.0)
import warnings
from nbloss import _sum_to
warnings.simplefilter("ignore")
nbloss.huber_loss_backward(1.0, big.reshape(-1, 2, 4), np.zeros((25_000, 1, 1), np.float32))
nbloss.huber_loss_backward(1.0, a.reshape(-1, 2, 4), np.zeros((125, 1, 4), np.float32))
# the threaded kernels are wrapped for fork safety (_tbb.fork_safe)
kernels = [k for f in _cpu.FAMILIES.values() for k in (*f.serial, *f.parallel, f.loss_sum_again)]
kernels += [k for twins in _sum_to._KERNELS.values() for k in twins]
stats = [(k if hasattr(k, "stats") else k.__wrapped__).stats for k in kernels]
print(sum(sum(s.cache_misses.values()) for s in stats), sum(sum(s.cache_hits.values()) for s in stats))
"""


def test_warmup_fills_the_cache_that_later_processes_load(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "nbloss", "warmup", "--dtypes", "float32"],
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr
    for loss in ("huber", "smooth_l1", "l1"):
        assert re.search(rf"float32 +{loss} +24 variants in", proc.stdout), proc.stdout
    assert re.search(r"float32 +broadcasts +6 variants in", proc.stdout), proc.stdout
    assert "78 calls in" in proc.stdout and str(tmp_path) in proc.stdout
    assert "a new process now reaches its first result in" in proc.stdout
    later = subprocess.run([sys.executable, "-c", AFTER_WARMUP], capture_output=True, text=True,
                           timeout=600, env=env)
    assert later.returncode == 0, later.stderr
    misses, hits = map(int, later.stdout.split())
    assert misses == 0 and hits >= 5, later.stdout


# --- the command line's help and its refusals --------------------------------------------

import nbloss.__main__ as cli  # noqa: E402
from nbloss.bench import cli as bench_cli  # noqa: E402


@pytest.fixture
def no_work(monkeypatch):
    """Any fit or benchmark sweep fails the test: a refused argument must stop before."""
    def fail(*args, **kwargs):
        raise AssertionError("work started despite a bad argument")

    monkeypatch.setattr(cli, "fit_robust_line", fail)
    monkeypatch.setattr(bench_cli, "run_sweep", fail)
    monkeypatch.setattr(bench_cli.extras, "cold_start", fail)
    monkeypatch.setenv("COLUMNS", "200")


def refused(argv, capsys):
    """Run the CLI in-process; it must exit 2 with argparse's one error line and no output."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    out, err = capsys.readouterr()
    assert exc.value.code == 2, (argv, out, err)
    assert out == ""
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and err.splitlines()[-1] == errors[0], err
    assert errors[0].startswith(f"python -m nbloss {argv[0]}: error: ")
    return errors[0]


@pytest.mark.parametrize("argv, message", [
    (["demo", "--delta", "-1"], "argument --delta: '-1' is outside (0, inf)"),
    (["demo", "--delta", "0"], "argument --delta: '0' is outside (0, inf)"),
    (["demo", "--delta", "nan"], "argument --delta: 'nan' is not a number"),
    (["demo", "--n", "0"], "argument --n: '0' is below the minimum, 2"),
    (["demo", "--n", "1"], "argument --n: '1' is below the minimum, 2"),
    (["demo", "--n", "2.5"], "argument --n: '2.5' is not an integer"),
    (["demo", "--outliers", "1"], "argument --outliers: '1' is outside [0, 1)"),
    (["demo", "--seed", "-1"], "argument --seed: '-1' is below the minimum, 0"),
    (["demo", "--plot", "missing/dir/fit.png"], "folder missing/dir does not exist"),
    (["bench", "--sizes", "0"], "argument --sizes: '0' is below the minimum, 1"),
    (["bench", "--sizes", "1e3,1.5e2,abc"], "argument --sizes: 'abc' is not an integer"),
    (["bench", "--sizes", "1000,2.5"], "argument --sizes: '2.5' is not an integer"),
    (["bench", "--sizes", "1e3,,1e4"], "argument --sizes: empty item in '1e3,,1e4'"),
    (["bench", "--dtypes", "float32,float16"],
     "argument --dtypes: unknown float16 (choose from float32, float64)"),
    (["bench", "--losses", "l1"], "argument --losses: unknown l1 (choose from smooth_l1, huber)"),
    (["bench", "--ops", "mean,mean"], "argument --ops: mean given twice"),
    (["bench", "--contenders", "tensorflow"], "argument --contenders: unknown tensorflow"),
    (["bench", "--rounds", "0"], "argument --rounds: '0' is below the minimum, 1"),
    (["bench", "--min-time", "-0.1"], "argument --min-time: '-0.1' is outside [0, inf)"),
])
def test_bad_argument_is_one_line_and_exit_2_before_any_work(argv, message, no_work, capsys):
    assert message in refused(argv, capsys)


def test_unwritable_outputs_are_refused_before_any_work(tmp_path, no_work, capsys):
    pytest.importorskip("matplotlib")
    a_file = tmp_path / "results.json"
    a_file.write_text("{}")
    assert "is a folder; name a file" in refused(["demo", "--plot", str(tmp_path)], capsys)
    assert "name a file ending in one of" in refused(["demo", "--plot", str(tmp_path / "fit.txt")], capsys)
    assert "exists and is not a folder" in refused(["bench", "--out", str(a_file)], capsys)
    assert "its parent folder does not exist" in refused(["bench", "--out", str(tmp_path / "a" / "b")], capsys)
    assert "not a results.json" in refused(["bench", "--replot", str(a_file)], capsys)
    assert "cannot read it as JSON" in refused(["bench", "--replot", str(tmp_path / "none.json")], capsys)
    assert not (tmp_path / "a").exists()


def test_missing_matplotlib_is_refused_before_the_fit(monkeypatch, tmp_path, no_work, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "matplotlib" else real(name, *a))
    assert "--plot needs matplotlib" in refused(["demo", "--plot", str(tmp_path / "fit.png")], capsys)


def test_bench_out_is_created_when_its_parent_exists(tmp_path, no_work):
    out = tmp_path / "new"
    with pytest.raises(AssertionError, match="work started"):  # got as far as the sweep
        cli.main(["bench", "--no-extras", "--contenders", "floor", "--out", str(out)])
    assert out.is_dir()


def test_a_bad_argument_ends_without_a_traceback():
    """As a user runs it: one error line on stderr after the usage, exit status 2."""
    proc = subprocess.run([sys.executable, "-m", "nbloss", "demo", "--delta", "-1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == ("python -m nbloss demo: error: argument --delta: "
                                            "'-1' is outside (0, inf)")


def help_text(argv, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as exc:
        cli.main(argv + ["--help"])
    assert exc.value.code == 0
    return " ".join(capsys.readouterr().out.split())  # argparse's wrapping undone


def test_help_describes_the_program_and_its_commands(capsys, monkeypatch):
    text = help_text([], capsys, monkeypatch)
    assert "``" not in text and "examples: python -m nbloss demo --plot fit.png" in text
    for command in ("demo", "bench", "info"):
        assert f"{command} " in text


def test_demo_help_shows_descriptions_defaults_and_examples(capsys, monkeypatch):
    text = help_text(["demo"], capsys, monkeypatch)
    assert "gross outliers" in text and "huber_loss_value_and_grad" in text
    for option, default in (("--n", "200"), ("--outliers", "0.2"), ("--delta", "1.0"), ("--seed", "0")):
        assert re.search(rf"{option} \S+ .*?\(default: {re.escape(default)}\)", text), option
    assert "(default: None)" not in text and "examples:" in text


def test_bench_help_shows_descriptions_defaults_and_choices(capsys, monkeypatch):
    text = help_text(["bench"], capsys, monkeypatch)
    assert "Time nbloss against torch" in text and "examples:" in text
    for option, choices, default in (
            ("--dtypes", "{float32,float64}", "float32,float64"),
            ("--losses", "{smooth_l1,huber}", "smooth_l1,huber"),
            ("--ops", "{mean,none,grad,fused}", "mean,none,grad,fused"),
            ("--contenders", "{nbloss,torch,numpy,floor,compute,torch-compile,jax}",
             "nbloss,torch,numpy,floor")):
        assert f"{option} {choices}[,...]" in text
        assert re.search(rf"{option} {re.escape(choices)}\[,...\] .*?\(default: {default}\)", text), option
    for option, default in (("--sizes", "1e3,1e4,1e5,1e6,1e7"), ("--rounds", "1"),
                            ("--min-time", "0.05"), ("--out", "nbloss-bench")):
        assert re.search(rf"{option} \S+ .*?\(default: {re.escape(default)}\)", text), option
    assert "--replot" in text and "(default: False)" not in text and "--worker" not in text
