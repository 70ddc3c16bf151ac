"""The CLI's one error for bad input: a file that cannot be used, an unknown name, a bad option value.

Every ``tierbed`` command exits 2 for it, as for a usage error (README "Exit codes"), and prints
the message click gives it; the commands' modules (``conformance.cli``, ``conformance.campaign.cli``,
``conformance.fuzz.cli``) all raise this one class.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click


class InputError(click.ClickException):
    """Bad input: exit 2, as usage errors do."""

    exit_code = 2


def unwritable_dir(path: Path) -> str | None:
    """Why the command could not write files into directory ``path`` (created if missing), or None.

    Checked when the option is parsed, before any work, by trying what the command will do: a file
    in the directory if it exists, else creating (and removing again) its first missing component
    under the nearest existing ancestor, which must itself be a directory.
    """
    missing: list[Path] = []
    here = path
    while not here.exists() and here != here.parent:
        missing.append(here)
        here = here.parent
    if not here.is_dir():
        return f"{here} is not a directory"
    try:
        if missing:
            missing[-1].mkdir()
            missing[-1].rmdir()
        else:
            fd, probe = tempfile.mkstemp(dir=here, prefix=".tierbed-probe-")
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        return f"cannot write there ({exc.strerror or exc})"
    return None


class _Writable(click.Path):
    """A path option the command writes: refused at parse time (exit 2) if it could not write there."""

    def __init__(self, directory: bool) -> None:
        super().__init__(file_okay=not directory, dir_okay=directory, path_type=Path)
        self.directory = directory

    def convert(self, value, param, ctx):
        path = super().convert(value, param, ctx)
        problem = unwritable_dir(Path(path) if self.directory else Path(path).parent)
        if problem:
            self.fail(f"{path}: {problem}", param, ctx)
        return path


def OutputDir() -> click.Path:
    """A ``--out``-style directory (created by the command if missing)."""
    return _Writable(directory=True)


def OutputFile() -> click.Path:
    """A file the command writes (its directory is checked as :func:`OutputDir` checks one)."""
    return _Writable(directory=False)
