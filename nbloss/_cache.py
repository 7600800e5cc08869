"""The disk cache of nbloss's CPU functions: ``_jit.njit(cache=True)`` installs
(:func:`install`) :class:`Cache`, a ``numba.core.caching.FunctionCache`` that a faulty
disk cache cannot break:

- no writable cache location (``NUMBA_CACHE_DIR`` if set, the package's ``__pycache__``
  and the user's cache folder all unwritable, as with a read-only installation and home
  in a locked-down container): numba raises ``RuntimeError: cannot cache function ...:
  no locator available`` when the function is decorated, at nbloss's first call. nbloss
  compiles in memory instead, with one :class:`nbloss.CacheWarning` per process that
  says where numba looked and how to fix it;
- an index (``.nbi``) or data (``.nbc``) file that cannot be loaded (truncated, zero
  bytes, random bytes, written by another numba): numba raises (``EOFError``,
  ``UnpicklingError``, LLVM's "Invalid abbrev number", ...) at every call that loads
  it, in every later process, and a damaged byte in a data file's machine code can abort
  the process inside LLVM. nbloss checks each data file's checksum before unpickling it,
  treats an entry that fails to load as missing, recompiles the function, rewrites the
  entry (the next process loads it cleanly) and warns once per process;
- a cache that cannot be written (disk full, permissions changed after start-up): the
  compiled function is used from memory, with one warning per process;
- an edit of ``_math.py`` or ``_jit.py``: numba checks only a function's own file for
  changes, but a ``_cpu`` function also holds the element functions and the tools
  compiled into it, so each entry records those files' stamps too (:data:`SHARED_SOURCES`),
  and an edit recompiles every function instead of loading stale code.

Only nbloss's own dispatchers get this cache (``Dispatcher._cache``, the object that
numba's ``enable_caching`` would set); numba itself is not patched.
"""

import functools
import hashlib
import os
import pickle
import warnings

import numba
from numba.core import caching

from ._validate import CacheWarning

_warned = set()


def _warn_once(kind, message):
    if kind not in _warned:
        _warned.add(kind)
        warnings.warn(message, CacheWarning, stacklevel=2)


def install(dispatcher):
    """Give ``dispatcher`` (a ``numba.njit`` one) a :class:`Cache`; where numba finds no
    writable cache location, leave it compiling in memory, with one warning per
    process."""
    try:
        dispatcher._cache = Cache(dispatcher.py_func)
    except RuntimeError as exc:  # numba: "cannot cache function ...: no locator available"
        _warn_once("location", _no_location_message(dispatcher.py_func, exc))


def _cache_locations(fn):
    """Where numba looks for a writable cache folder for ``fn``, in its order."""
    places = []
    if numba.config.CACHE_DIR:
        places.append(f"NUMBA_CACHE_DIR={numba.config.CACHE_DIR}")
    try:
        source = os.path.dirname(os.path.abspath(fn.__code__.co_filename))
        places.append(os.path.join(source, "__pycache__"))
        from numba.misc.appdirs import AppDirs

        places.append(AppDirs(appname="numba", appauthor=False).user_cache_dir)
    except Exception:  # pragma: no cover - only decorates the message
        pass
    return places


def _no_location_message(fn, exc):
    return ("nbloss cannot cache its compiled kernels on disk: numba found no writable "
            f"cache folder (tried {', '.join(_cache_locations(fn))}; numba: {exc}). nbloss "
            "compiles them in memory instead, so every new process compiles them again on "
            "first use. To cache them, set the environment variable NUMBA_CACHE_DIR to a "
            "writable folder.")


