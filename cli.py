#!/usr/bin/env python
"""Thin shim: ``python cli.py ...`` runs the command line of :mod:`odejac.cli`
(also ``python -m odejac ...`` and, once installed, ``odejac ...``)."""
import sys

from odejac.cli import main

if __name__ == "__main__":
    sys.exit(main())
