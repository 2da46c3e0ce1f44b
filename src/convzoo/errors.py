"""Errors meant for people.

Every error a user can cause (a wrong name, a missing file, a bad shape, a corrupt checkpoint)
is raised as a :class:`ConvzooError`. The CLI prints its message as one line on stderr and exits
with code 2, without a traceback; library users catch it like any other exception.
"""

from __future__ import annotations

import difflib


class ConvzooError(Exception):
    """A user-facing error whose message is one self-contained line."""


class UnknownNameError(ConvzooError, KeyError):
    """An unknown model / data set / recipe name, with the closest registered names."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...]):
        self.kind, self.name = kind, name
        self.suggestions = suggest(name, known)
        hint = f"; did you mean {', '.join(self.suggestions)}?" if self.suggestions else ""
        super().__init__(f"unknown {kind} '{name}'{hint}")

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


def suggest(name: str, known, n: int = 5) -> list[str]:
    """Closest names: difflib ratio first, then names that contain the query."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=n, cutoff=0.5)
    for k in known:
        if len(close) >= n:
            break
        if (name in k or k in name) and k not in close:
            close.append(k)
    return close
