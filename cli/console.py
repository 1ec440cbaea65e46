"""The command line's consoles: a table printed to a file or a pipe is as wide as its figures
need, where rich would cut it to 80 columns (`0.…`)."""

from __future__ import annotations

from typing import Any

from rich import console as rich_console
from rich.measure import Measurement
from rich.table import Table

UNBOUNDED = 1_000_000  # columns to measure a table's natural width in


class _AtWidth:
    """A table laid out `width` columns wide, whatever the console's width."""

    def __init__(self, table: Table, width: int) -> None:
        self.table, self.width = table, width

    def __rich_console__(self, console: rich_console.Console,
                         options: rich_console.ConsoleOptions) -> rich_console.RenderResult:
        yield from console.render(self.table, options.update_width(self.width))


class Console(rich_console.Console):
    """A rich Console whose tables are never cut. On a terminal, rich fits a table to the
    window (cells wrap); to a file or a pipe, where no window limits the lines, a table wider
    than the console's width (80 columns, or COLUMNS) is printed at its natural width."""

    def print(self, *objects: Any, **options: Any) -> None:
        if self.is_terminal or not any(isinstance(o, Table) for o in objects):
            super().print(*objects, **options)
            return
        unbounded = self.options.update_width(UNBOUNDED)
        widened = []
        for item in objects:
            if isinstance(item, Table):
                natural = Measurement.get(self, unbounded, item).maximum
                item = _AtWidth(item, natural) if natural > self.width else item
            widened.append(item)
        super().print(*widened, **{**options, "crop": False})
