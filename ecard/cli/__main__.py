"""``python -m ecard.cli``: the same as the ``ecard`` console script."""

import sys

from ecard.cli import main

sys.exit(main())
