"""Make pip's TBB visible to numba before it picks its threading layer.

numba's threading layers, in its default order: ``tbb``, ``omp``, ``workqueue``. Only TBB
is safe both for calls from several Python threads at once (``workqueue`` aborts) and in
processes forked after a parallel kernel ran (GNU OpenMP kills the children: "fork()
called from a process already using GNU OpenMP, this is unsafe"). nbloss therefore depends
on the ``tbb`` wheel, which installs ``libtbb.so.12`` into ``<prefix>/lib``, a folder the
dynamic loader does not search in a virtual environment. Loading it once by path, with
RTLD_GLOBAL, makes numba's own ``dlopen("libtbb.so.12")`` find it.

This has to happen before the first parallel kernel of the process runs; nbloss does it
when it loads its kernels. A process that ran some other numba parallel code first keeps
the layer it already has (``python -m nbloss info`` shows which).
"""

import ctypes
import os
import site
import sys

_SONAME = "libtbb.so.12"
_loaded = None


def candidate_dirs():
    dirs = [os.path.join(sys.prefix, "lib"), os.path.join(sys.base_prefix, "lib")]
    user_base = getattr(site, "USER_BASE", None)
    if user_base:
        dirs.append(os.path.join(user_base, "lib"))
    return dirs


def load_tbb():
    """Load TBB's runtime if it is installed and not already findable; returns the path
    loaded, "system" when the loader finds it unaided, or None when it is absent (numba
    then falls back to OpenMP)."""
    global _loaded
    if _loaded is not None or not sys.platform.startswith("linux"):
        return _loaded
    try:
        ctypes.CDLL(_SONAME)
        _loaded = "system"
        return _loaded
    except OSError:
        pass
    for d in candidate_dirs():
        path = os.path.join(d, _SONAME)
        if os.path.exists(path):
            try:
                ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
            except OSError:
                continue
            _loaded = path
            return _loaded
    return None
