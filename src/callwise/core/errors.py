"""Errors that callwise raises on bad input.

Every data error names where the problem is (file, row or prompt, column) and what was expected,
so that a user can fix the file without reading callwise's code. The CLI turns any
:class:`CallwiseError` into one line on stderr and a non-zero exit.
"""

from __future__ import annotations


class CallwiseError(Exception):
    """Base class of every error callwise raises on purpose."""


class DataError(CallwiseError, ValueError):
    """Bad input data: the message says which file, row/prompt and column, and what was expected."""

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        row: str | int | None = None,
        column: str | None = None,
    ) -> None:
        self.file = file
        self.row = row
        self.column = column
        where = []
        if file is not None:
            where.append(str(file))
        if row is not None:
            where.append(str(row) if isinstance(row, str) else f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        self.detail = message
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


class FormatError(DataError):
    """The file's format is unknown, cannot be detected, or is not what its name says."""


class PolicyError(CallwiseError, ValueError):
    """A policy was misconfigured or asked to do something its backend cannot give."""
