"""The sweep: every case, handed to the contenders' workers one at a time and in turn, so
that every ratio compares timings taken seconds apart; repeated over rounds, each round
starting with another contender; one progress line per case; medians over rounds."""

import statistics
import time

from .report import fmt_n, fmt_time
from .worker import Worker


def run_sweep(contenders, losses, dtypes, sizes, ops, rounds, min_time, log=print,
              reuse_memory=False):
    """Time every case; returns the result records (medians over rounds) and the versions
    the workers report."""
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
                    part = f"{c} {fmt_time(reply.get('median'))}"
                    if "compile_s" in reply:
                        part += f" (first call {fmt_time(reply['compile_s'])})"
                    parts.append(part)
                done += 1
                eta = (time.perf_counter() - started) / done * (total - done)
                log(f"[{done:>3}/{total}] round {r + 1}/{rounds}  {loss:<9} {dtype:<7} "
                    f"{op:<5} N={fmt_n(n):<4} " + "  ".join(parts) + f"   (about {eta:.0f} s left)")
    finally:
        for w in workers.values():
            w.close()
    return [_record(key, replies) for key, replies in samples.items()], versions


def _record(key, replies):
    """One case's result for one contender, from its workers' replies over the rounds.
    For a compiled contender, ``compile_s`` is its longest first call over the rounds:
    the first round's, which compiled the case (later rounds reuse that)."""
    loss, dtype, n, op, contender = key
    good = [x for x in replies if "median" in x]
    rec = {"loss": loss, "dtype": dtype, "n": n, "op": op, "contender": contender}
    if good:
        rec.update(median_s=statistics.median(x["median"] for x in good),
                   min_s=min(x["min"] for x in good),
                   samples=sum(x["samples"] for x in good), rounds=len(good))
        if any("compile_s" in x for x in good):
            rec["compile_s"] = max(x["compile_s"] for x in good if "compile_s" in x)
    else:
        rec["error"] = replies[0].get("error", "no result")
    return rec
