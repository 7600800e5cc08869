"""A disk cache that cannot be written or read never breaks nbloss (nbloss/_cache.py): it
compiles in memory, rewrites what it could not load, and warns once per process. Each
case runs in fresh processes on a cache folder of its own."""

import json
import os
import pickle
import shutil

import numba
import numpy as np
import pytest

import nbloss
from conftest import run_python

PACKAGE = os.path.dirname(nbloss.__file__)

# a serial and a threaded kernel, each with its element functions
SCRIPT = """
import hashlib, json, sys, warnings
if len(sys.argv) > 1:
    sys.path.insert(0, sys.argv[1])  # a copy of the package
import numpy as np
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    import nbloss
    from nbloss import _cpu, _math
    rng = np.random.default_rng(3)
    results = []
    for n in (1001, 100_003):
        a = (rng.standard_normal(n) * 2).astype(np.float32)
        b = rng.standard_normal(n).astype(np.float32)
        results += nbloss.huber_loss_value_and_grad(a, b, 1.5, "sum")
family = _cpu.FAMILIES[_math.HUBER]
kernels = (family.serial.loss_sum, family.parallel.loss_sum.__wrapped__)
print(json.dumps({
    "digest": hashlib.sha256(b"".join(np.asarray(r).tobytes() for r in results)).hexdigest(),
    "warnings": [[w.category.__name__, str(w.message)] for w in caught],
    "hits": [sum(k.stats.cache_hits.values()) for k in kernels],
    "package": nbloss.__file__}))
"""


def run(cache_dir, *args, **env):
    return json.loads(run_python(SCRIPT, *args, timeout=300, NUMBA_CACHE_DIR=cache_dir, **env))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A cache written by a cold process (compiled), and what that process and a warm one
    (loading the cache) computed."""
    cache = tmp_path_factory.mktemp("pristine")
    cold = run(cache)
    warm = run(cache)
    assert cold["warnings"] == warm["warnings"] == []
    assert cold["hits"] == [0, 0] and warm["hits"] == [1, 1]
    return cache, cold, warm


def test_no_writable_cache_location_compiles_in_memory_with_one_warning(tmp_path, pristine):
    """numba's locators all fail: NUMBA_CACHE_DIR, the package's __pycache__ and the
    user-wide cache folder lie under a regular file (running as root, permissions would
    not stop a write). numba itself raised "cannot cache function ...: no locator
    available" at the first call."""
    _, cold, _ = pristine
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    copy = tmp_path / "site"
    shutil.copytree(PACKAGE, copy / "nbloss", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "nbloss" / "__pycache__").write_text("")  # no in-tree cache folder either
    got = run(blocker / "numba", str(copy), HOME=blocker / "home",
              XDG_CACHE_HOME=blocker / "cache")
    assert got["package"] == str(copy / "nbloss" / "__init__.py")
    assert got["digest"] == cold["digest"]  # compiled in memory, as the cold process did
    assert got["hits"] == [0, 0]
    assert len(got["warnings"]) == 1, got["warnings"]
    category, message = got["warnings"][0]
    assert category == "CacheWarning"
    assert "NUMBA_CACHE_DIR" in message and str(blocker / "numba") in message


def _foreign_pickle(path):
    """What a file written by another numba version holds: a pickle naming a class this
    numba does not have (an index keeps this numba's version header, which numba checks
    itself)."""
    missing = b"cnumba.core.caching\nClassFromAnotherNumba\n)R."
    if path.suffix == ".nbi":
        return pickle.dumps(numba.__version__, protocol=-1) + missing
    return missing


