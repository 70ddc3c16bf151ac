"""The hw backend: drives the real runtime (``import simpler``) and injects real faults into it.

Not implemented yet; it arrives with the conformance work (case catalog, runner, reports).
Nothing in the project imports it today.
"""
