"""``python -m runtime_adapter``: the same as the ``runtime-adapter`` console script.

``python -m`` puts the current directory first on the module search path; the
console script does not. It is removed here, so ``ADAPTER_MODULE`` resolves the
same way in both: from installed packages and ``PYTHONPATH``, never from
whichever directory the command happens to run in.

The garbage collector is off while the runtime imports and boots: the imports
allocate hundreds of thousands of objects and nothing of it is garbage, so the
collections it triggers are pure cost (~40 ms of a ~300 ms boot, measured).
``run`` turns it back on after the first register attempt, freezing what the
boot built; every other command turns it on at once.
"""

from __future__ import annotations

import gc
import os
import sys

gc.disable()

if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]

from .cli import main  # noqa: E402 - after the two statements above

if __name__ == "__main__":
    sys.exit(main())
