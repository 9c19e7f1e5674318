"""``python -m bench``: see :mod:`bench`."""

import sys

from .config import parse_args
from .runner import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], parse_args(sys.argv[1:])))
