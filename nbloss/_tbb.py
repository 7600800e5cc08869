"""TBB, numba's threading layer for nbloss: loading it, and fork safety.

Loading. numba's threading layers, in its default order: ``tbb``, ``omp``, ``workqueue``.
Only TBB is safe both for calls from several Python threads at once (``workqueue`` aborts)
and in processes forked after a parallel kernel ran (GNU OpenMP kills the children:
"fork() called from a process already using GNU OpenMP, this is unsafe"). nbloss therefore
depends on the ``tbb`` wheel, which installs ``libtbb.so.12`` into ``<prefix>/lib``, a folder
the dynamic loader does not search in a virtual environment. Loading it once by path, with
RTLD_GLOBAL, makes numba's own ``dlopen("libtbb.so.12")`` find it. This has to happen
before the first parallel kernel of the process runs; nbloss does it when it loads its
kernels. A process that ran some other numba parallel code first keeps the layer it
already has (``python -m nbloss info`` shows which).

Fork safety. TBB survives ``fork()`` only if its worker threads are stopped first. numba's
TBB layer registers ``pthread_atfork`` handlers that stop them (``tbb::finalize``) and
restart TBB in both processes, but only when the fork comes from the thread that started
numba's thread pool, and even then it fails ("Unable to join threads") while any other
live thread has run a parallel kernel. In every other case the workers keep running while
the process forks ("Attempted to fork from a non-main thread, the TBB library may be in an
invalid state"), and the child inherits TBB's internal mutexes in whatever state they were
in at that instant: a child forked while a threaded kernel ran in another thread, or while
TBB's workers were going back to sleep after one, then hangs in its first parallel kernel
(seen: about 1% of forks under load, in ``thread_request_serializer::update`` or
``private_server::wake_some``). That child has none of the parent's worker threads anyway.

So nbloss's threaded kernels run through :func:`fork_safe`, with ``os.register_at_fork``
hooks: a fork waits for the threaded kernels running in other threads to return and holds
new ones back until it is done, so that no thread of the process is inside TBB for
nbloss at that instant; and a child forked where numba cannot stop TBB's workers (decided
before the fork, see :func:`_fork_keeps_tbb`) never enters TBB for nbloss: its threaded
kernels run the serial kernels, which give the same bits. A child forked from the thread
that started the pool, with no other live thread that ran a threaded kernel (a
single-threaded program forking workers), keeps its threads: numba restarted TBB there.
"""

import ctypes
import os
import site
import sys
import threading
import time
from _thread import get_ident

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


# -- fork safety ---------------------------------------------------------------------------

_running = []       # the thread of each threaded kernel in progress, one entry per call
_users = {}         # threads that ran a threaded kernel: TBB keeps state for each until it exits
# held while a fork is being made and while the pool is started; reentrant for a signal
# handler that forks in a thread inside _diverted
_lock = threading.RLock()
_started = False    # whether the first threaded call of the process has started TBB's pool
_launcher = None    # the thread that started numba's pool, when nbloss started it
_forking = False    # between the before-fork and after-fork hooks (in the parent)
_serial_only = False  # forked where TBB's workers kept running: never enter TBB here
_child_keeps_tbb = True  # decided by the before-fork hook for the child being forked
_divert = True      # any of: not _started, _forking, _serial_only
_hooks_registered = False


def fork_safe(threaded, serial):
    """``threaded`` (a ``parallel=True`` dispatcher) as a callable that a fork of the process
    waits for, and that runs ``serial`` (the same kernel compiled serially, same bits)
    instead in a process forked where TBB could not be stopped. Costs about 0.2 us a call."""
    _register_hooks()

    def call(*args):
        me = get_ident()
        _running.append(me)
        try:
            if not _divert:
                _users[me] = None
                return threaded(*args)
        finally:
            _running.remove(me)
        return _diverted(call, serial, args)

    call.__wrapped__ = threaded
    return call


def _diverted(call, serial, args):
    """The slow path of a :func:`fork_safe` call: in a process where TBB is off limits, the
    serial kernel; while a fork is under way, the call once the fork is done; the first
    threaded call of the process starts numba's thread pool first."""
    if _serial_only:
        return serial(*args)
    with _lock:  # a fork holds it until it is done
        if not _started:
            _start_pool()
    return call(*args)


def _start_pool():
    """Start numba's thread pool from this thread, unless something else started it: numba
    stops TBB's workers at a fork only when the fork comes from this thread. Called with
    ``_lock`` held."""
    global _started, _launcher, _divert
    import numba

    try:
        numba.threading_layer()  # raises until some parallel code started the pool
    except ValueError:
        numba.get_num_threads()  # starts it, from this thread
        if numba.threading_layer() == "tbb":
            _launcher = get_ident()
    _started = True
    _divert = _forking or _serial_only


def _fork_keeps_tbb(me):
    """Whether numba's fork handlers will stop TBB's workers at a fork from thread ``me``,
    so that the child can use TBB: the fork comes from the thread that started the pool
    (numba's condition) and no other live thread ever ran a threaded kernel (TBB's:
    ``tbb::finalize`` fails while another thread holds TBB state). Unknowable when
    something other than nbloss started the pool: then no. Threads that ran other numba
    parallel code are not counted."""
    if not _started:
        return True  # nbloss never entered TBB: nothing of it to inherit
    if _launcher != me:
        return False
    alive = sys._current_frames()
    for thread in list(_users):
        if thread not in alive:
            _users.pop(thread, None)  # exited: TBB released its state
    return all(thread == me for thread in list(_users))


def _before_fork():
    global _forking, _divert, _child_keeps_tbb
    _lock.acquire()
    _forking = _divert = True  # new threaded calls now wait in _diverted
    me = get_ident()
    # the calls already past their check: wait for them to return (a signal handler
    # forking in this very thread, inside a call, cannot wait for that call)
    while any(thread != me for thread in list(_running)):
        time.sleep(5e-5)
    _child_keeps_tbb = not _serial_only and _fork_keeps_tbb(me)


def _after_fork_in_parent():
    global _forking, _divert
    _forking = False
    _divert = _serial_only or not _started
    _lock.release()


def _after_fork_in_child():
    global _lock, _forking, _divert, _serial_only
    me = get_ident()
    _lock = threading.RLock()
    _running[:] = [thread for thread in _running if thread == me]
    kept = me in _users
    _users.clear()
    if kept:
        _users[me] = None
    _forking = False
    _serial_only = _serial_only or not _child_keeps_tbb
    _divert = _serial_only or not _started


def _register_hooks():
    global _hooks_registered
    if not _hooks_registered:
        os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                            after_in_child=_after_fork_in_child)
        _hooks_registered = True


def threads_usable():
    """False in a process forked where TBB's workers kept running: nbloss's threaded
    kernels run serially there (see the module's docstring)."""
    return not _serial_only
