"""``python -m bench``: run the benchmarks (see :mod:`bench.harness`)."""

import sys

from bench.harness import main

if __name__ == "__main__":
    sys.exit(main())
