"""Errors that point at the input: file, document, object and field."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Origin:
    """Where an object came from: a file and the document's index in it (0-based)."""

    file: str
    index: int | None = 0  # None: about the whole file
    item: int | None = None  # position inside a `kind: List` document

    def __str__(self) -> str:
        if self.index is None:
            return self.file
        where = f"{self.file}[doc {self.index}]"
        return where if self.item is None else f"{where}.items[{self.item}]"


def _printable(text: str) -> str:
    """Names from input are echoed in errors; never let them break a log line."""
    return text if text.isprintable() else repr(text)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one object. `field` is a dotted path such as spec.rules[0].matches."""

    message: str
    origin: Origin | None = None
    kind: str | None = None
    namespace: str | None = None
    name: str | None = None
    field: str | None = None

    @property
    def object_ref(self) -> str:
        if not self.kind:
            return ""
        ns = f"{_printable(self.namespace)}/" if self.namespace else ""
        return f"{_printable(self.kind)} {ns}{_printable(self.name) if self.name else '?'}"

    def __str__(self) -> str:
        parts = [str(self.origin)] if self.origin else []
        if self.kind:
            parts.append(self.object_ref)
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)


class WardgateError(Exception):
    """Base of every error wardgate raises on purpose."""


class InputError(WardgateError):
    """The input can't be used; each problem names where it is."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class UnsafeValueError(WardgateError, ValueError):
    """A string can't be written into nginx configuration safely."""
