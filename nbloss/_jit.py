"""How nbloss's CPU functions are compiled and cached.

The options every kernel is compiled with are :data:`OPTIONS` (:data:`NOALIAS_OPTIONS`
for the block sums). Every numba function of ``_cpu`` (and of ``_math``, compiled by
``_cpu``) is made by :func:`njit`: ``numba.njit`` with the given options, except that ``cache=True`` installs
:class:`Cache`, a ``numba.core.caching.FunctionCache`` that a faulty disk cache cannot
break:

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
  compiled function is used from memory, with one warning per process.

Only nbloss's own dispatchers get this cache (``Dispatcher._cache``, the object that
numba's ``enable_caching`` would set); numba itself is not patched. ``@overload``
implementations (:func:`overload_options`) are compiled in memory: they are compiled as
part of a kernel that is itself cached, and a warm process never compiles them.
"""

import hashlib
import os
import pickle
import warnings

import numba
from numba.core import caching
from numba.core.compiler import CompilerBase, DefaultPassBuilder

from . import CacheWarning


class NoAliasCompiler(CompilerBase):
    """numba's nopython pipeline, with LLVM told that no array argument overlaps another
    (``noalias`` on each data pointer): without it a runtime alias check guards each
    vectorised loop that writes, and the fused block sum ran 8-17% slower. nbloss's
    kernels can promise it: ``out=`` may not share memory with an input (``_validate``),
    and every other output is freshly allocated."""

    def define_pipelines(self):
        self.state.flags.noalias = True
        return [DefaultPassBuilder.define_nopython_pipeline(self.state)]


# No fastmath flags: nnan/ninf would fold away NaN and inf handling, and reassoc would let
# LLVM reorder a reduction's additions differently in each copy of a function (the order
# is written in the source instead: ``_cpu._block_loss_sum``).
OPTIONS = dict(cache=True, error_model="numpy", fastmath=False)
NOALIAS_OPTIONS = dict(OPTIONS, pipeline_class=NoAliasCompiler)

_warned = set()


def _warn_once(kind, message):
    if kind not in _warned:
        _warned.add(kind)
        warnings.warn(message, CacheWarning, stacklevel=2)


def njit(**options):
    """``numba.njit(**options)``; with ``cache=True``, cached on disk by :class:`Cache`,
    or compiled in memory when numba finds no writable cache location."""
    cache = options.pop("cache", False)

    def decorate(fn):
        dispatcher = numba.njit(**options)(fn)
        if cache:
            try:
                dispatcher._cache = Cache(dispatcher.py_func)
            except RuntimeError as exc:  # numba: "cannot cache function ...: no locator available"
                _warn_once("location", _no_location_message(fn, exc))
        return dispatcher

    return decorate


def overload_options(options):
    """``jit_options`` for ``numba.extending.overload``: ``options`` without the disk
    cache (see the module's docstring)."""
    return {key: value for key, value in options.items() if key != "cache"}


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
            source_stamp=self._impl.locator.get_source_stamp())

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
