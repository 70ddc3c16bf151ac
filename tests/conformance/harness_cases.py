"""Test-only cases for the runner: one that fails, one that hangs, one that crashes its process.

They live in a private catalog, so they never appear in the project's catalog.
"""

from __future__ import annotations

import os
import time

from conformance.catalog import Catalog

HARNESS = Catalog()
SPEC = ("tests", "runner behaviour")


@HARNESS.case("TST-001", "Passes", spec=SPEC, backends=("sim",))
def passes(rt, ctx):
    ctx.check("one equals one", 1, 1)


@HARNESS.case("TST-002", "Fails on purpose", spec=SPEC, backends=("sim",))
def fails(rt, ctx):
    print("diagnostic printed by the failing case", flush=True)
    os.write(2, b"written to fd 2 as native code would\n")
    ctx.check("two equals three", 2, 3)


@HARNESS.case("TST-003", "Hangs forever", spec=SPEC, backends=("sim",))
def hangs(rt, ctx):
    while True:
        time.sleep(0.05)


@HARNESS.case("TST-004", "Kills its own process", spec=SPEC, backends=("sim",))
def crashes(rt, ctx):
    os._exit(3)


@HARNESS.case("TST-005", "Misses a SHOULD only", spec=SPEC, backends=("sim",), level="SHOULD")
def misses_should(rt, ctx):
    ctx.check("a SHOULD-level value", "a", "b")


@HARNESS.case("TST-006", "Only for the reference backend", spec=SPEC, backends=("reference",))
def not_for_sim(rt, ctx):
    ctx.check("never run on sim", 1, 1)
