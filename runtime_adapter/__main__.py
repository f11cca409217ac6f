"""``python -m runtime_adapter``: the same as the ``runtime-adapter`` console script."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
