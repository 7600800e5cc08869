"""What the README states that a test can check: the demo's output, the files it names,
the functions and keywords it lists, the extras its commands install, the constants it
quotes. (tests/test_repo.py checks the commands and the snippets.)"""

import inspect
import pathlib
import re

import pytest

import nbloss
from conftest import run_python

ROOT = pathlib.Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def section(title):
    return README.split(f"\n## {title}", 1)[1].split("\n## ", 1)[0]


def test_the_demo_prints_what_the_readme_says():
    pytest.importorskip("scipy")
    out = run_python("from nbloss.__main__ import main; main(['demo'])")
    n, k, pct = re.search(r"(\d+) points, (\d+) gross outliers \((\d+)%\)", out).groups()
    said = re.search(r"(\d+) points of which (\d+) \((\d+)%\) are gross outliers",
                     " ".join(section("Quick start").split()))
    assert said, "the Quick start no longer says how many outliers the demo has"
    assert said.groups() == (n, k, pct), (said.groups(), out.splitlines()[0])


def test_every_path_the_readme_names_exists():
    # `path`, [text](path) and the paths in "How it works"'s tree
    named = set(re.findall(r"[`(]((?:nbloss|tests|examples|benchmarks|docs|\.ci)/[\w./-]*)[`)]",
                           README))
    tree = section("How it works").split("```\n", 2)[1]
    folder = None
    for line in tree.splitlines():
        first = line.split()[0] if line.strip() else ""
        if not line.startswith(" ") and first.endswith("/"):
            folder = first
            named.add(first)
        elif not line.startswith(" ") and first:
            named.add(first)
        elif line.startswith("  ") and not line.startswith("   ") and folder and first:
            named.add(folder + first)
    named = {p for p in named if "<" not in p}
    assert len(named) > 30
    missing = sorted(p for p in named if not (ROOT / p).exists())
    assert not missing, missing


FUNCTIONS = [f"{loss}_loss{suffix}" for loss in ("smooth_l1", "huber")
             for suffix in ("", "_grad", "_value_and_grad", "_backward", "_hess_diag")]


def test_every_name_the_readme_uses_exists():
    for name in set(re.findall(r"\bnbloss\.(\w+)", README)) - {"fvcore"}:
        assert hasattr(nbloss, name), name
    # the API list: `*_loss(...)`, `*_loss_grad(...)`, ... for both losses
    for suffix in ("", "_grad", "_value_and_grad", "_backward", "_hess_diag"):
        assert f"- `*_loss{suffix}(" in section("API"), suffix


def test_the_api_table_gives_the_signatures():
    for name in ("smooth_l1_loss", "huber_loss"):
        row = re.search(rf"`{name}\((.+?)\)`", section("API")).group(1)
        params = inspect.signature(getattr(nbloss, name)).parameters
        for arg in row.split(", "):
            key, _, default = arg.partition("=")
            assert key in params, (name, key)
            if default:
                assert repr(params[key].default) == default.replace('"', "'"), (name, arg)


def test_keywords_are_as_the_readme_says():
    """Ten functions take reduction and keyword-only weight= and stream=; all but the
    backward take out=; the smooth_l1 ones but hess_diag take size_average/reduce; the
    criteria and fvcore's function take neither weight nor out."""
    api = " ".join(section("API").split())
    assert "Each of the ten functions below takes `reduction`" in api
    for name in FUNCTIONS:
        params = inspect.signature(getattr(nbloss, name)).parameters
        assert "reduction" in params
        for key in ("weight", "stream"):
            assert params[key].kind is inspect.Parameter.KEYWORD_ONLY, (name, key)
        assert ("out" in params) == (not name.endswith("_backward")), name
        legacy = name.startswith("smooth_l1") and not name.endswith("_hess_diag")
        assert ({"size_average", "reduce"} <= set(params)) == legacy, name
    from nbloss.fvcore import smooth_l1_loss
    for fn in (nbloss.SmoothL1Loss.__call__, nbloss.HuberLoss.__call__, smooth_l1_loss):
        params = inspect.signature(fn).parameters
        assert "weight" not in params and "out" not in params, fn
    # the criteria as the README writes them
    assert list(inspect.signature(nbloss.HuberLoss).parameters) == ["reduction", "delta"]
    assert list(inspect.signature(nbloss.SmoothL1Loss).parameters) == [
        "size_average", "reduce", "reduction", "beta"]
    assert inspect.signature(nbloss.SmoothL1Loss.backward).parameters["grad_output"].default == 1.0
    assert list(inspect.signature(smooth_l1_loss).parameters) == [
        "input", "target", "beta", "reduction"]


