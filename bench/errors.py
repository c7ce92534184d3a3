"""Errors that reach the user as one line naming the fix."""

from __future__ import annotations

import difflib


class GradBenchError(Exception):
    """Base class: the CLI prints these as a single ``error: ...`` line."""


class UnknownNameError(GradBenchError, KeyError):
    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean '{close[0]}'? " if close else ""
        shown = ", ".join(known[:20]) + (" …" if len(known) > 20 else "")
        super().__init__(
            f"unknown {kind} '{name}'; {hint}known: {shown} (bench list {kind}s)"
        )

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class SuiteError(GradBenchError):
    pass


class InputError(GradBenchError):
    pass


class MethodOutputError(GradBenchError):
    pass


class ResultsError(GradBenchError):
    pass
