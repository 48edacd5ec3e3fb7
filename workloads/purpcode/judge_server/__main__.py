"""`python -m purpcode.judge_server --model NAME_OR_PATH --port P`."""

from __future__ import annotations

import sys

from purpcode.judge_server import main

if __name__ == "__main__":
    sys.exit(main())
