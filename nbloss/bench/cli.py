"""The command line, ``python -m nbloss bench``: its options, and a run that checks them,
sweeps the cases, takes the extra measurements and writes the report."""

import argparse
import datetime
import importlib.util
import json
import os
import sys

from .._cli import (HelpFormatter, check_output_folder, check_plot_file, comma_list, float_in,
                    int_at_least)
from . import extras, plot, report
from .cases import (CONTENDERS, DTYPES, EXTRA_CONTENDERS, LOSSES, OPS, PARAM, SIZES,
                    available_contenders)
from .report import fmt_n
from .sweep import run_sweep
from .worker import REUSE_MEMORY_ENV, serve

DESCRIPTION = """\
Time nbloss against torch (skipped with a note when it is not installed), the np.where
expression a user would write, and two bounds on any implementation: the floor (the
simplest parallel kernel moving the same bytes) and, on request, compute (the loss's
arithmetic alone). Also on request, two compiled peers: torch-compile (torch.compile,
inductor) and jax (jax.jit on the CPU, float64 enabled), each skipped with a note when
its package is missing; each case's first call compiles, and its time is reported apart
from the timed calls. Each contender runs in its own worker process; the cases alternate
between them, and each round starts with another contender. It prints one progress line
per case, then a table of medians and ratios (above 1: nbloss is faster), and writes
results.json, results.md and, with matplotlib, results.png into --out.

A case is (loss, dtype, operation, N): N elements in each of the input and the target.
Operations: mean (the 'mean' forward), none (the elementwise 'none' forward), grad (the
gradient of the 'mean' loss) and fused (loss and gradient together)."""

EPILOG = """\
examples:
  python -m nbloss bench                                  # everything; minutes
  python -m nbloss bench --sizes 1e4,1e6 --ops mean,fused --dtypes float32 --out quick
  python -m nbloss bench --contenders nbloss,torch,torch-compile,jax --out peers
  python -m nbloss bench --replot quick/results.json      # redraw quick/results.png"""


def main(argv=None):
    """``python -m nbloss.bench``: the same options as ``python -m nbloss bench``."""
    parser = argparse.ArgumentParser(prog="python -m nbloss bench", description=DESCRIPTION,
                                     epilog=EPILOG, formatter_class=HelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    check_arguments(parser, args)
    return run(args)


def _choices(values):
    return "{" + ",".join(values) + "}[,...]"


def add_arguments(parser):
    parser.add_argument("--sizes", type=comma_list(item=int_at_least(1)),
                        default=",".join(fmt_n(n) for n in SIZES), metavar="N[,N...]",
                        help="comma-separated numbers of elements per case, positive integers "
                             "(1e5 and 100000 alike)")
    parser.add_argument("--dtypes", type=comma_list(DTYPES), default=",".join(DTYPES),
                        metavar=_choices(DTYPES), help="comma-separated dtypes of the arrays")
    parser.add_argument("--losses", type=comma_list(LOSSES), default=",".join(LOSSES),
                        metavar=_choices(LOSSES), help="comma-separated losses")
    parser.add_argument("--ops", type=comma_list(OPS), default=",".join(OPS), metavar=_choices(OPS),
                        help="comma-separated operations: mean and none forwards, grad, fused "
                             "loss and gradient")
    parser.add_argument("--contenders", type=comma_list(CONTENDERS + EXTRA_CONTENDERS),
                        default=",".join(CONTENDERS), metavar=_choices(CONTENDERS + EXTRA_CONTENDERS),
                        help="comma-separated implementations to time (compute, the arithmetic "
                             "bound, and the compiled peers torch-compile and jax only when named)")
    parser.add_argument("--rounds", type=int_at_least(1), default=1,
                        help="sweeps over all cases, each starting with another contender; "
                             "the table shows medians over rounds")
    parser.add_argument("--min-time", type=float_in(0), default=0.05, metavar="SECONDS",
                        help="seconds of timed calls per case, contender and round")
    parser.add_argument("--out", default="nbloss-bench", metavar="FOLDER",
                        help="folder for results.json, results.md and results.png; created if "
                             "missing, inside a folder that exists; files there are replaced")
    parser.add_argument("--reuse-memory", action="store_true",
                        help="the workers' malloc keeps freed memory for the next allocation "
                        "instead of mapping fresh pages for each large array (glibc's default)")
    parser.add_argument("--no-extras", action="store_true",
                        help="skip the cold-start and memory measurements")
    parser.add_argument("--replot", metavar="RESULTS_JSON",
                        help="time nothing: redraw the plot of an earlier run from its "
                             "results.json, into results.png beside it (other options ignored)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)


def check_arguments(parser, args):
    """What parsing alone cannot check, before any work: the output folder (or the file
    to replot) and matplotlib where only a plot is asked for. ``parser.error`` otherwise."""
    if args.worker:
        return
    if args.replot:
        try:
            with open(args.replot) as f:
                args.replot_report = json.load(f)
        except (OSError, ValueError) as exc:
            parser.error(f"--replot {args.replot}: cannot read it as JSON ({exc})")
        if not isinstance(args.replot_report, dict) or not args.replot_report.get("results"):
            parser.error(f"--replot {args.replot}: not a results.json of python -m nbloss bench")
        check_plot_file(parser, "--replot", os.path.join(os.path.dirname(args.replot), "results.png"))
        return
    check_output_folder(parser, "--out", args.out)


def run(args):
    if args.worker:
        serve(args.worker)
        return 0
    if args.replot:
        path = os.path.join(os.path.dirname(args.replot), "results.png")
        facts = getattr(args, "replot_report", None)
        if facts is None:  # a caller that skipped check_arguments
            with open(args.replot) as f:
                facts = json.load(f)
        plot.plot(facts["results"], path, plot.title(facts))
        print(f"wrote {path}")
        return 0
    contenders, notes = available_contenders(args.contenders)
    for note in notes:
        print(f"note: {note}")
    if importlib.util.find_spec("matplotlib") is None:
        print("note: matplotlib is not installed: no results.png (pip install matplotlib)")
    machine = report.machine_facts()
    print(f"nbloss bench on {machine['cpu']} ({machine['logical_cpus']} logical CPUs); "
          f"each contender in its own process, {args.rounds} round(s)")
    records, versions = run_sweep(contenders, args.losses, args.dtypes, args.sizes, args.ops,
                                  args.rounds, args.min_time, reuse_memory=args.reuse_memory)
    measured = {}
    if not args.no_extras:
        print("cold start (fresh process to first fused loss+gradient) ...", flush=True)
        measured["cold_start"] = extras.cold_start(contenders)
        print("peak extra memory of a 1e7 float32 'mean'/'sum' forward ...", flush=True)
        measured["memory"] = extras.peak_memory()
    command = "python -m nbloss bench " + " ".join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else sys.argv[1:])
    allocator = "glibc's default"
    if args.reuse_memory:
        allocator = "freed memory reused (" + " ".join(f"{k}={v}" for k, v in REUSE_MEMORY_ENV.items()) + ")"
    facts = {"date": datetime.date.today().isoformat(), "command": command.strip(),
             "machine": machine, "versions": versions,
             "method": "medians over calls (grouped into samples of >= 50 us) and over rounds; "
                       "each contender in its own worker process, cases alternated between "
                       "workers, each round starting with another contender",
             "allocator": allocator, "param": PARAM, "results": records, "notes": notes, **measured}
    report.write(facts, report.ratio_rows(records), args.out)
    return 0
