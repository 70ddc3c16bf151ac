"""The hw backend: drives the real runtime (``import simpler``) with the names the cases use.

- :mod:`hw_backend.api` -- :class:`~hw_backend.api.HwAPI`, the ``hw`` RuntimeAPI (platform, kernel map,
  feature probes);
- :mod:`hw_backend.adapter` -- Worker / Orchestrator / TaskArgs over the real objects, tensors through
  the runtime's shared buffers, the RunRecord;
- :mod:`hw_backend.probe` -- the SUB wrapper that reports each invocation from the SUB process;
- :mod:`hw_backend.errors` -- the exception -> error-class table.

Importing this package does not import the real runtime; :mod:`hw_backend.api` does.
"""
