"""Hypothesis generators of what users run on the runtime: scenarios, and sequences of API calls.

Use them in your own property tests, or let ``tierbed fuzz`` drive them::

    from hypothesis import given
    from conformance.generators import scenarios, limits_for

    @given(scenarios(limits_for("sim")))          # a scenario mapping, as a YAML file holds it
    def test_my_property(drawn):
        scn, meta = split_meta(drawn)            # meta: {"honest": ..., "failing": ...}
        ...

- :func:`topologies` — Worker trees, L3 to L5 roots: chips, SUB workers and children, zero of
  each included; remote L3s under an L4.
- :func:`programs` — callables (reference kernels as chip or SUB callables, built-in ``noop`` /
  ``fail`` / ``slow`` host callables, remote callables, duplicate registrations), tensors, and a
  program per orchestrating Worker: every submit kind, every tag (repeated tensors included in
  *chaos* programs), groups, SUB groups, scopes, ``alloc``, nested orchestrations; registration
  after ``init()`` and unregistration.
- :func:`faults_for` — fault plans that fit a topology.
- :func:`scenarios` — all of it, within a backend's :class:`Limits` (:func:`limits_for`).
- :mod:`conformance.generators.stateful` — a ``RuleBasedStateMachine`` over the Worker API with
  the simulator as the model.

Every drawn scenario is a valid scenario file (``conformance.scenario``); shrinking keeps it one.
"""

from conformance.generators.faults import faults_for
from conformance.generators.limits import Limits, limits_for
from conformance.generators.programs import programs
from conformance.generators.scenarios import scenarios, split_meta
from conformance.generators.topologies import topologies

__all__ = ["Limits", "faults_for", "limits_for", "programs", "scenarios", "split_meta", "topologies"]
