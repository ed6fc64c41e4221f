"""``python -m order_service``: see :mod:`order_service.entrypoint`."""

import sys

from order_service.entrypoint import main

if __name__ == "__main__":
    sys.exit(main())
