"""``python -m runtime_adapter``: the same as the ``runtime-adapter`` console script.

``python -m`` puts the current directory first on the module search path; the
console script does not. It is removed here, so ``ADAPTER_MODULE`` resolves the
same way in both: from installed packages and ``PYTHONPATH``, never from
whichever directory the command happens to run in.
"""

from __future__ import annotations

import os
import sys

if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
