"""Profiling an upload's extra columns, and the report plan it leads to.

While an upload is read, each extra column (anything besides the id and the text) is
profiled: how many distinct values, how many parse as dates. A column that can be neither
a group nor a date stops being profiled and copied into the work rows. At the end,
:meth:`ColumnProfiler.plan` picks the report's group columns and its date column (or checks
the ones the caller named).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.core.errors import InvalidUpload
from app.jobs.report import DATE_HINT, DEFAULT_CONFIG, ReportConfig, parse_day

MAX_VALUE_CHARS = 64  # a longer value is neither a group label nor a date (never parsed)
MAX_COLUMNS = 200  # extra columns profiled; keys beyond these are ignored


class ColumnProfile:
    """One column's distinct values (until too many) and how many of its values are dates."""

    __slots__ = ("values", "nonempty", "dates", "hint")

    def __init__(self, name: str, hint: bool = False):
        self.values: set[str] | None = set()
        self.nonempty = self.dates = 0
        self.hint = hint or bool(DATE_HINT.search(name))  # a time-like name: epoch numbers are times

    def see(self, value: str, cap: int) -> bool:
        """Profile one value; False once the column can be neither group nor date."""
        if value == "":
            return True
        self.nonempty += 1
        if len(value) > MAX_VALUE_CHARS:  # neither a label nor a date: never parsed
            self.values = None
            return self.date_like
        if self.nonempty <= 100 or self.dates >= 0.95 * (self.nonempty - 1):  # still date-like
            if parse_day(value, allow_epoch=self.hint):
                self.dates += 1
        if self.values is not None:
            self.values.add(value)
            if len(self.values) > cap:
                self.values = None
        return self.values is not None or self.date_like

    @property
    def date_like(self) -> bool:
        return self.nonempty > 0 and self.dates >= 0.95 * self.nonempty


def scalar(v: Any) -> str | None:
    """A JSON value as the text a column holds; None for a list or an object (not a column value).

    >>> scalar(None), scalar(True), scalar(3), scalar([1])
    ('', 'true', '3', None)
    """
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (str, int, float)):
        return str(v)
    return None


class ColumnProfiler:
    """Profiles the extra columns of every row, and keeps the values worth carrying."""

    def __init__(self, date_column: str | None = None, config: ReportConfig = DEFAULT_CONFIG):
        self.date_column, self.cfg = date_column, config
        self.columns: dict[str, ColumnProfile] = {}
        self.dead: set[str] = set()

    def extras(self, items: Iterable[tuple[str, Any]]) -> dict[str, str]:
        """One row's extra values as text, profiled; only columns that can still be a group or
        the date are kept (a high-cardinality column stops being copied into every row)."""
        out = {}
        for key, value in items:
            if key in self.dead:
                continue
            text = scalar(value)
            if text is None:
                continue
            col = self.columns.get(key)
            if col is None:
                if len(self.columns) >= MAX_COLUMNS:
                    continue
                col = self.columns[key] = ColumnProfile(key, hint=key == self.date_column)
            if col.see(text, self.cfg.max_group_values):
                out[key] = text
            else:
                self.dead.add(key)
        return out

    def plan(self, total: int, group_columns: tuple[str, ...] | None = None) -> dict:
        """Which columns the report groups by, and which one gives the day (the caller's
        choices checked, the rest detected; the rule is stated in the result)."""
        cfg, cols = self.cfg, self.columns
        date_col = self.date_column
        for name in [date_col, *(group_columns or ())]:
            if name is not None and name not in cols:
                raise InvalidUpload(
                    f"column {name!r} not found; extra columns are {sorted(cols)}", code="missing_column"
                )
        for name in group_columns or ():
            if cols[name].values is None:
                raise InvalidUpload(
                    f"column {name!r} has more than {cfg.max_group_values} distinct values "
                    f"(or values over {MAX_VALUE_CHARS} characters); it cannot be a group column",
                    code="invalid_column",
                )
        if date_col and not cols[date_col].date_like:
            raise InvalidUpload(
                f"column {date_col!r} does not hold dates (e.g. 2026-11-20 or 2026-11-20 10:00)", code="invalid_column"
            )
        if date_col is None:
            dated = [(c.hint, c.nonempty, k) for k, c in cols.items() if c.date_like and c.nonempty >= 0.5 * total]
            date_col = max(dated)[2] if dated else None
        if group_columns is not None:
            groups = [g for g in group_columns if g != date_col]
        else:
            groups = [
                k
                for k, c in cols.items()
                if k != date_col
                and c.values is not None
                and 2 <= len(c.values) <= cfg.max_group_values
                and len(c.values) <= max(2, cfg.max_group_share * total)
            ]
        described = {}
        for k, c in cols.items():
            role = "date" if k == date_col else "group" if k in groups else "ignored"
            described[k] = {
                "role": role,
                "distinct": len(c.values) if c.values is not None else f">{cfg.max_group_values} or long values",
                "date_share": round(c.dates / c.nonempty, 3) if c.nonempty else 0.0,
            }
        return {
            "group_columns": groups,
            "date_column": date_col,
            "date_epoch": bool(date_col and cols[date_col].hint),
            "columns": described,
            "rule": f"group columns: 2..{cfg.max_group_values} distinct values, at most one per "
            f"{round(1 / cfg.max_group_share)} rows; date column: >= 95% of its non-empty "
            "values parse as a date and it is filled in >= half the rows",
        }
