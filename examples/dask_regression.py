"""Robust linear regression over a row-sharded design matrix on a Dask cluster.

``A`` (rows split into chunks) and ``y`` live on the cluster's workers. Each step of
``scipy.optimize.minimize(..., jac=True)`` on the client asks the cluster for the Huber
loss and its gradient ``A.T @ g`` in one graph: every chunk's residuals, loss partial and
gradient come from one nbloss task, and only d + 1 numbers per chunk travel back.

    python examples/dask_regression.py              # 2 worker processes on 127.0.0.1
    python examples/dask_regression.py --rows 4000000 --repeats 3
"""

import argparse
import pathlib
import sys
import time

import dask
import dask.array as da
import numpy as np
from scipy.optimize import minimize

import nbloss

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from robust_regression import make_data  # noqa: E402  (the same data as the in-memory example)


def objective(A, y, delta):
    """``fun(w) -> (loss, A.T @ d loss / d pred)``; A and y NumPy or Dask arrays alike."""
    def fun(w):
        loss, grad_pred = nbloss.huber_loss_value_and_grad(A @ w, y, delta, "sum")
        loss, grad_w = dask.compute(loss, A.T @ grad_pred)  # one graph: one pass per chunk
        return float(loss), np.asarray(grad_w)
    return fun


def fit(A, y, delta=1.0, gtol=1e-9):
    result = minimize(objective(A, y, delta), np.zeros(A.shape[1]), jac=True, method="L-BFGS-B",
                      options={"gtol": gtol, "ftol": 1e-15, "maxiter": 1000})
    return result.x, result


def local_cluster(workers=2):
    """A cluster of worker processes bound to 127.0.0.1 only, one thread each, no dashboard."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    return cluster, Client(cluster)


def shard(A, y, client, chunks):
    """A and y split by rows into ``chunks`` pieces, sent once to the workers' memory
    (as futures: a graph that embedded the arrays would ship them again with every step)."""
    rows = -(-A.shape[0] // chunks)
    starts = range(0, A.shape[0], rows)
    pieces_A = client.scatter([A[i:i + rows] for i in starts])
    pieces_y = client.scatter([y[i:i + rows] for i in starts])
    A_d = da.concatenate([da.from_delayed(f, shape=(min(rows, A.shape[0] - i), A.shape[1]),
                                          dtype=A.dtype) for f, i in zip(pieces_A, starts)])
    y_d = da.concatenate([da.from_delayed(f, shape=(min(rows, y.shape[0] - i),), dtype=y.dtype)
                          for f, i in zip(pieces_y, starts)])
    return A_d, y_d


def main(rows=200_000, delta=1.0, workers=2, chunks=8, repeats=1, seed=0, out=sys.stdout):
    """Fit in memory and on a local cluster; print both and the times. Returns
    (w_memory, w_cluster, timings in seconds)."""
    A, y, w_true = make_data(rows, n_features=8, outlier_fraction=0.1, seed=seed)
    timings = {}
    t = time.perf_counter()
    for _ in range(repeats):
        w_memory, r_memory = fit(A, y, delta)
    timings["memory"] = (time.perf_counter() - t) / repeats
    cluster, client = local_cluster(workers)
    try:
        A_d, y_d = shard(A, y, client, chunks)
        t = time.perf_counter()
        for _ in range(repeats):
            w_cluster, r_cluster = fit(A_d, y_d, delta)
        timings["cluster"] = (time.perf_counter() - t) / repeats
    finally:
        client.close()
        cluster.close()
    print(f"{rows} rows x {A.shape[1]} columns, delta={delta}", file=out)
    print(f"in memory:  {timings['memory']:.3f} s, {r_memory.nfev} evaluations", file=out)
    print(f"{workers} workers: {timings['cluster']:.3f} s, {r_cluster.nfev} evaluations "
          f"({chunks} chunks)", file=out)
    print(f"max |w_memory - w_cluster| = {np.max(np.abs(w_memory - w_cluster)):.2e}, "
          f"max |w_memory - w_true| = {np.max(np.abs(w_memory - w_true)):.2e}", file=out)
    return w_memory, w_cluster, timings


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    main(rows=args.rows, workers=args.workers, chunks=args.chunks, repeats=args.repeats)
