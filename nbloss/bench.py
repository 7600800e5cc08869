"""Speed of nbloss against torch, a NumPy expression and the machine's floor.

``python -m nbloss bench`` (see ``--help``) times every case in each contender's own
worker process: torch and numba both run thread pools, and in one process on a small
machine they fight over the cores. The driver hands the workers one case at a time, in
turn, so that every ratio compares timings taken seconds apart, and it repeats the whole
sweep ``--rounds`` times, each round starting with another contender. It prints each
result as it arrives, then a table of medians and ratios, and writes a JSON file and
(with matplotlib) a PNG plot.

Contenders (``../shared/benchmarking.md``):

- ``nbloss``: the public functions, as a user calls them (arguments checked, results
  allocated).
- ``torch``: ``torch.nn.functional`` on ``torch.from_numpy`` tensors; the gradient alone is
  ``aten.*_loss_backward``, the fused operation is forward + ``backward()``.
- ``numpy``: the ``np.where`` expression a user writes without nbloss.
- ``floor``: the simplest parallel streaming kernel that moves the same bytes (reads input
  and target; writes one new array for 'none', the gradient and the fused operation). No
  loss can be computed faster; nbloss / floor says how close it gets.
- ``compute`` (only when named in ``--contenders``): the loss's arithmetic in one fastmath
  loop with no argument handling, a bound set by the arithmetic where the data sits in
  cache; torch / floor and torch / compute say how much faster than torch any
  implementation of the loss could be.

Operations: ``mean`` (forward, 'mean'), ``none`` (forward, 'none'), ``grad`` (gradient of
the 'mean' loss) and ``fused`` (loss and gradient of the 'mean' loss together).
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

CONTENDERS = ("nbloss", "torch", "numpy", "floor")
# on request only (--contenders): the bound that the loss's arithmetic sets (compute_case)
EXTRA_CONTENDERS = ("compute",)
OPS = ("mean", "none", "grad", "fused")
LOSSES = ("smooth_l1", "huber")
DTYPES = ("float32", "float64")
SIZES = (1_000, 10_000, 100_000, 1_000_000, 10_000_000)

# the loss parameter of every case (beta or delta): the default of both libraries
PARAM = 1.0


def case_data(dtype, n, seed=0):
    """Input and target of a case: differences spread over both branches of the loss."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(n).astype(dtype)
    b = rng.standard_normal(n).astype(dtype)
    return a, b


# -- the contenders: each returns a zero-argument callable that runs one case --------

def nbloss_case(loss, op, a, b):
    import nbloss

    f = {"smooth_l1": nbloss.smooth_l1_loss, "huber": nbloss.huber_loss}[loss]
    g = {"smooth_l1": nbloss.smooth_l1_loss_grad, "huber": nbloss.huber_loss_grad}[loss]
    vg = {"smooth_l1": nbloss.smooth_l1_loss_value_and_grad,
          "huber": nbloss.huber_loss_value_and_grad}[loss]
    return {"mean": lambda: f(a, b, PARAM),
            "none": lambda: f(a, b, PARAM, "none"),
            "grad": lambda: g(a, b, PARAM),
            "fused": lambda: vg(a, b, PARAM)}[op]


def torch_case(loss, op, a, b):
    import torch
    import torch.nn.functional as F

    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    f = {"smooth_l1": F.smooth_l1_loss, "huber": F.huber_loss}[loss]
    backward = {"smooth_l1": torch.ops.aten.smooth_l1_loss_backward,
                "huber": torch.ops.aten.huber_loss_backward}[loss]
    one = torch.ones((), dtype=ta.dtype)
    mean = 1  # at::Reduction::Mean

    def fused():
        x = ta.detach().requires_grad_()
        value = f(x, tb, reduction="mean", **{_param_name(loss): PARAM})
        value.backward()
        return value, x.grad

    return {"mean": lambda: f(ta, tb, reduction="mean", **{_param_name(loss): PARAM}),
            "none": lambda: f(ta, tb, reduction="none", **{_param_name(loss): PARAM}),
            "grad": lambda: backward(one, ta, tb, mean, PARAM),
            "fused": fused}[op]


