"""``rt.codec`` on the hw backend: the SLR3 frame codec of the real ``simpler`` package, adapted.

Spec: upstream ``docs/remote-l3-worker-design/protocol.md`` -- "Frames" (the versioned header and
its rejection rules), "Wire Encoding", "TASK Payload", "CONTROL Payload", "COMPLETION Payload",
"CONTROL_REPLY Payload", "HELLO Payload" and "Bounds and Fuzz Tests" (what a codec must reject).

Which real codec is used: the Python one the package ships, ``simpler.remote_l3_protocol`` (with
the command decoders of ``simpler.global_comm_domain`` for the CommDomain controls). The C++ codec
(``src/common/hierarchical/remote_wire.*``) is compiled into the package's native module, but its
functions have no Python binding and no exported symbol, so it cannot be called from here. Per
direction:

* header: ``remote_l3_protocol.decode_frame`` / ``encode_frame``. The C++ ``decode_frame`` makes the
  same checks in the same order (magic, version, frame type, flags, maximum, exact length), so the
  verdicts also stand for frames the C++ parent receives.
* TASK and CONTROL (parent -> session runner): the session runner decodes these in Python with
  ``decode_task_payload`` and ``decode_control`` plus the per-control command decoder; that is the
  code used here, so these verdicts are the real receiver's.
* HEALTH and SHUTDOWN: no payload is defined for them; the real receivers (the C++ health monitor,
  the Python runner's SHUTDOWN branch) decode the header and never read payload bytes. They are
  decoded here as the header alone, payload kept as raw bytes, exactly as accepting as the runtime.
* HELLO, COMPLETION and CONTROL_REPLY (session runner -> parent): only the C++ parent decodes
  these; the Python package ships their encoders but no decoder. Decoding one raises
  :class:`~sim.backend_api.NotSupportedByBackend` after its header has been checked, rather
  than accepting a payload nobody checked. The same goes for the four buffer controls whose
  command bytes the runner unpacks inline, without a shipped decoder.

A rejection by the real code (``ValueError`` -- including an unknown enum value and bad UTF-8 --,
``struct.error``, ``OverflowError``) becomes :class:`hw_backend.errors.HwProtocolError`, error class
PROTOCOL_ERROR, whose message is the real codec's text unchanged (it seldom names the field the
way tierbed's codec does, and is not rewritten to).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from simpler import global_comm_domain as _gcd
from simpler import remote_l3_protocol as _real
from simpler.remote_l3_protocol import ControlName, FrameHeader, FrameType

from hw_backend.errors import HwProtocolError
from sim.backend_api import NotSupportedByBackend

__all__ = ["ControlName", "FrameHeader", "FrameType", "HwFrame", "decode_frame", "encode_frame"]

#: What the real decoders raise for bytes they refuse.
_REJECTIONS: tuple[type[BaseException], ...] = (ValueError, struct.error, OverflowError)

#: Frame types whose payload only the C++ parent decodes (no Python decoder shipped).
_PARENT_ONLY = {
    FrameType.HELLO: "decode_hello",
    FrameType.COMPLETION: "decode_completion",
    FrameType.CONTROL_REPLY: "decode_control_reply",
}

#: Frame types that carry no defined payload; their receivers look at the header only.
_HEADER_ONLY = frozenset({FrameType.HEALTH, FrameType.SHUTDOWN})


def _register_command(data: bytes) -> Any:
    command = _real.decode_register_callable_command(data)
    if command.callable_kind == _real.CallableKind.CHIP_CALLABLE:
        # The runner decodes the nested chip-callable record before anything else looks at it.
        _real.decode_remote_chip_callable_payload(command.payload)
    return command


#: Per control name, the shipped decoder the session runner applies to its command bytes.
_COMMAND_DECODERS: dict[ControlName, Callable[[bytes], Any]] = {
    ControlName.PREPARE_REGISTER_CALLABLE: _register_command,
    ControlName.COMMIT_REGISTER_CALLABLE: _real.decode_digest_callable_command,
    ControlName.ABORT_REGISTER_CALLABLE: _real.decode_digest_callable_command,
    ControlName.UNREGISTER_CALLABLE: _real.decode_digest_callable_command,
    ControlName.PREPARE_CALLABLE: _real.decode_digest_callable_command,
    ControlName.EXPORT_BUFFER: _real.decode_export_buffer_request,
    ControlName.IMPORT_BUFFER: _real.decode_import_buffer_request,
    ControlName.RELEASE_IMPORT: _real.decode_release_import_request,
    ControlName.COMM_INIT: _gcd.decode_comm_init,
    ControlName.ALLOC_DOMAIN: _gcd.decode_domain_command,
    ControlName.RELEASE_DOMAIN: _gcd.decode_release_command,
    ControlName.COPY_TO_DOMAIN: lambda data: _gcd.decode_copy_command(data, include_data=True),
    ControlName.COPY_FROM_DOMAIN: lambda data: _gcd.decode_copy_command(data, include_data=False),
}


@dataclass(frozen=True)
class HwFrame:
    """A frame the real codec accepted.

    ``header`` is the real ``FrameHeader``; ``payload`` the raw payload bytes (what the real
    ``encode_frame`` takes back); ``body`` the real decoder's record for the payload (``None`` for
    HEALTH / SHUTDOWN); ``command`` the decoded command of a CONTROL frame.
    """

    header: FrameHeader
    payload: bytes
    body: Any = None
    command: Any = None


@contextmanager
def _real_code(stage: str) -> Iterator[None]:
    """Turn a refusal of the real code into a typed PROTOCOL_ERROR that keeps its message."""
    try:
        yield
    except _REJECTIONS as exc:
        raise HwProtocolError(str(exc), stage=stage) from exc


def decode_frame(data: bytes) -> HwFrame:
    """Decode one whole frame with the real codec: header first, then the payload of its type."""
    data = bytes(data)
    with _real_code("header"):
        frame = _real.decode_frame(data)
    ftype = frame.header.frame_type
    if ftype in _HEADER_ONLY:
        return HwFrame(frame.header, frame.payload)
    if ftype in _PARENT_ONLY:
        raise NotSupportedByBackend(
            f"{ftype.name} payloads are decoded only by the real parent's C++ codec ({_PARENT_ONLY[ftype]}), "
            "which has no Python binding; the Python package ships no decoder for them")
    if ftype == FrameType.TASK:
        with _real_code("TASK payload"):
            return HwFrame(frame.header, frame.payload, _real.decode_task_payload(frame.payload))
    with _real_code("CONTROL payload"):
        control = _real.decode_control(frame.payload)
    decoder = _COMMAND_DECODERS.get(control.control_name)
    if decoder is None:
        raise NotSupportedByBackend(
            f"the real session runner unpacks {control.control_name.name} command bytes inline; "
            "the package ships no decoder for them")
    with _real_code(f"CONTROL {control.control_name.name} command"):
        command = decoder(control.command_bytes)
    return HwFrame(frame.header, frame.payload, control, command)


def encode_frame(frame: Any) -> bytes:
    """Encode ``frame`` (``.header`` with the header fields, ``.payload`` as bytes) with the real codec.

    The Python package has no encoder for TASK or CONTROL payload records, so only raw payload
    bytes (what :func:`decode_frame` keeps) can be encoded here.
    """
    payload = frame.payload
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise NotSupportedByBackend(
            f"the hw codec encodes raw payload bytes only, not a {type(payload).__name__} record")
    h = frame.header
    with _real_code("header"):
        header = FrameHeader(FrameType(int(h.frame_type)), int(h.session_id), int(h.worker_id),
                             int(h.sequence), flags=int(getattr(h, "flags", 0)))
        return _real.encode_frame(header, bytes(payload))
