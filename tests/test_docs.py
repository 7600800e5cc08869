"""The API reference: built from the docstrings by the one command the README and
docs/architecture.md give, without a warning, and listing every public name."""

import pathlib
import re
import shlex
import subprocess
import sys

import nbloss
from conftest import require

ROOT = pathlib.Path(__file__).resolve().parent.parent
COMMAND = "python -m sphinx -W -b html docs/api docs/_build/html"


def test_the_docs_command_is_written_where_a_reader_looks():
    assert COMMAND in (ROOT / "README.md").read_text()
    assert COMMAND in (ROOT / "docs" / "architecture.md").read_text()


def test_the_reference_lists_every_public_name():
    index = (ROOT / "docs" / "api" / "index.rst").read_text()
    documented = set(re.findall(r"^\.\. auto(?:function|class):: (\S+)$", index, re.M))
    assert set(nbloss.__all__) <= documented
    assert "nbloss.fvcore.smooth_l1_loss" in documented


def test_the_reference_builds_without_a_warning(tmp_path):
    require("sphinx", extra="docs")
    require("numpydoc", extra="docs")
    args = shlex.split(COMMAND)[1:]  # the README's command, into tmp_path
    args[-1] = str(tmp_path / "html")
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    page = (tmp_path / "html" / "index.html").read_text()
    for name in nbloss.__all__:
        assert f'id="nbloss.{name}"' in page, name
