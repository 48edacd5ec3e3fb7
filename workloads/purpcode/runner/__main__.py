"""`python -m purpcode.runner SPEC [--workdir DIR]`."""

from __future__ import annotations

import sys

from purpcode.runner import main

if __name__ == "__main__":
    sys.exit(main())
