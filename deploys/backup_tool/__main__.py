"""``python3 -m orderops_backup``: see :mod:`.cli`."""

import sys

from .cli import main

sys.exit(main())
