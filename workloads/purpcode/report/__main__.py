"""`python -m purpcode.report --config CONFIG --out DIR`."""

from __future__ import annotations

import sys

from purpcode.report import main

if __name__ == "__main__":
    sys.exit(main())
