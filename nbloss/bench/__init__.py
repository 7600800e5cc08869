"""The benchmark command, ``python -m nbloss bench`` (see ``--help``).

It times every case in each contender's own worker process. The driver hands the workers
one case at a time, in turn, so that every ratio compares timings taken seconds apart,
and it repeats the whole sweep ``--rounds`` times, each round starting with another
contender. It prints each result as it arrives, then a table of medians and ratios, and
writes a JSON file and (with matplotlib) a PNG plot. The README's *Speed* section
explains the method.

Modules, one job each:

- :mod:`.cases`: the cases and the contenders (nbloss, torch, numpy, the bounds and, on
  request, the compiled peers torch-compile and jax), each a builder of one timed callable;
- :mod:`.bounds`: the floor and compute bounds' numba kernels;
- :mod:`.worker`: the worker process (JSON lines over stdin and stdout) and its timing;
- :mod:`.sweep`: the driver's sweep over cases, contenders and rounds, with progress;
- :mod:`.extras`: cold start and memory, in fresh interpreters;
- :mod:`.report`: the table, results.md and results.json;
- :mod:`.plot`: results.png, also redrawn from an earlier results.json (``--replot``);
- :mod:`.cli`: the options and the run that ties them together.
"""

from .cases import (
    CASE_BUILDERS,
    CONTENDERS,
    DTYPES,
    EXTRA_CONTENDERS,
    LOSSES,
    OPS,
    SIZES,
    available_contenders,
    case_data,
    compute_case,
)
from .cli import add_arguments, check_arguments, main, run
from .extras import peak_memory
from .report import fmt_n, ratio_rows
from .worker import REUSE_MEMORY_ENV, Worker
