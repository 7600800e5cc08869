"""The command line, ``python -m nbloss demo | bench | warmup | info`` (see ``--help``):
the robust line fit of the demo and its plot, the facts of ``info``, and the parser of
all four (``bench`` lives in ``bench/``, ``warmup`` in ``_warmup``)."""

import argparse
import importlib.util
import sys

import numpy as np

from ._cli import check_plot_file

# a straight line has two parameters: fewer points leave the fit undetermined
MIN_POINTS = 2


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
    """A figure of the points, the outliers, the true line and the two fits, each line
    drawn so that none hides another: the wide pale robust fit under the dashed true line."""
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install matplotlib (or nbloss[plot])") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    ax.scatter(x[~outlier], y[~outlier], s=12, color="tab:blue", alpha=0.5, zorder=1,
               label=f"data ({(~outlier).sum()} points)")
    ax.scatter(x[outlier], y[outlier], s=22, color="tab:red", marker="x", zorder=1,
               label=f"gross outliers ({outlier.sum()})")
    xs = np.array([x.min(), x.max()])
    lines = ((ols, dict(color="tab:orange", lw=2, zorder=2), "ordinary least squares"),
             (robust, dict(color="tab:green", lw=6, alpha=0.45, zorder=3, solid_capstyle="butt"),
              f"nbloss Huber fit (delta = {delta:g})"),
             (truth, dict(color="black", lw=1.6, ls=(0, (5, 3)), zorder=4), "true line"))
    for (slope, intercept), style, label in lines:
        ax.plot(xs, slope * xs + intercept, **style,
                label=f"{label}: y = {slope:.3f} x {'-' if intercept < 0 else '+'} {abs(intercept):.3f}")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("Straight-line fit to data with gross outliers: least squares against nbloss's "
                 "Huber loss\n(scipy L-BFGS-B on nbloss.huber_loss_value_and_grad; the true line, "
                 "dashed, lies over the wide green fit)", fontsize=9)
    # the outliers lie above the line: the lower right corner is empty
    ax.legend(fontsize=8, loc="lower right", framealpha=0.9)
    ax.grid(True, alpha=0.25)
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


DESCRIPTION = """\
nbloss's command line: a worked example of the Huber loss in an optimiser (demo), a
benchmark against torch and NumPy on this machine (bench), the kernels compiled into
numba's cache ahead of use (warmup), and the versions and threads of this installation
(info). 'python -m nbloss COMMAND --help' describes a command."""

EPILOG = """\
examples:
  python -m nbloss demo --plot fit.png
  python -m nbloss bench --sizes 1e4,1e6 --ops mean,fused --out my-bench
  python -m nbloss warmup
  python -m nbloss info"""

DEMO_DESCRIPTION = """\
Fit y = slope * x + intercept to points on y = 2.5 x - 1 (Gaussian noise, sd 0.3) of which
a fraction are replaced by gross outliers far above the line. The robust fit minimises
the mean Huber loss with scipy.optimize.minimize(method="L-BFGS-B", jac=True), the loss
and its gradient coming from nbloss.huber_loss_value_and_grad in one call. It prints the
true line, ordinary least squares and the robust fit with their errors, and with --plot
draws them. Needs scipy (pip install 'nbloss[demo]'); --plot needs matplotlib."""

DEMO_EPILOG = """\
examples:
  python -m nbloss demo
  python -m nbloss demo --n 1000 --outliers 0.4 --delta 0.5 --plot fit.png"""

INFO_DESCRIPTION = """\
Print the versions of nbloss, numba and NumPy, numba's thread count, the sizes below which
the kernels run serially, and the threading layer numba picked (it runs one threaded
reduction to find out)."""


WARMUP_DESCRIPTION = """\
Compile nbloss's common kernel variants into numba's disk cache: every operation (loss
'mean' and 'none', gradient, fused loss and gradient, Hessian diagonal) of the Huber,
Smooth L1 and L1 kernels, serial and threaded, against an array and a number target, in
each dtype. Run it once where nbloss is installed (a container image's build step, a CI
job's setup): later processes load the machine code instead of compiling it, and reach
their first result in about half a second instead of one to two (README, "First call")."""

WARMUP_EPILOG = """\
examples:
  python -m nbloss warmup
  NUMBA_CACHE_DIR=/opt/cache python -m nbloss warmup --dtypes float32"""


def dtype_list(text):
    """An argparse type: a comma-separated list of float32 and float64."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    bad = [name for name in names if name not in ("float32", "float64")]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"{text!r}: expected float32, float64 or both, "
                                         "comma-separated")
    return list(dict.fromkeys(names))


def check_demo(parser, args):
    """What parsing cannot check, before the fit: scipy, and where --plot writes."""
    if importlib.util.find_spec("scipy") is None:
        parser.error("demo needs scipy: pip install scipy (or 'nbloss[demo]')")
    if args.plot:
        check_plot_file(parser, "--plot", args.plot)


def build_parser():
    """The parser of ``python -m nbloss`` and its four subcommands."""
    from . import _warmup, bench
    from ._cli import HelpFormatter, float_in, int_at_least

    parser = argparse.ArgumentParser(prog="python -m nbloss", description=DESCRIPTION,
                                     epilog=EPILOG, formatter_class=HelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("demo", help="fit a robust straight line with scipy and nbloss's Huber loss",
                       description=DEMO_DESCRIPTION, epilog=DEMO_EPILOG,
                       formatter_class=HelpFormatter)
    p.add_argument("--n", type=int_at_least(MIN_POINTS), default=200, metavar="N",
                   help=f"number of points (at least {MIN_POINTS})")
    p.add_argument("--outliers", type=float_in(0, 1, high_open=True), default=0.2, metavar="FRACTION",
                   help="expected fraction of points made gross outliers, in [0, 1)")
    p.add_argument("--delta", type=float_in(0, low_open=True), default=1.0,
                   help="Huber delta, > 0: residuals beyond it count linearly, not squared")
    p.add_argument("--seed", type=int_at_least(0), default=0, help="random seed of the data, >= 0")
    p.add_argument("--plot", metavar="FILE",
                   help="also draw the data, the true line and both fits into FILE "
                        "(.png, .pdf, .svg, ...; its folder must exist)")
    p.set_defaults(run=demo, check=lambda args, p=p: check_demo(p, args))
    p = sub.add_parser("bench", help="time nbloss against torch, NumPy and the memory floor "
                       "on this machine; writes a table, JSON and a plot",
                       description=bench.cli.DESCRIPTION, epilog=bench.cli.EPILOG,
                       formatter_class=HelpFormatter)
    bench.add_arguments(p)
    p.set_defaults(run=bench.run, check=lambda args, p=p: bench.check_arguments(p, args))
    p = sub.add_parser("warmup", help="compile the common kernels into numba's cache, "
                       "for a fast first call in later processes",
                       description=WARMUP_DESCRIPTION, epilog=WARMUP_EPILOG,
                       formatter_class=HelpFormatter)
    p.add_argument("--dtypes", type=dtype_list, default="float32,float64",
                   metavar="LIST", help="comma-separated dtypes to compile for: float32, float64")
    p.set_defaults(run=_warmup.run, check=lambda args: None)
    p = sub.add_parser("info", help="versions, threads and the threading layer",
                       description=INFO_DESCRIPTION, formatter_class=HelpFormatter)
    p.set_defaults(run=info, check=lambda args: None)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.check(args)  # output paths and optional packages, before any work
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
