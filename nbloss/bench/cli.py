"""The command line, ``python -m nbloss bench``: its options, and a run that checks them,
sweeps the cases, takes the extra measurements and writes the report."""

import argparse
import datetime
import sys

from . import extras, report
from .cases import (CONTENDERS, DTYPES, EXTRA_CONTENDERS, LOSSES, OPS, PARAM, SIZES,
                    available_contenders)
from .sweep import run_sweep
from .worker import REUSE_MEMORY_ENV, serve

DESCRIPTION = "Speed of nbloss against torch, a NumPy expression and the machine's floor."


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m nbloss bench", description=DESCRIPTION)
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
        serve(args.worker)
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