def _param_name(loss):
    return "beta" if loss == "smooth_l1" else "delta"


def numpy_case(loss, op, a, b):
    p = a.dtype.type(PARAM)
    half = a.dtype.type(0.5)
    n = a.size

    def elementwise(x):
        z = np.abs(x)
        if loss == "smooth_l1":
            return np.where(z < p, half * z * z / p, z - half * p)
        return np.where(z < p, half * z * z, p * (z - half * p))

    def gradient(x):
        g = np.clip(x / p, -1, 1) if loss == "smooth_l1" else np.clip(x, -p, p)
        return g / a.dtype.type(n)

    def fused():
        x = a - b
        return elementwise(x).mean(), gradient(x)

    return {"mean": lambda: elementwise(a - b).mean(),
            "none": lambda: elementwise(a - b),
            "grad": lambda: gradient(a - b),
            "fused": fused}[op]


def floor_case(loss, op, a, b):
    k = _kernels("floor", _floor_functions, fastmath={"reassoc", "nsz"})
    if op == "mean":
        return lambda: k.read2(a.size, a, b)
    if op == "fused":
        return lambda: k.read2_write1_sum(a.size, a, b, np.empty_like(a))
    return lambda: k.read2_write1(a.size, a, b, np.empty_like(a))


def compute_case(loss, op, a, b):
    """The loss's arithmetic and nothing else: ``huber(x) = q (|x| - q/2)`` with
    ``q = min(|x|, p)`` and its gradient ``clip(x, -p, p)``, divided by beta for
    smooth_l1, in one fastmath loop (any reordering, no NaN/inf care), summing in the
    input's dtype, called with no argument handling. No implementation of the loss, exact
    or not, is expected to beat it; torch / compute bounds the speed-up any could reach."""
    k = _kernels("compute", _compute_functions, fastmath=True)
    t = a.dtype.type
    n = a.size
    # every scalar in the input's dtype: a Python float would make numba compute a
    # float32 loss in float64
    p, inv, half = t(PARAM), t(1 / PARAM if loss == "smooth_l1" else 1), t(0.5)
    zero, scale = t(0), t(1 / n)
    if op == "mean":
        return lambda: k.loss_sum(n, a, b, p, inv, half, zero) / n
    if op == "none":
        return lambda: k.loss_each(n, a, b, p, inv, half, np.empty_like(a))
    if op == "grad":
        return lambda: k.grad(n, a, b, p, inv * scale, np.empty_like(a))
    return lambda: k.loss_sum_and_grad(n, a, b, p, inv, half, scale, zero,
                                       np.empty_like(a)) / n


def _floor_functions():
    """Streaming kernels with the memory traffic of each operation and no loss."""
    from numba import prange

    def read2(a, b):
        acc = 0.0
        for i in prange(a.size):
            acc += a[i] + b[i]
        return acc

    def read2_write1(a, b, out):
        for i in prange(a.size):
            out[i] = a[i] - b[i]
        return out

    def read2_write1_sum(a, b, out):
        acc = 0.0
        for i in prange(a.size):
            x = a[i] - b[i]
            out[i] = x
            acc += x
        return acc, out

    return {read2: "reduce", read2_write1: "elementwise", read2_write1_sum: "fused"}


def _compute_functions():
    from numba import prange

    def loss_sum(a, b, p, inv, half, zero):
        acc = zero
        for i in prange(a.size):
            z = abs(a[i] - b[i])
            q = min(z, p)
            acc += q * (z - half * q) * inv
        return acc

    def loss_each(a, b, p, inv, half, out):
        for i in prange(a.size):
            z = abs(a[i] - b[i])
            q = min(z, p)
            out[i] = q * (z - half * q) * inv
        return out

    def grad(a, b, p, factor, out):
        for i in prange(a.size):
            out[i] = max(min(a[i] - b[i], p), -p) * factor
        return out

    def loss_sum_and_grad(a, b, p, inv, half, scale, zero, out):
        acc = zero
        factor = inv * scale
        for i in prange(a.size):
            x = a[i] - b[i]
            z = abs(x)
            q = min(z, p)
            acc += q * (z - half * q) * inv
            out[i] = max(min(x, p), -p) * factor
        return acc

    return {loss_sum: "reduce", loss_each: "elementwise", grad: "elementwise",
            loss_sum_and_grad: "fused"}


