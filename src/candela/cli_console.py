"""The command line's consoles, one home for every ``candela`` sub-command.

Not a terminal (pipes, CI, a script reading a table): wide enough that tables are not squeezed
into truncated columns.
"""

from __future__ import annotations

import sys

from rich.console import Console

WIDTH = None if sys.stdout.isatty() else 200
console = Console(soft_wrap=True, width=WIDTH)
err = Console(stderr=True, soft_wrap=True, width=WIDTH)
