"""The static types a user gets: mypy on code written the way a user writes it, the
stub's overloads against the module they describe, and the marker that ships them."""

import pathlib
import re
import subprocess
import sys

from conftest import require

ROOT = pathlib.Path(__file__).resolve().parent.parent

USER_CODE = '''\
import numpy as np
import nbloss
from nbloss.fvcore import smooth_l1_loss as fvcore_smooth_l1_loss

x = np.linspace(-2.0, 2.0, 5, dtype=np.float32)
y = np.zeros(5, dtype=np.float32)
reveal_type(nbloss.smooth_l1_loss(x, y, beta=0.5))
reveal_type(nbloss.huber_loss(x, y, 1.0, "none"))
reveal_type(nbloss.huber_loss(x, y, reduction="none", weight=[1.0, 1.0, 1.0, 1.0, 0.5]))
reveal_type(nbloss.smooth_l1_loss_value_and_grad(x, y, 0.5, "sum"))
reveal_type(nbloss.huber_loss_grad([1.0, 2.0], 0.0))
grad_input, grad_target = nbloss.smooth_l1_loss_backward(1.0, x, y, reduction="sum")
hess = nbloss.huber_loss_hess_diag(x, y, delta=np.float32(2.0))
crit = nbloss.SmoothL1Loss(reduction="sum", beta=0.5)
loss = crit(x, y)
grad_input, grad_target = crit.backward(2.0)
huber = nbloss.HuberLoss("none", delta=2)
huber(x, 0.0)
huber.backward(np.ones(5))
fvcore_smooth_l1_loss(x, y, 0.1, "mean")
value: float = float(nbloss.smooth_l1_loss(x, y, 1.0, "mean"))
shape: tuple[int, ...] = nbloss.smooth_l1_loss(x, y, reduction="none").shape
warning: type[Warning] = nbloss.CacheWarning

nbloss.smooth_l1_loss(x, y, reduction="avg")  # E: not a reduction
nbloss.huber_loss(x, y, 1.0, "elementwise_mean")  # E: deprecated, so not in the type
nbloss.SmoothL1Loss(0.5)  # E: size_average, not beta
nbloss.HuberLoss(delta="2")  # E: not a number
nbloss.smooth_l1_loss_grad(x, y, beta=None)  # E: not a number
'''


def test_user_code_type_checks_and_misuse_is_caught(tmp_path):
    require("mypy", extra="test")
    (tmp_path / "user.py").write_text(USER_CODE)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent",
         "--cache-dir", str(tmp_path / "cache"), "--no-error-summary", "user.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
        env={"MYPYPATH": str(ROOT), "PATH": "", "HOME": str(tmp_path)})
    out = proc.stdout + proc.stderr
    errors = {int(m[1]) for m in re.finditer(r"^user\.py:(\d+): error:", out, re.M)}
    lines = USER_CODE.splitlines()
    expected = {i + 1 for i, line in enumerate(lines) if "# E:" in line}
    assert errors == expected, out
    revealed = re.findall(r'^user\.py:\d+: note: Revealed type is "(.+)"$', out, re.M)
    assert revealed == [
        "numpy.floating[Any]",
        "numpy.ndarray[tuple[Any, ...], numpy.dtype[numpy.floating[Any]]]",
        "numpy.ndarray[tuple[Any, ...], numpy.dtype[numpy.floating[Any]]]",
        "tuple[numpy.floating[Any], numpy.ndarray[tuple[Any, ...], "
        "numpy.dtype[numpy.floating[Any]]]]",
        "numpy.ndarray[tuple[Any, ...], numpy.dtype[numpy.floating[Any]]]",
    ], out


def test_the_stub_matches_the_module():
    """nbloss/_losses.pyi (the overloads) against nbloss/_losses.py as it runs: names,
    parameters, defaults."""
    require("mypy", extra="test")
    proc = subprocess.run([sys.executable, "-m", "mypy.stubtest", "nbloss._losses"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={"MYPYPATH": str(ROOT), "PATH": "", "HOME": str(ROOT)})
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_types_ship_with_the_package():
    config = (ROOT / "pyproject.toml").read_text()  # no tomllib on Python 3.10
    section = config.split("[tool.setuptools.package-data]", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^nbloss = \["py\.typed", "\*\.pyi"\]$', section, re.M), section
    assert (ROOT / "nbloss" / "py.typed").exists()
