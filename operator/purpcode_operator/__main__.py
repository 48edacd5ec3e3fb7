"""`python -m purpcode_operator` = `purpcode-operator`."""

import sys

from .main import main

sys.exit(main())
