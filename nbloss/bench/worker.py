"""The worker process: one contender timing the cases the driver sends it, as JSON lines
over stdin and stdout, and the driver's handle on such a process.

Each contender runs in its own worker: torch and numba both run thread pools, and in one
process on a small machine they fight over the cores.
"""

import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

from . import bounds
from .cases import CASE_BUILDERS, case_data


def time_call(fn, min_time=0.2, min_samples=7):
    """Median and minimum seconds per call of ``fn``. Calls are grouped so that each
    sample lasts at least ~50 us (the clock's own cost stays below 0.5%), after two
    warm-up calls (compilation and first-touch costs are not part of a timed call)."""
    fn()
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    per_sample = max(1, int(50e-6 / once))
    samples = []
    start = time.perf_counter()
    while len(samples) < min_samples or time.perf_counter() - start < min_time:
        t0 = time.perf_counter()
        for _ in range(per_sample):
            fn()
        samples.append((time.perf_counter() - t0) / per_sample)
        if len(samples) >= 10_000:
            break
    return statistics.median(samples), min(samples), len(samples)


def serve(contender):
    """Serve cases over stdin/stdout as JSON lines: {"loss", "op", "dtype", "n",
    "min_time"} -> {"median", "min", "samples", "setup_s"} (or {"error"}); {"cmd":
    "versions"} -> the versions of what the contender runs on. ``setup_s`` is the seconds
    the case's builder took, and for the compiled contenders (:data:`.cases.COMPILED`)
    ``compile_s`` those of its first call, which traces and compiles; neither is part of
    the timed calls.

    The replies go to the process's original stdout; anything else written there (a
    compiler's or a library's message, a child process's output) goes to stderr instead,
    so that it cannot break a reply."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    builder = CASE_BUILDERS[contender]
    data = {}
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("cmd") == "versions":
            print(json.dumps(versions(contender)), file=replies, flush=True)
            continue
        key = (req["dtype"], req["n"])
        if key not in data:
            data.clear()  # one size at a time: 1e7 float64 inputs are 160 MB
            data[key] = case_data(np.dtype(req["dtype"]), req["n"])
        try:
            t0 = time.perf_counter()
            fn = builder(req["loss"], req["op"], *data[key])
            setup = time.perf_counter() - t0
            median, best, count = time_call(fn, req["min_time"])
            reply = {"median": median, "min": best, "samples": count, "setup_s": setup}
            if hasattr(fn, "first_call_s"):
                reply["compile_s"] = fn.first_call_s
        except Exception as exc:  # reported, not fatal: the other cases still run
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), file=replies, flush=True)


def versions(contender):
    """The versions, thread counts and threading layer that ``contender``'s timings
    depend on."""
    found = {"numpy": np.__version__}
    if contender in ("nbloss", "floor"):
        import numba

        import nbloss

        layer = bounds.threading_layer()  # first: numba picks its layer when threads start
        found.update(nbloss=nbloss.__version__, numba=numba.__version__,
                     numba_threads=numba.get_num_threads(), numba_threading_layer=layer)
    if contender in ("torch", "torch-compile"):
        import torch

        found.update(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                     torch_cpu_capability=torch.backends.cpu.get_cpu_capability())
    if contender == "jax":
        import jax
        import jaxlib

        cpu = jax.devices("cpu")
        found.update(jax=jax.__version__, jaxlib=jaxlib.__version__, jax_cpu_devices=len(cpu))
    return found


# glibc's malloc, told to keep freed memory for the next allocation: no mmap per large
# array (MMAP_MAX 0) and no return of the heap's top to the system (TRIM_THRESHOLD)
REUSE_MEMORY_ENV = {"MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(1 << 62)}


class Worker:
    """A contender's worker process. With ``reuse_memory``, its allocator keeps freed
    memory (``REUSE_MEMORY_ENV``), so that arrays allocated on every call reuse pages
    already mapped instead of faulting fresh ones in. By default it does not: glibc maps
    every allocation above 32 MB afresh, and what that costs a library that allocates
    N-sized temporaries (torch) is part of what a user of it pays. Every contender gets
    the same environment."""

    def __init__(self, contender, reuse_memory=False):
        self.contender = contender
        env = dict(os.environ, **REUSE_MEMORY_ENV) if reuse_memory else None
        self.proc = subprocess.Popen([sys.executable, "-m", "nbloss.bench", "--worker", contender],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env)

    def ask(self, request):
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.contender} worker died (exit {self.proc.wait()})")
        return json.loads(line)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()
