"""The README's two commands are what CI runs and what the package provides."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parent.parent


def quick_start_commands():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_quick_start_has_exactly_two_commands():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert "python -m nbloss demo" in commands[0]
    assert "pytest" in commands[1]


def test_each_quick_start_command_makes_its_own_virtual_environment():
    """A system Python may be externally managed: each command starts with a venv."""
    folders = []
    for command in quick_start_commands():
        made = re.match(r"python3 -m venv (\S+) && \. (\S+)/bin/activate && pip install ", command)
        assert made and made.group(1) == made.group(2), command
        folders.append(made.group(1))
    assert len(set(folders)) == len(folders)


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert quick_start_commands()[1] in ci
    assert any(line.startswith("export NBLOSS_REQUIRE_COMPARE=1") for line in ci)


def test_readme_shows_the_committed_benchmark_table_verbatim():
    """The README's speed table is results.md as `python -m nbloss bench` wrote it."""
    results = ROOT / "benchmarks" / "results" / "cpu-2core-intel"
    readme = (ROOT / "README.md").read_text()
    block = readme.split("<!-- bench:cpu-2core-intel -->\n", 1)[1].split(
        "<!-- /bench:cpu-2core-intel -->", 1)[0]
    assert block == (results / "results.md").read_text()
    assert "benchmarks/results/cpu-2core-intel/results.png" in readme
    assert (results / "results.png").exists()


def test_readme_usage_snippets_are_the_examples_code():
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / "examples" / "robust_regression.py").read_text()
    for fn in ("def objective", "def hessp"):
        snippet = readme.split(fn, 1)[1].split("\n\n", 1)[0]
        assert fn + snippet in example
    train = "def train(" + readme.split("```python\ndef train(", 1)[1].split("```", 1)[0]
    assert train in (ROOT / "examples" / "mlp_numpy.py").read_text()


def test_readme_dask_snippet_is_the_examples_code():
    section = (ROOT / "README.md").read_text().split("## Scale out with Dask", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert snippet in (ROOT / "examples" / "dask_regression.py").read_text()


def test_gpu_jobs_are_scripted():
    script = (ROOT / "benchmarks" / "gpu.sh").read_text()
    readme = (ROOT / "README.md").read_text()
    for job in ("test", "bench"):
        assert f"bash benchmarks/gpu.sh {job}" in readme and f"  {job})" in script


def test_readme_numba_snippet_is_the_examples_code():
    section = (ROOT / "README.md").read_text().split("## Use from numba code", 1)[1]
    snippet = section.split("```python\n", 1)[1].split("```", 1)[0]
    assert "elementwise.huber(" in snippet
    assert snippet in (ROOT / "examples" / "robust_regression_numba.py").read_text()