def test_every_extra_the_readme_installs_exists():
    text = (ROOT / "pyproject.toml").read_text()
    block = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    extras = set(re.findall(r"^(\w+) = \[", block, re.M))
    named = set()
    for group in re.findall(r"""(?:"\.|nbloss)\[([\w,]+)\]""", README):
        named.update(group.split(","))
    assert named and named <= extras, named - extras


def test_the_test_command_installs_no_cuda_runtime():
    """The PTX test needs NVVM and NVRTC only; the CUDA runtime is for GPU machines."""
    text = (ROOT / "pyproject.toml").read_text()
    ptx = re.search(r"^ptx = \[(.*)\]", text, re.M).group(1)
    assert "cudart" not in ptx and "[cu1" not in ptx and "nvvm" in ptx and "nvrtc" in ptx
    command = re.findall(r"```bash\n(.+?)\n```", section("Quick start"))[1]
    assert '".[test,compare,ptx]"' in command and "cuda12" not in command


def test_the_constants_the_readme_quotes():
    from nbloss import _cpu
    text = " ".join(README.split())
    kib = _cpu.PARALLEL_MIN_BYTES // 1024
    assert (f"Below {kib} KiB per operand ({_cpu.PARALLEL_MIN_BYTES // 4} float32 or "
            f"{_cpu.PARALLEL_MIN_BYTES // 8} float64 elements; "
            f"{_cpu.PARALLEL_MIN_BYTES_SUM // 1024} KiB for a loss") in text
    assert (f"per block ({_cpu.BLOCK_BYTES // 1024} KB of each operand: "
            f"{_cpu.BLOCK_BYTES // 4} float32 or {_cpu.BLOCK_BYTES // 8} float64 elements)") in text
    assert (f"L lanes ({_cpu.LANE_BYTES} bytes: {_cpu.LANE_BYTES // 4} float32 or "
            f"{_cpu.LANE_BYTES // 8} float64)") in text
    assert f"after each run ({_cpu.FLOAT32_RUN} float32 elements" in text
    assert f"to {_cpu.WIDE_LANES} and added to {_cpu.WIDE_LANES} float64 sums" in text


def test_the_counts_the_readme_quotes_are_the_tests():
    text = " ".join(README.split())
    forks = re.search(r"^FORKS, LIVE, CHILD_TIMEOUT = (\d+),",
                      (ROOT / "tests" / "test_concurrency.py").read_text(), re.M).group(1)
    assert f"forks {int(forks):,} times under load" in text
    cc = re.search(r'parametrize\("cc", \[(.+?)\]\)',
                   (ROOT / "tests" / "test_cuda_compile.py").read_text()).group(1)
    targets = sorted(c.strip('" ').replace(".", "") for c in cc.split(","))
    assert "compiled to PTX for " + " and ".join(f"sm_{t}" for t in targets) in text


def test_the_dask_table_is_the_saved_output():
    saved = (ROOT / "benchmarks" / "results" / "cpu-2core" / "dask-regression.txt").read_text()
    runs = re.findall(r"--rows (\d+) .*?\nin memory: +([\d.]+) s, (\d+) evaluations\n"
                      r"2 workers: ([\d.]+) s, (\d+) evaluations.*?\n"
                      r"max \|w_memory - w_cluster\| = ([\d.e+-]+)", saved, re.S)
    assert len(runs) == 2
    for rows, mem, mem_ev, dist, dist_ev, diff in runs:
        row = (f"| {int(rows):,} | {float(mem):.2f} s ({mem_ev} evaluations) | "
               f"{float(dist):.2f} s ({dist_ev} evaluations) | {float(diff):.1e} |")
        assert row.replace("e-0", "e-") in README, row
