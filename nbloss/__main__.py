"""``python -m nbloss demo | bench | info``"""

import argparse
import sys

import numpy as np


def robust_line_data(n=200, outlier_fraction=0.2, seed=0):
    """Points on y = 2.5 x - 1 with Gaussian noise, a fraction of them replaced by gross
    outliers far above the line. Returns (x, y, is_outlier, (slope, intercept))."""
    rng = np.random.default_rng(seed)
    truth = (2.5, -1.0)
    x = rng.uniform(-3, 3, n)
    y = truth[0] * x + truth[1] + rng.normal(0, 0.3, n)
    outlier = rng.random(n) < outlier_fraction
    y[outlier] += rng.uniform(8, 20, outlier.sum())
    return x, y, outlier, truth


def fit_robust_line(x, y, delta=1.0):
    """Minimise mean huber(A w - y; delta) over w = (slope, intercept) with L-BFGS-B,
    using nbloss's fused loss and gradient: d/dw = A^T (d loss / d residual)."""
    from scipy.optimize import minimize

    from . import huber_loss_value_and_grad

    design = np.column_stack([x, np.ones_like(x)])

    def loss_and_grad(w):
        loss, grad_pred = huber_loss_value_and_grad(design @ w, y, delta)
        return float(loss), design.T @ grad_pred

    result = minimize(loss_and_grad, np.zeros(2), jac=True, method="L-BFGS-B",
                      options={"gtol": 1e-10, "ftol": 1e-15})
    if not result.success:  # pragma: no cover - the demo data is well posed
        raise RuntimeError(f"robust fit did not converge: {result.message}")
    return result.x, result


def demo(args):
    x, y, outlier, truth = robust_line_data(args.n, args.outliers, args.seed)
    ols = np.linalg.lstsq(np.column_stack([x, np.ones_like(x)]), y, rcond=None)[0]
    robust, result = fit_robust_line(x, y, args.delta)
    print(f"Robust straight-line fit: {args.n} points, {outlier.sum()} gross outliers "
          f"({outlier.mean():.0%}), Huber delta = {args.delta}")
    print(f"scipy.optimize.minimize(L-BFGS-B, jac=True) on nbloss.huber_loss_value_and_grad: "
          f"{result.nit} iterations, {result.nfev} loss+gradient evaluations")
    print()
    print(f"{'':24}{'slope':>10}{'intercept':>12}{'|error|':>10}")
    for name, (slope, intercept) in (("true line", truth), ("ordinary least squares", ols),
                                     ("nbloss Huber (robust)", robust)):
        err = np.hypot(slope - truth[0], intercept - truth[1])
        print(f"{name:<24}{slope:>10.4f}{intercept:>12.4f}{err:>10.4f}")
    if args.plot:
        plot_fit(args.plot, x, y, outlier, truth, ols, robust, args.delta)
        print(f"\nwrote {args.plot}")
    return 0


def plot_fit(path, x, y, outlier, truth, ols, robust, delta):
    """A PNG of the points, the outliers, the true line and the two fits."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install matplotlib (or nbloss[plot])") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(x[~outlier], y[~outlier], s=10, color="tab:blue", alpha=0.6, label="data")
    ax.scatter(x[outlier], y[outlier], s=16, color="tab:red", marker="x", label="gross outliers")
    xs = np.array([x.min(), x.max()])
    for (slope, intercept), style, label in (
            (truth, dict(color="black", ls=":"), "true line"),
            (ols, dict(color="tab:orange"), "ordinary least squares"),
            (robust, dict(color="tab:green", lw=2), f"nbloss Huber (delta = {delta:g})")):
        ax.plot(xs, slope * xs + intercept, label=label, **style)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("Robust straight-line fit: scipy L-BFGS-B on nbloss.huber_loss_value_and_grad",
                 fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def info(args):
    import numba

    import nbloss
    from . import _cpu

    print(f"nbloss {nbloss.__version__}, numba {numba.__version__}, numpy {np.__version__}")
    print(f"threads: {numba.get_num_threads()} (NUMBA_NUM_THREADS={numba.config.NUMBA_NUM_THREADS}), "
          f"serial below {_cpu.PARALLEL_MIN_BYTES} bytes per operand "
          f"({_cpu.PARALLEL_MIN_BYTES_SUM} for a reduction alone), "
          f"reduction block {_cpu.BLOCK_BYTES} bytes")
    n = _cpu.PARALLEL_MIN_BYTES_SUM // 8
    nbloss.smooth_l1_loss(np.zeros(n), np.zeros(n))
    print(f"threading layer: {numba.threading_layer()}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m nbloss", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="fit a robust straight line with scipy and nbloss's Huber loss")
    p.add_argument("--n", type=int, default=200, help="number of points")
    p.add_argument("--outliers", type=float, default=0.2, help="fraction of gross outliers")
    p.add_argument("--delta", type=float, default=1.0, help="Huber delta")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--plot", metavar="FILE", help="also write a PNG of the data and the fits")
    p.set_defaults(run=demo)
    p = sub.add_parser("bench", help="time nbloss against torch, NumPy and the memory floor "
                       "on this machine; writes a table, JSON and a plot")
    from . import bench
    bench.add_arguments(p)
    p.set_defaults(run=bench.run)
    p = sub.add_parser("info", help="versions, threads and the threading layer")
    p.set_defaults(run=info)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