_BUILT = {}


def _kernels(name, functions, fastmath):
    """An object whose methods are ``functions()``'s kernels compiled with ``fastmath``,
    each called as ``method(n, *args)`` with ``args[0]`` an array of ``n`` elements:
    serial below nbloss's threshold for that kind of kernel, threaded above, like nbloss.
    Compiled (and cached to disk) on first use."""
    if name not in _BUILT:
        from numba import njit

        from . import _cpu

        limits = {"reduce": _cpu.PARALLEL_MIN_BYTES_SUM, "elementwise": _cpu.PARALLEL_MIN_BYTES,
                  "fused": _cpu.PARALLEL_MIN_BYTES}
        ns = {}
        for fn, kind in functions().items():
            # compiled like nbloss's kernels (the same vector widths), so that a bound
            # differs from nbloss by what the code does, not by how it was compiled
            opts = dict(cache=True, fastmath=fastmath, pipeline_class=_cpu.WideVectorCompiler)
            variants = (njit(**opts)(_cpu._serial_clone(fn)), njit(parallel=True, **opts)(fn))
            ns[fn.__name__] = staticmethod(
                lambda n, *args, _v=variants, _t=limits[kind]:
                    _v[n * args[0].itemsize >= _t](*args))
        _BUILT[name] = type(name, (), ns)
    return _BUILT[name]


CASE_BUILDERS = {"nbloss": nbloss_case, "torch": torch_case, "numpy": numpy_case,
                 "floor": floor_case, "compute": compute_case}


# -- timing ----------------------------------------------------------------------------

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


def worker(contender):
    """Serve cases over stdin/stdout as JSON lines: {"loss", "op", "dtype", "n",
    "min_time"} -> {"median", "min", "samples"} (or {"error"})."""
    builder = CASE_BUILDERS[contender]
    data = {}
    for line in sys.stdin:
        req = json.loads(line)
        if req.get("cmd") == "versions":
            print(json.dumps(_versions(contender)), flush=True)
            continue
        key = (req["dtype"], req["n"])
        if key not in data:
            data.clear()  # one size at a time: 1e7 float64 inputs are 160 MB
            data[key] = case_data(np.dtype(req["dtype"]), req["n"])
        try:
            fn = builder(req["loss"], req["op"], *data[key])
            median, best, count = time_call(fn, req["min_time"])
            reply = {"median": median, "min": best, "samples": count}
        except Exception as exc:  # reported, not fatal: the other cases still run
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        print(json.dumps(reply), flush=True)


def _versions(contender):
    versions = {"numpy": np.__version__}
    if contender in ("nbloss", "floor"):
        import numba

        import nbloss
        from . import _cpu

        versions.update(nbloss=nbloss.__version__, numba=numba.__version__,
                        numba_threads=numba.get_num_threads())
        _cpu.FAMILIES[0].parallel.forward_sum(np.zeros(8), np.zeros(8), None, 1.0, 0.5)
        versions["numba_threading_layer"] = numba.threading_layer()
    if contender == "torch":
        import torch

        versions.update(torch=torch.__version__, torch_threads=torch.get_num_threads(),
                        torch_cpu_capability=torch.backends.cpu.get_cpu_capability())
    return versions


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


# -- the sweep -------------------------------------------------------------------------

def available_contenders(requested):
    """The requested contenders that can run here, and a note for each that cannot."""
    import importlib.util

    chosen, notes = [], []
    for c in requested:
        if c == "torch" and importlib.util.find_spec("torch") is None:
            notes.append("torch is not installed: skipped (pip install torch to compare)")
            continue
        chosen.append(c)
    return chosen, notes


