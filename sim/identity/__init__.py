"""Callable identity for the simulator: canonical descriptors, hashids, Python callable targets.

The public surface is re-exported by :mod:`sim.callable_identity`; import from there.

- :mod:`sim.identity.canonical` -- the versioned canonical descriptor byte format, the
  ``sha256:<hex>`` hashid, and descriptor decoding / verification (upstream
  ``docs/callable-identity-registration.md``, "Canonical Descriptor" and "Target Namespace").
- :mod:`sim.identity.python_targets` -- the ``SPYC`` serialized-callable envelope and the
  ``module:qualname`` import target form (upstream ``docs/python-callable-serialization.md``,
  "Payload Envelope"; ``docs/remote-l3-worker-design/protocol.md``, the register-family controls
  and the bootstrap manifest).
"""
