"""The ``tierbed`` console script: :func:`conformance.cli.main`, and Ctrl-C during its start-up.

Importing the CLI takes a second or two (numba, pydantic, the simulator). A Ctrl-C then would
end the process with a traceback, killed by the signal; here it exits 130 quietly, as an
interrupted command does (README "Exit codes").
"""

from __future__ import annotations

import sys


def run() -> None:
    try:
        from conformance.cli import main
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    main()
