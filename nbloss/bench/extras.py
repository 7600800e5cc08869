"""Measurements beside the sweep, each in a fresh interpreter: the cold start (a new
process to its first fused loss and gradient) and the extra memory of a reduction."""

import json
import os
import statistics
import subprocess
import sys

_COLD_NBLOSS = """
import time; t0 = time.perf_counter()
import numpy as np, nbloss
a = np.ones(1000, np.float32); b = np.zeros(1000, np.float32)
nbloss.smooth_l1_loss_value_and_grad(a, b)
print(time.perf_counter() - t0)
"""

_COLD_TORCH = """
import time; t0 = time.perf_counter()
import numpy as np, torch
a = torch.ones(1000, requires_grad=True); b = torch.zeros(1000)
torch.nn.functional.smooth_l1_loss(a, b).backward()
print(time.perf_counter() - t0)
"""


def cold_start(contenders, repeats=5):
    """Seconds from a fresh interpreter to the first fused loss and gradient (nbloss on a
    warm disk cache: one run fills it first; torch: import + loss + backward)."""
    result = {}
    scripts = {"nbloss": _COLD_NBLOSS, "torch": _COLD_TORCH}
    for c in ("nbloss", "torch"):
        if c not in contenders:
            continue
        subprocess.run([sys.executable, "-c", scripts[c]], check=True, capture_output=True)
        times = [float(subprocess.run([sys.executable, "-c", scripts[c]], check=True,
                                      capture_output=True, text=True).stdout)
                 for _ in range(repeats)]
        result[c] = {"median_s": statistics.median(times), "min_s": min(times), "runs": repeats}
    return result


_MEMORY = """
import json, resource, sys, tracemalloc
import numpy as np, nbloss
from numba.core.runtime import rtsys
n, dtype = int(sys.argv[1]), sys.argv[2]
a = np.random.default_rng(0).standard_normal(n).astype(dtype)
b = np.zeros(n, dtype)
small = np.ones(4096, dtype)
for reduction in ("mean", "sum"):  # compile and warm both kernels (small and large)
    nbloss.smooth_l1_loss(small, small, reduction=reduction)
    nbloss.huber_loss(a, b, reduction=reduction)
out = {}
for reduction in ("mean", "sum"):
    before_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stats0 = rtsys.get_allocation_stats()
    tracemalloc.start()
    nbloss.huber_loss(a, b, reduction=reduction)
    traced = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    stats1 = rtsys.get_allocation_stats()
    out[reduction] = {"tracemalloc_peak_bytes": traced,
                      "maxrss_growth_bytes": 1024 * (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before_rss),
                      "numba_allocations": stats1.alloc - stats0.alloc}
out["input_bytes"] = a.nbytes
print(json.dumps(out))
"""


def peak_memory(n=10_000_000, dtype="float32"):
    """Extra memory of a 'mean'/'sum' forward over n elements, in a fresh process:
    tracemalloc's peak (NumPy allocations), the growth of the peak RSS (everything,
    page-granular) and the count of numba's own allocations in the call."""
    env = dict(os.environ, NUMBA_NRT_STATS="1")  # numba counts its allocations only then
    proc = subprocess.run([sys.executable, "-c", _MEMORY, str(n), dtype], check=True,
                          capture_output=True, text=True, env=env)
    return json.loads(proc.stdout)
