"""nbloss CUDA vs torch CUDA vs CuPy expressions vs a device-to-device copy of the same
bytes, on one GPU: forward 'mean' and fused value-and-gradient (torch: forward +
backward), N from 1e4 to 1e8, float32 and float64. Two more nbloss rows time broadcast
targets read in place: ``0.0`` (a Python number: one value, stride 0) and a
``(rows, 1)`` column against ``(rows, 100)`` (a 2-D view read by index arithmetic);
the table gives their time over the same call with a full target.

Run by ``bash benchmarks/gpu.sh bench`` on a GPU machine (numba-cuda, torch and CuPy
installed; nothing is downloaded). Times are CUDA-event medians of ``--repeats`` runs of
``--inner`` back-to-back calls each; a contender that is not installed is skipped with a
note. Writes results.json, results.md and results.png into ``--out``.
"""

import argparse
import json
import math
import platform
import statistics
import sys
import time
import warnings

import numpy as np
from numba import cuda

import nbloss

SIZES = [10**4, 10**5, 10**6, 10**7, 10**8]
OPS = ("mean", "fused")


def bytes_moved(op, n, itemsize):
    """Bytes the op must move at least: read input and target, write the gradient."""
    return (2 if op == "mean" else 3) * n * itemsize


def timer(fn, inner, repeats):
    """Median seconds per call of ``fn`` from CUDA events around ``inner`` calls."""
    fn()
    cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, stop = cuda.event(), cuda.event()
        start.record()
        for _ in range(inner):
            fn()
        stop.record()
        stop.synchronize()
        times.append(start.elapsed_time(stop) / 1e3 / inner)  # milliseconds
    return statistics.median(times)


def contenders(op, a, b, dtype):
    """name -> zero-argument callable running ``op`` once on the device."""
    out = {}
    da_, db_ = cuda.to_device(a), cuda.to_device(b)
    # broadcast targets: a number, and a column against rows of 100 (warned as in torch);
    # views of the same input and gradient buffer, so nothing of N more is allocated
    column = cuda.to_device(np.ascontiguousarray(b.reshape(-1, 100)[:, :1]))
    targets = {"nbloss": (da_, db_), "nbloss 0.0": (da_, 0.0),
               "nbloss (rows, 1)": (da_.reshape(-1, 100), column)}
    grad = cuda.device_array_like(da_) if op != "mean" else None
    for name, (x, y) in targets.items():
        if op == "mean":
            out[name] = lambda x=x, y=y: nbloss.huber_loss(x, y, 1.0)
        else:
            out[name] = lambda x=x, y=y, g=grad.reshape(x.shape): (
                nbloss.huber_loss_value_and_grad(x, y, 1.0, out=g))
    try:
        import torch
        if torch.cuda.is_available():
            ta = torch.as_tensor(a, device="cuda")
            tb = torch.as_tensor(b, device="cuda")
            F = torch.nn.functional
            if op == "mean":
                out["torch"] = lambda: F.huber_loss(ta, tb, delta=1.0)
            else:
                tg = ta.clone().requires_grad_()

                def torch_fused():
                    tg.grad = None
                    F.huber_loss(tg, tb, delta=1.0).backward()
                out["torch"] = torch_fused
    except ImportError:
        pass
    try:
        import cupy as cp
        ca, cb = cp.asarray(da_), cp.asarray(db_)
        n = ca.size

        def cupy_op():
            x = ca - cb
            z = cp.abs(x)
            loss = cp.where(z < 1, 0.5 * z * z, z - 0.5).mean()
            if op == "fused":
                return loss, cp.clip(x, -1, 1) / n
            return loss
        out["cupy"] = cupy_op
        # the floor: a device-to-device copy moving the same bytes (read + write)
        half = bytes_moved(op, n, ca.itemsize) // 2 // ca.itemsize
        src, dst = cp.empty(half, ca.dtype), cp.empty(half, ca.dtype)
        out["copy"] = lambda: cp.copyto(dst, src)
    except ImportError:
        pass
    return out


