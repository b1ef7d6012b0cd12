"""Keeping a DataTable in step with fresh rows without losing the cursor or scroll."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.widget import Widget
from textual.widgets import DataTable

Row = tuple[str, Sequence[Text]]


def content_width(table: Widget) -> int:
    """The cells a table's columns may fill: its width less the room of its vertical
    scrollbar (kept by ``scrollbar-gutter: stable``, or shown), so that sizing the
    last column to fit never makes a horizontal scrollbar that hides a row."""
    width = table.size.width or table.app.size.width - 2
    styles = table.styles
    if styles.scrollbar_gutter == "stable" or table.show_vertical_scrollbar:
        width -= styles.scrollbar_size_vertical
    return max(1, width)


def sync_rows(table: DataTable[Text], rows: Sequence[Row], previous: Sequence[Row]) -> None:
    """Show ``rows`` (key, cells): update changed cells in place when the keys are
    the same as ``previous``, else rebuild and put the cursor back on its key."""
    if [k for k, _ in rows] == [k for k, _ in previous] and table.row_count == len(rows):
        columns = list(table.columns.keys())
        for (key, cells), (_, old) in zip(rows, previous, strict=True):
            for column, new, before in zip(columns, cells, old, strict=False):
                if new != before:
                    table.update_cell(key, column, new)
        return
    current = previous[table.cursor_row][0] if 0 <= table.cursor_row < len(previous) else None
    row_index = table.cursor_row
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    keys = [k for k, _ in rows]
    if current in keys:
        table.move_cursor(row=keys.index(current), animate=False)
    elif rows:
        table.move_cursor(row=min(row_index, len(rows) - 1), animate=False)
