"""The CLI's one error for bad input: a file that cannot be used, an unknown name, a bad option value.

Every ``tierbed`` command exits 2 for it, as for a usage error (README "Exit codes"), and prints
the message click gives it; the commands' modules (``conformance.cli``, ``conformance.campaign.cli``,
``conformance.fuzz.cli``) all raise this one class.
"""

from __future__ import annotations

import click


class InputError(click.ClickException):
    """Bad input: exit 2, as usage errors do."""

    exit_code = 2
