#!/usr/bin/env python
"""Thin shim: ``python cli.py ...`` runs the command line of :mod:`odejac.cli`
(also ``python -m odejac ...`` and, once installed, ``odejac ...``)."""
import os
import signal
import sys


def _interrupted_while_starting(signum, frame):
    """Ctrl-C during the imports: nothing has been written yet, so just stop (one line)."""
    sys.stderr.write("cli.py: interrupted; run the same command to resume\n")
    sys.stderr.flush()
    os._exit(130)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, _interrupted_while_starting)

from odejac.cli import main  # noqa: E402 -- after the handler, imports take seconds

if __name__ == "__main__":
    sys.exit(main())
