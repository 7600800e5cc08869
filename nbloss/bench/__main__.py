"""``python -m nbloss.bench``: the same command line as ``python -m nbloss bench``; the
driver starts its workers this way."""

import sys

from .cli import main

sys.exit(main())