def run_sweep(contenders, losses, dtypes, sizes, ops, rounds, min_time, log=print,
              reuse_memory=False):
    """Time every case; returns the list of result records (medians over rounds)."""
    workers = {c: Worker(c, reuse_memory) for c in contenders}
    versions = {}
    try:
        for c, w in workers.items():
            versions.update(w.ask({"cmd": "versions"}))
        cases = [(loss, dtype, n, op) for dtype in dtypes for n in sizes
                 for loss in losses for op in ops]
        samples = {}
        total = len(cases) * rounds
        done = 0
        started = time.perf_counter()
        for r in range(rounds):
            # a different contender first in each round: the first to run a large case
            # after a smaller one was seen to pay for the system's page handling (10x,
            # for a whole case), and a median over rounds then drops that round
            k = r % len(contenders)
            order = list(contenders[k:]) + list(contenders[:k])
            for loss, dtype, n, op in cases:
                parts = []
                for c in order:
                    # let the previous worker's spinning threads go to sleep first
                    time.sleep(0.005)
                    reply = workers[c].ask({"loss": loss, "op": op, "dtype": dtype, "n": n,
                                            "min_time": min_time})
                    samples.setdefault((loss, dtype, n, op, c), []).append(reply)
                    parts.append(f"{c} {_fmt_time(reply.get('median'))}")
                done += 1
                eta = (time.perf_counter() - started) / done * (total - done)
                log(f"[{done:>3}/{total}] round {r + 1}/{rounds}  {loss:<9} {dtype:<7} "
                    f"{op:<5} N={_fmt_n(n):<4} " + "  ".join(parts) + f"   (about {eta:.0f} s left)")
    finally:
        for w in workers.values():
            w.close()
    records = []
    for (loss, dtype, n, op, c), replies in samples.items():
        good = [x for x in replies if "median" in x]
        rec = {"loss": loss, "dtype": dtype, "n": n, "op": op, "contender": c}
        if good:
            rec.update(median_s=statistics.median(x["median"] for x in good),
                       min_s=min(x["min"] for x in good),
                       samples=sum(x["samples"] for x in good), rounds=len(good))
        else:
            rec["error"] = replies[0].get("error", "no result")
        records.append(rec)
    return records, versions


