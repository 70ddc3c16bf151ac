"""``simpler.orchestrator`` on the simulator (upstream ``python/simpler/orchestrator.py``)."""

from compat.runtime import Orchestrator

__all__ = ["Orchestrator"]
