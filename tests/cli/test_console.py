"""The command line's consoles: to a file or a pipe a table wider than the console is printed
at its natural width; anything else, and anything on a terminal, as rich prints it."""

from __future__ import annotations

import io

from rich.table import Table

from pardus.cli.console import Console


def wide_table(columns: int = 16) -> Table:
    table = Table(title="figures")
    for n in range(columns):
        table.add_column(f"column {n}", justify="right")
    table.add_row(*[f"{n / 7:.6f}" for n in range(columns)])
    return table


def printed(console: Console, *objects) -> list[str]:
    console.print(*objects)
    return console.file.getvalue().splitlines()


def test_to_a_file_a_wide_table_keeps_every_figure():
    lines = printed(Console(file=io.StringIO(), width=80), wide_table())
    row = [cell.strip() for cell in lines[-2].split("│")[1:-1]]
    assert row == [f"{n / 7:.6f}" for n in range(16)]
    assert len(lines[-1]) > 80 and "…" not in "\n".join(lines)
    assert lines[0].strip() == "figures"  # the title centred over the table


def test_to_a_file_text_and_narrow_tables_keep_the_width():
    narrow = Table("a", "b")
    narrow.add_row("1", "2")
    lines = printed(Console(file=io.StringIO(), width=80), "word " * 30, narrow)
    assert max(len(line) for line in lines) <= 80
    assert lines[-1] == "└───┴───┘"  # not widened


def test_on_a_terminal_rich_fits_the_table_to_the_window():
    console = Console(file=io.StringIO(), width=80, force_terminal=True, color_system=None)
    assert max(len(line) for line in printed(console, wide_table())) == 80
