"""``simpler.callable_identity`` on the simulator (upstream ``python/simpler/callable_identity.py``)."""

from sim.registry import CallableHandle

__all__ = ["CallableHandle"]