def run(sizes, dtypes, inner, repeats, log=sys.stdout):
    warnings.filterwarnings("ignore", "Using a target size", UserWarning)  # the (rows, 1) rows
    records = []
    for dtype in dtypes:
        for n in sizes:
            rng = np.random.default_rng(0)
            a = (rng.standard_normal(n) * 2).astype(dtype)
            b = rng.standard_normal(n).astype(dtype)
            for op in OPS:
                k = max(1, min(inner, int(2e9 // max(1, bytes_moved(op, n, a.itemsize)))))
                for name, fn in contenders(op, a, b, dtype).items():
                    t = timer(fn, k, repeats)
                    gbs = bytes_moved(op, n, a.itemsize) / t / 1e9
                    records.append(dict(contender=name, op=op, dtype=np.dtype(dtype).name, n=n,
                                        seconds=t, gb_per_s=gbs))
                    print(f"{np.dtype(dtype).name:8} n={n:>10} {op:6} {name:16} "
                          f"{t * 1e6:10.1f} us {gbs:8.1f} GB/s", file=log, flush=True)
    return records


def table(records):
    rows = ["| dtype | N | op | nbloss | torch | cupy | copy | torch / nbloss | nbloss % of copy "
            "bandwidth | 0.0 target / nbloss | (rows, 1) target / nbloss |",
            "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    keys = sorted({(r["dtype"], r["n"], r["op"]) for r in records})
    for dtype, n, op in keys:
        t = {r["contender"]: r["seconds"] for r in records
             if (r["dtype"], r["n"], r["op"]) == (dtype, n, op)}
        cell = lambda c: f"{t[c] * 1e6:.1f} us" if c in t else "-"  # noqa: E731
        ratio = f"{t['torch'] / t['nbloss']:.2f}x" if "torch" in t else "-"
        share = f"{100 * t['copy'] / t['nbloss']:.0f}%" if "copy" in t else "-"
        broadcast = " | ".join(f"{t[c] / t['nbloss']:.2f}" if c in t else "-"
                               for c in ("nbloss 0.0", "nbloss (rows, 1)"))
        rows.append(f"| {dtype} | {n:.0e} | {op} | {cell('nbloss')} | {cell('torch')} | "
                    f"{cell('cupy')} | {cell('copy')} | {ratio} | {share} | {broadcast} |")
    return "\n".join(rows) + "\n"


def plot(records, path, title):
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    panels = sorted({(r["dtype"], r["op"]) for r in records})
    fig, axes = plt.subplots(1, len(panels), figsize=(4.5 * len(panels), 4), squeeze=False)
    for ax, (dtype, op) in zip(axes[0], panels):
        for name in ("nbloss", "torch", "cupy", "copy"):
            pts = sorted((r["n"], r["gb_per_s"]) for r in records
                         if (r["dtype"], r["op"], r["contender"]) == (dtype, op, name))
            if pts:
                ax.plot(*zip(*pts), marker="o", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("N")
        ax.set_ylabel("GB/s moved (higher is better)")
        ax.set_title(f"{op}, {dtype}")
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--sizes", type=float, nargs="*", default=SIZES)
    parser.add_argument("--dtypes", nargs="*", default=["float32", "float64"])
    parser.add_argument("--inner", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    import pathlib
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = getattr(cuda.get_current_device(), "name", "CUDA simulator")
    name = name.decode() if isinstance(name, bytes) else str(name)
    records = run([int(n) for n in args.sizes], [np.dtype(d) for d in args.dtypes],
                  args.inner, args.repeats)
    # small-N launch overhead: the time of an nbloss call on 1e4 elements is almost all of it
    meta = dict(gpu=name, date=time.strftime("%Y-%m-%d"), python=platform.python_version(),
                nbloss=nbloss.__version__, numba=__import__("numba").__version__,
                launch_overhead_us=min((r["seconds"] * 1e6 for r in records
                                        if r["contender"] == "nbloss" and r["n"] == min(args.sizes)),
                                       default=math.nan))
    (out / "results.json").write_text(json.dumps(dict(meta=meta, records=records), indent=1))
    header = (f"GPU: {name}; {meta['date']}; numba {meta['numba']}; huber, delta = 1; "
              f"`bash benchmarks/gpu.sh bench`\n\n")
    (out / "results.md").write_text(header + table(records))
    plot(records, out / "results.png", f"nbloss CUDA on {name}")
    print(header + table(records))


if __name__ == "__main__":
    main()
