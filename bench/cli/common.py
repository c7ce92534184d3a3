"""What the commands' parsers share."""

from __future__ import annotations

import argparse
from typing import NoReturn

EXIT_JOBS_FAILED = 1  # bench run: some job failed (the others ran); bench verify: a job did not reproduce
EXIT_BAD_INPUT = 2  # a usage error, or a suite, value or file refused before anything ran


class Parser(argparse.ArgumentParser):
    """Usage mistakes as one line (argparse prints the usage block first), naming where help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} ({self.prog} --help)\n")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value