def _flipped(path, data):
    """16 bytes inverted in the middle third: in a data file, the machine code or LLVM
    bitcode of the entry (numba unpickled it and LLVM aborted the process)."""
    data = bytearray(data)
    for i in np.random.default_rng(len(data)).integers(len(data) // 3, 2 * len(data) // 3, 16):
        data[i] ^= 0xFF
    return bytes(data)


FAULTS = {
    "flipped": _flipped,
    "truncated": lambda path, data: data[:len(data) // 2],
    "random": lambda path, data: np.random.default_rng(len(data)).bytes(len(data)),
    "empty": lambda path, data: b"",
    "foreign": lambda path, data: _foreign_pickle(path),
}


CASES = [(suffix, fault) for suffix in (".nbc", ".nbi") for fault in sorted(FAULTS)
         if (suffix, fault) != (".nbi", "flipped")]  # a flipped index byte may just be a miss


@pytest.mark.parametrize("suffix, fault", CASES)
def test_unreadable_cache_entries_are_recompiled_and_rewritten(tmp_path, pristine, suffix, fault):
    """Every index (or every data file) of the cache damaged: the next process recompiles
    (the cold process's bits) with one warning and rewrites the entries; the process after
    it loads them, with no warning and the warm process's bits. numba itself raised
    (EOFError, UnpicklingError, AttributeError) at every call, in every process, or
    aborted in LLVM."""
    cache, cold, warm = pristine
    shutil.copytree(cache, tmp_path / "cache")
    damaged = list((tmp_path / "cache").rglob("*" + suffix))
    assert damaged
    for path in damaged:
        path.write_bytes(FAULTS[fault](path, path.read_bytes()))
    repaired = run(tmp_path / "cache")
    assert repaired["digest"] == cold["digest"]
    assert repaired["hits"] == [0, 0]
    assert len(repaired["warnings"]) == 1, repaired["warnings"]
    assert repaired["warnings"][0][0] == "CacheWarning"
    assert "recompiled" in repaired["warnings"][0][1]
    after = run(tmp_path / "cache")
    assert after["warnings"] == []
    assert after["hits"] == [1, 1]
    assert after["digest"] == warm["digest"]


UNWRITABLE_LATER = """
import json, os, pathlib, shutil, sys, warnings
import numpy as np
import nbloss
from nbloss import _cpu  # the kernels are set up with a cache folder that is writable...
cache = pathlib.Path(os.environ["NUMBA_CACHE_DIR"])
shutil.rmtree(cache)
cache.write_text("")  # ...and is not by the time they are compiled
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    r = nbloss.huber_loss_value_and_grad(np.linspace(-3, 3, 1001), np.zeros(1001))
    r = nbloss.huber_loss_value_and_grad(np.linspace(-3, 3, 1001), np.zeros(1001))
print(json.dumps([[w.category.__name__, str(w.message)] for w in caught]))
"""


def test_a_failed_cache_write_keeps_the_kernel_in_memory_with_one_warning(tmp_path):
    caught = json.loads(run_python(UNWRITABLE_LATER, timeout=300,
                                   NUMBA_CACHE_DIR=tmp_path / "cache"))
    assert len(caught) == 1 and caught[0][0] == "CacheWarning", caught
    assert "could not write" in caught[0][1] and "NUMBA_CACHE_DIR" in caught[0][1]


EDITED = """
import json, sys
sys.path.insert(0, sys.argv[1])  # a copy of the package
import numpy as np
import nbloss
from nbloss import _cpu, _math
a = np.arange(10.0)
total = nbloss.smooth_l1_loss(a, np.zeros(10), 0.0, "sum")  # L1: sum(|a|), a block sum
kernel = _cpu.FAMILIES[_math.L1].serial.loss_sum
print(json.dumps([float(total), sum(kernel.stats.cache_hits.values())]))
"""


def test_an_edit_of_math_or_jit_recompiles_what_uses_them(tmp_path):
    """numba checks only a function's own file for changes; the block sum (in _cpu.py)
    holds _math's element functions and _jit's tools, so an edit of either recompiles it
    and the kernels, instead of loading the stale block sum from the cache (the sum
    stayed sum(|a|) after the edit)."""
    copy = tmp_path / "site"
    shutil.copytree(PACKAGE, copy / "nbloss", ignore=shutil.ignore_patterns("__pycache__"))
    cache = tmp_path / "cache"

    def result():
        return json.loads(run_python(EDITED, str(copy), timeout=300, NUMBA_CACHE_DIR=cache))

    assert result() == [45.0, 0]
    assert result() == [45.0, 1]  # loaded from the cache
    math_py = copy / "nbloss" / "_math.py"
    source = math_py.read_text()
    assert source.count("\n    return z\n") == 1
    math_py.write_text(source.replace("\n    return z\n", "\n    return z + z\n"))
    assert result() == [90.0, 0]
    assert result() == [90.0, 1]
    jit_py = copy / "nbloss" / "_jit.py"
    jit_py.write_text(jit_py.read_text() + "# edited\n")
    assert result() == [90.0, 0]
