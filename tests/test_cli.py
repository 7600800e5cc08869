"""`python -m nbloss demo` (the main job) and `info`, as a user runs them."""

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
