"""The data that flows from the engine to reporters, the cache and the fixer.

Everything here is plain, immutable and JSON-serialisable (``to_dict``/``from_dict``)
so that results can cross process boundaries (``-j``) and live in the cache.
Rows and columns are 1-based, like ruff's JSON output.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Applicability = Literal["safe", "unsafe"]


@dataclass(frozen=True, order=True)
class Location:
    row: int
    column: int


@dataclass(frozen=True)
class Edit:
    """Replace the source between ``location`` and ``end_location`` with ``content``."""

    content: str
    location: Location
    end_location: Location


@dataclass(frozen=True)
class Fix:
    message: str
    applicability: Applicability
    edits: tuple[Edit, ...]


@dataclass(frozen=True)
class Diagnostic:
    filename: str
    code: str
    message: str
    location: Location
    end_location: Location
    fix: Fix | None = None
    # The line whose noqa comment suppresses this diagnostic (ruff's `noqa_row`).
    noqa_row: int | None = None
    rule_name: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    # Notebooks: the 1-based cell (all cells counted, as ruff does); rows, columns
    # and noqa_row are then within that cell.
    cell: int | None = None

    @property
    def sort_key(self):
        return (self.filename, self.cell or 0, self.location.row, self.location.column, self.code)

    def to_dict(self) -> dict:
        d = asdict(self)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Diagnostic:
        fix = d.get("fix")
        if fix is not None:
            fix = Fix(
                message=fix["message"],
                applicability=fix["applicability"],
                edits=tuple(
                    Edit(
                        content=e["content"],
                        location=Location(**e["location"]),
                        end_location=Location(**e["end_location"]),
                    )
                    for e in fix["edits"]
                ),
            )
        return cls(
            filename=d["filename"],
            code=d["code"],
            message=d["message"],
            location=Location(**d["location"]),
            end_location=Location(**d["end_location"]),
            fix=fix,
            noqa_row=d.get("noqa_row"),
            rule_name=d.get("rule_name", ""),
            extra=d.get("extra") or {},
            cell=d.get("cell"),
        )


# GL000 is not a rule class: it is what the engine reports when a file cannot be
# analysed at all (decode error, syntax error, parser limit, internal rule error).
GL000 = "GL000"
