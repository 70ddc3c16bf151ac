"""The real runtime's remote limits tierbed sets: configurable, and stretched on a loaded host.

A healthy remote session on the real runtime can stall for seconds on a busy host (``tierbed fuzz
--backend hw`` saw "progress command timed out" on plain remote runs that passed on replay), which
made RBUF-007/008/013 flip between runs under a fixed 12 s limit.
"""

from __future__ import annotations

import pytest

from hw_backend.adapter import MAX_LOAD_SCALE, REMOTE_SESSION_TIMEOUT_S, REMOTE_STARTUP_TIMEOUT_S, remote_timeouts


def test_an_idle_host_keeps_the_base_limits() -> None:
    assert remote_timeouts({}, load=0.3, cpus=2) == (REMOTE_STARTUP_TIMEOUT_S, REMOTE_SESSION_TIMEOUT_S)


def test_the_limits_grow_with_the_load_per_core_up_to_a_bound() -> None:
    startup, session = remote_timeouts({}, load=3.0, cpus=2)
    assert session == pytest.approx(REMOTE_SESSION_TIMEOUT_S * 1.5)
    assert startup == pytest.approx(REMOTE_STARTUP_TIMEOUT_S * 1.5)
    assert remote_timeouts({}, load=64.0, cpus=2)[1] == pytest.approx(REMOTE_SESSION_TIMEOUT_S * MAX_LOAD_SCALE)


def test_the_environment_sets_them_outright() -> None:
    env = {"TIERBED_HW_REMOTE_SESSION_TIMEOUT_S": "40", "TIERBED_HW_REMOTE_STARTUP_TIMEOUT_S": "25.5"}
    assert remote_timeouts(env, load=64.0, cpus=2) == (25.5, 40.0)


@pytest.mark.parametrize("bad", ["0", "-3", "nan", "inf", "soon"])
def test_a_bad_value_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match=f"TIERBED_HW_REMOTE_SESSION_TIMEOUT_S={bad!r}"):
        remote_timeouts({"TIERBED_HW_REMOTE_SESSION_TIMEOUT_S": bad}, load=0.0, cpus=2)
