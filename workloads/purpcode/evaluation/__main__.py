"""`python -m purpcode.evaluation --config CONFIG --out DIR ...`."""

from __future__ import annotations

import sys

from purpcode.evaluation import main

if __name__ == "__main__":
    sys.exit(main())
