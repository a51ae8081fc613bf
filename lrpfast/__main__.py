"""``python -m lrpfast``: the ``lrpfast`` command (see :mod:`lrpfast.cli`)."""

from .cli import main

raise SystemExit(main())
