"""``python -m hematovision ...``: see ``hematovision/interfaces/cli.py``."""

import sys

from hematovision.interfaces.cli import main

sys.exit(main())
