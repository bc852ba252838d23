"""Entry point: `python -m bench [--quick] [--scenarios a,b] [--reps N] [--json PATH]`."""

import sys

from .runner import main

sys.exit(main())
