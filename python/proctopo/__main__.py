"""``python -m proctopo``: see proctopo.cli."""

import sys

from .cli import main

sys.exit(main())
