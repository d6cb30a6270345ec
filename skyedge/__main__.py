"""``python -m skyedge`` is the same as the ``skyedge`` console script."""

from skyedge.cli import main

raise SystemExit(main())
