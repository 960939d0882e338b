"""``python -m arithforge``: the same command line as the ``arithforge`` script."""

from .cli import main

raise SystemExit(main())
