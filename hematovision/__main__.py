"""``python -m hematovision ...``: see ``hematovision/cli.py``."""

import sys

from hematovision.cli import main

sys.exit(main())
