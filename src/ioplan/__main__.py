"""``python -m ioplan`` runs the command line."""

import sys

from ioplan.cli import main

sys.exit(main())
