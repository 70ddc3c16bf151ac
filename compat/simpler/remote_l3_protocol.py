"""``simpler.remote_l3_protocol`` on the simulator: the transport-profile names scripts use."""

from compat.names import HOST_TCP_TRANSPORT_PROFILE

__all__ = ["HOST_TCP_TRANSPORT_PROFILE"]