# -- cold start and memory ---------------------------------------------------------------

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
from nbloss._cpu import block_length
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
out["block_sums_bytes"] = 8 * -(-n // block_length(a.dtype))
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


# -- reporting -------------------------------------------------------------------------

def _fmt_time(seconds):
    if seconds is None:
        return "-"
    for unit, scale in (("s", 1), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _fmt_n(n):
    exp = len(str(n)) - 1
    return f"1e{exp}" if n == 10 ** exp else str(n)


def _lookup(records):
    return {(r["loss"], r["dtype"], r["n"], r["op"], r["contender"]): r.get("median_s")
            for r in records}


def ratio_rows(records):
    """One row per (loss, dtype, op, n): each contender's median and the ratios
    torch/nbloss, numpy/nbloss and nbloss/floor."""
    t = _lookup(records)
    keys = sorted({(r["loss"], r["dtype"], r["op"], r["n"]) for r in records},
                  key=lambda k: (LOSSES.index(k[0]), DTYPES.index(k[1]), OPS.index(k[2]), k[3]))
    rows = []
    for loss, dtype, op, n in keys:
        row = {"loss": loss, "dtype": dtype, "op": op, "n": n}
        for c in CONTENDERS + EXTRA_CONTENDERS:
            row[c] = t.get((loss, dtype, n, op, c))
        nb, torch = row["nbloss"], row["torch"]
        row["torch_speedup"] = torch / nb if nb and torch else None
        row["numpy_speedup"] = row["numpy"] / nb if nb and row["numpy"] else None
        row["vs_floor"] = nb / row["floor"] if nb and row["floor"] else None
        # the most any loss kernel could gain on torch: bounded by the memory traffic
        # (floor) and by the arithmetic (compute)
        row["torch_over_floor"] = torch / row["floor"] if torch and row["floor"] else None
        row["torch_over_compute"] = torch / row["compute"] if torch and row["compute"] else None
        rows.append(row)
    return rows


def markdown_table(rows):
    def ratio(x):
        return "-" if x is None else f"{x:.2f}"

    # the bounds' columns only in a run that measured the compute bound
    bounds = any(r["compute"] for r in rows)
    head = ["loss", "dtype", "op", "N", "nbloss", "torch", "numpy", "floor"]
    head += ["compute"] if bounds else []
    head += ["torch / nbloss", "numpy / nbloss", "nbloss / floor"]
    head += ["torch / floor", "torch / compute"] if bounds else []
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["loss"], r["dtype"], r["op"], _fmt_n(r["n"])]
        cells += [_fmt_time(r[c]) for c in CONTENDERS + (EXTRA_CONTENDERS if bounds else ())]
        cells += [ratio(r[k]) for k in ("torch_speedup", "numpy_speedup", "vs_floor")]
        cells += [ratio(r[k]) for k in ("torch_over_floor", "torch_over_compute")] if bounds else []
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(records, path, title):
    """Throughput (elements per second) vs N: one panel per (operation, dtype), one
    colour per contender, solid smooth_l1, dashed huber."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dtypes = [d for d in DTYPES if any(r["dtype"] == d for r in records)]
    ops = [o for o in OPS if any(r["op"] == o for r in records)]
    colors = {"nbloss": "tab:blue", "torch": "tab:red", "numpy": "tab:green", "floor": "black",
              "compute": "tab:purple"}
    fig, axes = plt.subplots(len(ops), len(dtypes), figsize=(5.5 * len(dtypes), 3.2 * len(ops)),
                             squeeze=False, sharex=True)
    for i, op in enumerate(ops):
        for j, dtype in enumerate(dtypes):
            ax = axes[i][j]
            for c in CONTENDERS + EXTRA_CONTENDERS:
                for loss, style in (("smooth_l1", "-"), ("huber", "--")):
                    pts = sorted((r["n"], r["n"] / r["median_s"]) for r in records
                                 if (r["op"], r["dtype"], r["contender"], r["loss"]) == (op, dtype, c, loss)
                                 and r.get("median_s"))
                    if pts:
                        ax.plot(*zip(*pts), style, color=colors[c], marker="o", markersize=3,
                                label=f"{c} {loss}" if (i, j) == (0, 0) else None)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{op}, {dtype}", fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
            if j == 0:
                ax.set_ylabel("elements / s")
            if i == len(ops) - 1:
                ax.set_xlabel("N")
    fig.legend(loc="upper center", ncol=4, fontsize=8, bbox_to_anchor=(0.5, 1.0))
    fig.suptitle(title, y=1.03, fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def machine_facts():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": model, "logical_cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version()}


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m nbloss bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_arguments(parser):
    parser.add_argument("--sizes", type=lambda s: [int(float(x)) for x in s.split(",")],
                        default=list(SIZES), help="comma-separated N (default 1e3,...,1e7)")
    parser.add_argument("--dtypes", type=lambda s: s.split(","), default=list(DTYPES))
    parser.add_argument("--losses", type=lambda s: s.split(","), default=list(LOSSES))
    parser.add_argument("--ops", type=lambda s: s.split(","), default=list(OPS))
    parser.add_argument("--contenders", type=lambda s: s.split(","), default=list(CONTENDERS),
                        help="comma-separated, from " + ",".join(CONTENDERS + EXTRA_CONTENDERS)
                        + " (default: all but compute)")
    parser.add_argument("--rounds", type=int, default=1, help="sweeps, each starting with another contender")
    parser.add_argument("--min-time", type=float, default=0.05,
                        help="seconds of timed calls per case and round")
    parser.add_argument("--out", default="nbloss-bench",
                        help="folder for results.json, results.md and results.png")
    parser.add_argument("--reuse-memory", action="store_true",
                        help="the workers' malloc keeps freed memory for the next allocation "
                        "instead of mapping fresh pages for each large array (glibc's default)")
    parser.add_argument("--no-extras", action="store_true",
                        help="skip the cold-start and memory measurements")
    parser.add_argument("--worker", help=argparse.SUPPRESS)


def run(args):
    if args.worker:
        worker(args.worker)
        return 0
    for name, values, allowed in (("--ops", args.ops, OPS), ("--losses", args.losses, LOSSES),
                                  ("--dtypes", args.dtypes, DTYPES),
                                  ("--contenders", args.contenders, CONTENDERS + EXTRA_CONTENDERS)):
        bad = [x for x in values if x not in allowed]
        if bad:
            raise SystemExit(f"{name}: unknown {', '.join(bad)} (choose from {', '.join(allowed)})")
    contenders, notes = available_contenders(args.contenders)
    for note in notes:
        print(f"note: {note}")
    machine = machine_facts()
    print(f"nbloss bench on {machine['cpu']} ({machine['logical_cpus']} logical CPUs); "
          f"each contender in its own process, {args.rounds} round(s)")
    records, versions = run_sweep(contenders, args.losses, args.dtypes, args.sizes, args.ops,
                                  args.rounds, args.min_time, reuse_memory=args.reuse_memory)
    rows = ratio_rows(records)
    extras = {}
    if not args.no_extras:
        print("cold start (fresh process to first fused loss+gradient) ...", flush=True)
        extras["cold_start"] = cold_start(contenders)
        print("peak extra memory of a 1e7 float32 'mean'/'sum' forward ...", flush=True)
        extras["memory"] = peak_memory()
    os.makedirs(args.out, exist_ok=True)
    date = datetime.date.today().isoformat()
    command = "python -m nbloss bench " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else sys.argv[1:])
    allocator = "glibc's default"
    if args.reuse_memory:
        allocator = "freed memory reused (" + " ".join(f"{k}={v}" for k, v in REUSE_MEMORY_ENV.items()) + ")"
    report = {"date": date, "command": command.strip(), "machine": machine, "versions": versions,
              "method": "medians over calls (grouped into samples of >= 50 us) and over rounds; "
                        "each contender in its own worker process, cases alternated between "
                        "workers, each round starting with another contender",
              "allocator": allocator, "param": PARAM, "results": records, "notes": notes, **extras}
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(report, f, indent=1)
    md = summary_markdown(report, rows)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md)
    print()
    print(md)
    try:
        plot(records, os.path.join(args.out, "results.png"),
             f"nbloss bench, {date}, {machine['cpu']} ({machine['logical_cpus']} CPUs)")
        print(f"\nwrote {args.out}/results.json, results.md and results.png")
    except ImportError:
        print(f"\nwrote {args.out}/results.json and results.md "
              "(pip install matplotlib, or nbloss[plot], for the plot)")
    return 0


def summary_markdown(report, rows):
    v = report["versions"]
    lines = [f"Measured {report['date']} with `{report['command']}` on {report['machine']['cpu']} "
             f"({report['machine']['logical_cpus']} logical CPUs), Python {report['machine']['python']}, "
             + ", ".join(f"{k} {v[k]}" for k in ("nbloss", "numba", "numpy", "torch") if k in v)
             + (f"; numba threading layer {v['numba_threading_layer']}, {v['numba_threads']} threads"
                if "numba_threads" in v else "")
             + f". Loss parameter (beta, delta) = {report['param']}; medians"
             + ("; the workers' malloc reuses freed memory (--reuse-memory: no page faults per call)"
                if report.get("allocator", "").startswith("freed") else "")
             + "; ratios above 1 mean "
             "nbloss is faster, except nbloss / floor (1 is the floor).", ""]
    lines.append(markdown_table(rows))
    cold = report.get("cold_start")
    if cold:
        lines += ["", "Cold start, a fresh process to the first fused loss and gradient (median of "
                  f"{next(iter(cold.values()))['runs']}): "
                  + ", ".join(f"{c} {x['median_s']:.2f} s" for c, x in cold.items())
                  + " (nbloss on a warm disk cache; torch: import, loss, backward)."]
    mem = report.get("memory")
    if mem:
        lines += ["", f"Extra memory of a 1e7 float32 forward (input {mem['input_bytes'] / 1e6:.0f} MB): "
                  + "; ".join(f"'{r}' tracemalloc peak {mem[r]['tracemalloc_peak_bytes']} B, "
                              f"peak RSS growth {mem[r]['maxrss_growth_bytes']} B, "
                              f"{mem[r]['numba_allocations']} numba allocation(s)"
                              for r in ("mean", "sum"))
                  + f" (the block sums are {mem['block_sums_bytes']} B)."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
