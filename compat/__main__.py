"""``python -m compat SCRIPT [ARGS...]``: the same command as ``tierbed exec``."""

from conformance.exec_cmd import main

main("python -m compat")
