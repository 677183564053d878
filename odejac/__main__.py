"""``python -m odejac ...``: the command line (odejac.cli)."""
import sys

from .cli import main

sys.exit(main())