class _IndexDataCacheFile(caching.IndexDataCacheFile):
    """numba's index (``.nbi``) and data (``.nbc``) files, where

    - an index that cannot be read or unpickled counts as empty: the next save writes a
      fresh one;
    - each data file starts with a header and the SHA-256 of the pickled entry, and holds
      a digest of its index key: a damaged file (a flipped byte in its machine code or
      bitcode would otherwise reach LLVM, which aborts the process) or one that an index
      maps to the wrong signature is rejected before it is unpickled;
    - index keys carry :data:`FORMAT`, so that entries in numba's own format (written
      before it) are misses, not faults.
    """

    def save(self, key, data):
        super().save((FORMAT, key), (_key_digest(key), data))

    def load(self, key):
        entry = super().load((FORMAT, key))
        if entry is None:
            return None
        digest, data = entry
        if digest != _key_digest(key):
            raise ValueError("the entry belongs to another signature")
        return data

    def _load_index(self):
        try:
            return super()._load_index()
        except OSError:
            return {}  # cannot be read (numba: only a missing index is a miss); a write warns
        except Exception as exc:
            _unreadable(self._index_path, exc)
            return {}

    def _save_data(self, name, data):
        payload = self._dump(data)
        with self._open_for_write(self._data_path(name)) as f:
            f.write(_HEADER + hashlib.sha256(payload).digest() + payload)

    def _load_data(self, name):
        with open(self._data_path(name), "rb") as f:
            blob = f.read()
        start = len(_HEADER) + 32
        if blob[:len(_HEADER)] != _HEADER:
            raise ValueError("not an nbloss cache entry")
        if hashlib.sha256(blob[start:]).digest() != blob[len(_HEADER):start]:
            raise ValueError("checksum mismatch: the file is damaged")
        return pickle.loads(blob[start:])


# files whose code numba compiles into the functions of other files: an edit of one makes
# every cache entry stale (see the module's docstring)
SHARED_SOURCES = ("_jit.py", "_math.py")


@functools.lru_cache(maxsize=None)
def _shared_sources_stamp():
    """(modification time, size) of each file of :data:`SHARED_SOURCES`, as numba stamps a
    function's own file; None for one that cannot be read."""
    stamps = []
    for name in SHARED_SOURCES:
        try:
            st = os.stat(os.path.join(os.path.dirname(os.path.abspath(__file__)), name))
            stamps.append((st.st_mtime, st.st_size))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


FORMAT = "nbloss-cache-1"
_HEADER = FORMAT.encode() + b"\n"


def _key_digest(key):
    return hashlib.sha256(repr(key).encode()).hexdigest()


class Cache(caching.FunctionCache):
    """numba's ``FunctionCache`` for one of nbloss's functions, where an entry that cannot
    be loaded is recompiled and rewritten, and a failed write leaves the function in
    memory; each with one :class:`nbloss.CacheWarning` per process."""

    def __init__(self, py_func):
        super().__init__(py_func)
        self._cache_file = _IndexDataCacheFile(
            cache_path=self._cache_path, filename_base=self._impl.filename_base,
            source_stamp=(self._impl.locator.get_source_stamp(), _shared_sources_stamp()))

    def load_overload(self, sig, target_context):
        try:
            return super().load_overload(sig, target_context)
        except Exception as exc:  # a data file that cannot be loaded, or rebuilt
            _unreadable(os.path.join(self._cache_path, self._impl.filename_base + ".*"), exc)
            return None

    def save_overload(self, sig, data):
        try:
            super().save_overload(sig, data)
        except Exception as exc:
            _warn_once("write", f"nbloss could not write a compiled kernel to numba's disk cache "
                                f"in {self._cache_path} ({type(exc).__name__}: {exc}); it is "
                                "used from memory, and later processes compile it again. Set "
                                "NUMBA_CACHE_DIR to a writable folder to cache it.")


def _unreadable(path, exc):
    _warn_once("unreadable", f"nbloss could not load an entry of numba's disk cache ({path}: "
                             f"{type(exc).__name__}: {exc}); it recompiled the function and "
                             "rewrote the entry. Any other unreadable entry in this process is "
                             "handled the same way without a further warning.")
