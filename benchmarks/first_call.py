"""How long a new process waits for its first results: with an empty numba cache (every
kernel variant compiles) and with the cache that run filled (every variant loads).

    python benchmarks/first_call.py --out benchmarks/results/cpu-2core/first-call.md

Each round runs two fresh processes on a new, empty ``NUMBA_CACHE_DIR``: the first
compiles, the second finds the cache warm. Each process times, from its start, the
import of nbloss and its first fused float32 call (the "first result"), then each further
variant on its own: another operation, dtype, parameter, target kind or size, each
compiling (cold) or loading (warm) kernels that the calls before it did not. Prints and
writes a Markdown table of the median and range over the rounds.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np

from calls import cpu_model, write_table

# (label, statement): run in this order in each process, each timed on its own; ``a`` is a
# float32 array of 1000 elements, ``b`` its target, ``x`` and ``y`` float64 ones, ``big``
# and ``big_b`` float32 ones large enough for the threaded kernels, ``rows`` and ``col``
# a (10, 100) input and a (10, 1) target
STEPS = (
    ("import nbloss", "import nbloss"),
    ("first fused call (float32)", "nbloss.huber_loss_value_and_grad(a, b)"),
    ("'none' loss, beta 0.5", "nbloss.smooth_l1_loss(a, b, 0.5, 'none')"),
    ("gradient, float64", "nbloss.huber_loss_grad(x, y)"),
    ("'mean', number target", "nbloss.huber_loss(a, 0.0)"),
    ("'mean', weighted", "nbloss.huber_loss(a, b, weight=b)"),
    ("'mean', (rows, 1) target", "nbloss.huber_loss(rows, col)"),
    ("fused, threaded size", "nbloss.huber_loss_value_and_grad(big, big_b)"),
)

CHILD = """
import json, sys, time, warnings
start = time.perf_counter()
import numpy as np
warnings.simplefilter("ignore")
a = np.linspace(-3, 3, 1000, dtype=np.float32); b = np.zeros_like(a)
x = a.astype(np.float64); y = b.astype(np.float64)
big = np.linspace(-3, 3, 200_000, dtype=np.float32); big_b = np.zeros_like(big)
rows = a.reshape(10, 100); col = np.zeros((10, 1), np.float32)
times = []
for label, statement in json.loads(sys.argv[1]):
    t = time.perf_counter()
    exec(statement)
    times.append(time.perf_counter() - t)
    if len(times) == 2:  # the first fused call: the process's first result
        first = time.perf_counter() - start
print(json.dumps([first] + times))
"""


def run_process(cache_dir):
    """Seconds of each step in a fresh process on ``cache_dir``, and the time from the
    process's start to its first result."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(STEPS)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def seconds(t):
    return f"{t:.2f} s" if t >= 0.1 else f"{t * 1e3:.1f} ms"


def summary(values):
    return f"{seconds(statistics.median(values))} ({seconds(min(values))}-{seconds(max(values))})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3,
                        help="cold/warm pairs of processes (default: %(default)s)")
    parser.add_argument("--out", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    import numba

    command = " ".join(["python benchmarks/first_call.py", *(sys.argv[1:] if argv is None else argv)])
    # numba's first load from its cache imports scipy.linalg when SciPy is installed
    scipy_note = "SciPy installed" if importlib.util.find_spec("scipy") else "SciPy not installed"
    cold, warm = [], []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as cache_dir:
            cold.append(run_process(cache_dir))
            warm.append(run_process(cache_dir))
        print(f"round {r + 1}/{args.rounds}: first result {cold[-1][0]:.2f} s cold, "
              f"{warm[-1][0]:.2f} s warm", flush=True)
    lines = [f"`{command}`",
             f"on {cpu_model()}, Python {sys.version.split()[0]}, numba {numba.__version__}, "
             f"numpy {np.__version__}, {scipy_note}; median (range) over {args.rounds} "
             "rounds, each a fresh process on an empty cache (cold) and one on the cache it "
             "filled (warm)", "",
             "| step | cold cache | warm cache |", "|---|---|---|",
             f"| process start to first result | {summary([c[0] for c in cold])} | "
             f"{summary([w[0] for w in warm])} |"]
    for k, (label, _) in enumerate(STEPS, start=1):
        lines.append(f"| {label} | {summary([c[k] for c in cold])} | "
                     f"{summary([w[k] for w in warm])} |")
    print("\n".join(lines))
    write_table(lines, args.out)


if __name__ == "__main__":
    main()
