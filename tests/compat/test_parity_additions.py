"""Behaviour of the upstream names the facade gained to close parity gaps (tests/parity).

Each test exercises what a name does on the simulator, not only that it exists: the Buffer ABI
(``simpler.buffer``, docs/buffer-abi.md upstream), the remote-L3 wire API
(``simpler.remote_l3_protocol``) and the smaller modules.
"""

import socket
import struct
from types import SimpleNamespace

import numpy as np
import pytest

from compat.runtime import CallConfig, TaskArgs, Worker
from compat.simpler import buffer as B
from compat.simpler import remote_l3_protocol as P
from compat.simpler import task_interface as TI
from sim.errors import InvalidArgument, InvalidState, ProtocolError
from sim.remote import wire as simwire
from sim.types import DataType

NONCE = bytes(range(1, 9))


# ----------------------------------------------------------------------------- simpler.buffer


def test_buffer_enums_keep_upstream_values():
    assert (B.AccessMode.READ, B.AccessMode.WRITE, B.AccessMode.READWRITE) == (0, 1, 2)
    assert (B.AddressSpace.HOST, B.AddressSpace.DEVICE) == (0, 1)
    assert [k.name for k in B.BackendKind] == ["FORK_SHM", "POSIX_SHM", "VMM_WINDOW", "REMOTE_SIDECAR",
                                               "DEVICE_MALLOC", "FORK_COW"]
    assert B.Tensor is TI.Tensor  # one tensor class under both modules, as upstream


def test_canonical_identity_is_validated_and_keys_by_value():
    a = B.CanonicalIdentity(NONCE, 5, 1)
    assert a == B.CanonicalIdentity(bytearray(NONCE), 5, 1) and hash(a) == hash(B.CanonicalIdentity(NONCE, 5, 1))
    assert a != B.CanonicalIdentity(NONCE, 5, 2)  # a bumped generation is another backing
    with pytest.raises(ValueError, match="8 bytes"):
        B.CanonicalIdentity(b"short", 5, 1)
    with pytest.raises(ValueError, match="reserved"):
        B.CanonicalIdentity(NONCE, 5, 0)
    with pytest.raises(ValueError, match="buffer_id"):
        B.CanonicalIdentity(NONCE, -1, 1)


def test_buffer_descriptor_enforces_the_backend_body_table():
    ident = B.CanonicalIdentity(NONCE, 1, 1)

    def desc(kind, body, access=B.AccessMode.READWRITE):
        return B.BufferDescriptor(ident, B.AddressSpace.HOST, 0, access, kind, 64, body)

    assert desc(B.BackendKind.POSIX_SHM, b"psm_1").body == b"psm_1"
    for bad in (b"", b"a/b", b"x" * 33):
        with pytest.raises(ValueError):
            desc(B.BackendKind.POSIX_SHM, bad)
    ptr = (0x1000).to_bytes(8, "little")
    assert desc(B.BackendKind.DEVICE_MALLOC, ptr).backend_kind == B.BackendKind.DEVICE_MALLOC
    with pytest.raises(ValueError, match="non-zero u64"):
        desc(B.BackendKind.FORK_SHM, bytes(8))
    with pytest.raises(ValueError, match="non-zero u64"):
        desc(B.BackendKind.VMM_WINDOW, ptr[:4])
    with pytest.raises(ValueError, match="READ"):
        desc(B.BackendKind.FORK_COW, ptr)
    assert desc(B.BackendKind.FORK_COW, ptr, B.AccessMode.READ).access == B.AccessMode.READ
    with pytest.raises(ValueError, match="no body"):
        desc(B.BackendKind.REMOTE_SIDECAR, b"x")


def test_worker_paths_intern_per_process_and_nonces_are_fresh():
    pid = B.intern_worker_path("L4/0/L3/1")
    assert B.intern_worker_path("L4/0/L3/1") == pid and B.worker_path_for_id(pid) == "L4/0/L3/1"
    assert B.intern_worker_path("") == 0 and B.worker_path_for_id(987654) == "<path#987654>"
    a, b = B.mint_owner_instance_id(), B.mint_owner_instance_id()
    assert len(a) == 8 and a != b


def test_host_shared_buffer_round_trips_through_the_import_registry():
    buf = B.create_host_shared_buffer(64, NONCE, 7, owner_worker_path="L3")
    assert isinstance(buf, B.Buffer) and buf.backend_kind == B.BackendKind.POSIX_SHM
    desc = buf.to_descriptor()
    assert desc.owner_worker_path == "L3" and desc.nbytes == 64
    np.frombuffer(buf.shm.buf, np.float32)[:] = 1.5
    t = buf.tensor((4, 4), DataType.FLOAT32)
    assert isinstance(t, B.Tensor) and t.array.sum() == 24.0
    assert buf.tensor((4, 4), DataType.FLOAT32, (4, 1)).shape == (4, 4)
    with pytest.raises(InvalidArgument, match="strided"):
        buf.tensor((4, 4), DataType.FLOAT32, (1, 4))

    reg = B.ImportRegistry(B.ImportContext(is_host_endpoint=True))
    imported = reg.materialize(desc)
    assert reg.materialize(desc) is imported and reg.resolve(desc.identity) is imported  # map-once
    arg = B.MappedArg(imported, 4, (3,), (1,), int(DataType.FLOAT32))
    np.frombuffer(arg.buffer, np.float32)[0] = 9.0  # writes land in the owner's bytes
    assert np.frombuffer(buf.shm.buf, np.float32)[1] == 9.0
    other = B.BufferDescriptor(desc.identity, desc.address_space, 0, desc.access, desc.backend_kind, 32, desc.body)
    with pytest.raises(ValueError, match="different descriptor"):
        reg.materialize(other)
    reg.unregister(desc.identity)
    with pytest.raises(KeyError):
        reg.resolve(desc.identity)

    buf.close()
    buf.close()  # idempotent
    assert buf.closed and buf.unlinked
    with pytest.raises(ValueError, match="released"):
        buf.to_descriptor()
    with pytest.raises(FileNotFoundError, match="released"):
        B.ImportRegistry(B.ImportContext(True)).materialize(desc)


def test_read_only_access_gives_a_read_only_view_and_args_count():
    buf = B.create_host_shared_buffer(16, NONCE, 8, access=B.AccessMode.READ)
    reg = B.ImportRegistry(B.ImportContext(True))
    arg = B.MappedArg(reg.materialize(buf.to_descriptor()), 0, (4,), (1,), int(DataType.FLOAT32))
    assert arg.buffer.readonly
    args = B.MappedArgs([arg], (3, 4))
    assert len(args) == args.tensor_count() == 1 and args[0] is arg
    assert args.scalar_count() == 2 and args.scalar(1) == 4
    fake = SimpleNamespace(tensor_count=lambda: 1, tensor=lambda i: SimpleNamespace(buffer=buf.to_descriptor()))
    assert B.ImportRegistry(B.ImportContext(True)).materialize_args(fake) == {buf.identity: (0, 0)}
    reg.close()
    buf.close()


def test_device_backings_are_refused_on_host_and_foreign_endpoints():
    dev = B.wrap_device_malloc(0xABC000, 256, NONCE, 3, owner_worker_path="L2", owner_worker_id=1)
    assert (dev.address_space, dev.base, dev.owner_worker_id) == (B.AddressSpace.DEVICE, 0xABC000, 1)
    desc = dev.to_descriptor()
    assert int.from_bytes(desc.body, "little") == 0xABC000
    with pytest.raises(ValueError, match=r"UNSUPPORTED_ENDPOINT_RELATION.*host endpoint"):
        B.ImportRegistry(B.ImportContext(True)).materialize(desc)
    with pytest.raises(ValueError, match="another owner"):
        B.ImportRegistry(B.ImportContext(False, b"\xff" * 8)).materialize(desc)
    imported = B.ImportRegistry(B.ImportContext(False, NONCE)).materialize(desc)
    assert imported.base == 0xABC000 and imported.shm is None


def test_fork_wrap_re_export_and_remote_identity():
    cow = B.wrap_fork_inherited(0x7000, 32, NONCE, 4)
    assert cow.backend_kind == B.BackendKind.FORK_COW and cow.access == B.AccessMode.READ
    with pytest.raises(ValueError, match="READ"):
        B.wrap_fork_inherited(0x7000, 32, NONCE, 4, access=B.AccessMode.READWRITE)
    shared = B.wrap_fork_inherited(0x7000, 32, NONCE, 5, access=B.AccessMode.READWRITE,
                                   backend_kind=B.BackendKind.FORK_SHM)
    again = B.re_export(shared.to_descriptor())
    assert again.identity == shared.identity and again.body == shared.body and again.base == 0
    assert again.to_descriptor() == shared.to_descriptor()

    ident = B.remote_backing_identity(3, 9, 0)
    assert ident.owner_instance_id == (3).to_bytes(8, "little") and ident.generation == 1
    with pytest.raises(OverflowError):
        B.remote_backing_identity(-1, 9, 1)
    t = B.remote_sidecar_tensor((2, 3), DataType.FLOAT32, 24, 3, 9, 2, B.AddressSpace.HOST)
    assert t.buffer.backend_kind == B.BackendKind.REMOTE_SIDECAR and t.strides == (3, 1)
    assert t.buffer.owner_instance_id == ident.owner_instance_id and t.buffer.generation == 2
    assert simwire.decode_tensor(simwire.encode_tensor(t)) == t  # the remote codec accepts it
    with pytest.raises(ProtocolError, match="exceeds"):
        B.remote_sidecar_tensor((2, 3), DataType.FLOAT32, 8, 3, 9, 2, B.AddressSpace.HOST)


def test_host_ptr_nbytes_reads_address_and_length():
    arr = np.zeros(10, np.float32)
    assert B.host_ptr_nbytes(arr) == (arr.ctypes.data, 40)
    assert B.host_ptr_nbytes(bytearray(7))[1] == 7
    torch_like = SimpleNamespace(data_ptr=lambda: 1234, numel=lambda: 5, element_size=lambda: 2)
    assert B.host_ptr_nbytes(torch_like) == (1234, 10)
    with pytest.raises(TypeError, match="writable"):
        B.host_ptr_nbytes(b"read-only")


def test_an_abi_buffer_names_task_args_on_the_simulator():
    seen = []
    w = Worker(level=3, platform="a2a3sim", device_ids=[0], num_sub_workers=1)
    sub = w.register(lambda args: seen.append(float(args.tensor(0)[1])))
    w.init()
    try:
        buf = B.create_host_shared_buffer(16, NONCE, 11)
        np.frombuffer(buf.shm.buf, np.float32)[:] = [1.0, 2.0, 3.0, 4.0]

        def orch(o, _args, cfg):
            t = TaskArgs()
            t.add_tensor(buf.tensor((4,), DataType.FLOAT32))
            o.submit_sub(sub, t)

        w.run(orch, args=None, config=CallConfig())
        assert seen == [2.0]
    finally:
        w.close()


# ----------------------------------------------------------------------------- simpler.remote_l3_protocol


def _header(ftype=P.FrameType.HEALTH, seq=1, flags=0):
    return P.FrameHeader(ftype, 42, 0, seq, 0, flags)


def test_protocol_constants_match_upstream():
    assert (P.PROTOCOL_VERSION, P.MAGIC, P.FRAME_HEADER_BYTES) == (3, b"SLR3", 40)
    assert (P.REMOTE_BUFFER_ACCESS_READ, P.REMOTE_BUFFER_ACCESS_WRITE, P.REMOTE_BUFFER_ACCESS_READ_WRITE) == (1, 2, 3)
    assert P.CALLABLE_HASH_DIGEST_BYTES == 32 and P.MAX_BUFFER_DESCRIPTOR_BODY_BYTES == 32
    assert P.FRAME_FLAGS_KNOWN == P.FRAME_FLAG_GROUP_TARGET == 1 and P.HOST_TCP_TRANSPORT_PROFILE == "host_tcp"
    assert P.MAX_FRAME_PAYLOAD_BYTES == 16 * 1024 * 1024 and P.MAX_TENSORS == P.MAX_SCALARS == 4096
    assert P.ReadyState.READY == 1 and P.CallableKind.CHIP_CALLABLE.name == "CHIP_CALLABLE"


def test_frames_carry_payload_bytes_and_validate_the_header():
    data = P.encode_frame(_header(P.FrameType.COMPLETION, seq=7, flags=P.FRAME_FLAG_GROUP_TARGET), b"abc")
    assert data[:4] == b"SLR3" and len(data) == 43
    frame = P.decode_frame(data)
    assert frame.payload == b"abc" and frame.header == P.FrameHeader(P.FrameType.COMPLETION, 42, 0, 7, 3, 1)
    with pytest.raises(ValueError, match="payload"):
        P.decode_frame(data + b"x")
    with pytest.raises(ValueError, match="magic"):
        P.decode_frame(b"XXXX" + data[4:])
    with pytest.raises(ValueError, match="flag"):
        P.encode_frame(_header(flags=4), b"")
    bad_version = data[:4] + struct.pack("<I", 2) + data[8:]
    with pytest.raises(ValueError, match="version"):
        P.decode_frame(bad_version)


def test_frames_travel_over_a_socket():
    a, b = socket.socketpair()
    try:
        P.send_frame(a, _header(P.FrameType.HELLO, seq=0), b"hello-bytes")
        P.send_frame(a, _header())
        first, second = P.read_frame(b), P.read_frame(b)
        assert first.payload == b"hello-bytes" and first.header.frame_type == P.FrameType.HELLO
        assert second.payload == b"" and second.header.payload_bytes == 0
        a.sendall(b"12")
        assert P.read_exact(b, 2) == b"12"
        a.close()
        with pytest.raises(EOFError):
            P.read_exact(b, 1)
    finally:
        a.close()
        b.close()


def test_hello_and_completion_encode_as_the_simulator_decodes():
    hello = P.HelloPayload(42, 3, P.PROTOCOL_VERSION, "sim", 0, P.ReadyState.READY)
    decoded = simwire.decode_hello(P.encode_hello(hello))
    assert (decoded.session_id, decoded.worker_id, decoded.comm_profile) == (42, 3, "sim")
    done = simwire.decode_completion(P.encode_completion(9, 0, ""))
    assert (done.sequence, done.error_code) == (9, 0)
    assert simwire.decode_completion(P.encode_completion(9, 5, "boom")).error_message == "boom"


def test_register_and_digest_commands_round_trip():
    digest = bytes(range(32))
    data = P.encode_register_callable_command(P.RemoteRegistryTarget.INNER_L3_WORKER, P.CallableKind.PYTHON_IMPORT,
                                              digest, 1, b"pkg.mod:fn")
    cmd = P.decode_register_callable_command(data)
    assert cmd == P.RegisterCallableCommand(P.RemoteRegistryTarget.INNER_L3_WORKER, P.CallableKind.PYTHON_IMPORT,
                                            digest, 1, b"pkg.mod:fn")
    d = P.decode_digest_callable_command(P.encode_digest_callable_command(
        P.RemoteRegistryTarget.REMOTE_TASK_DISPATCHER, P.CallableKind.CHIP_CALLABLE, digest))
    assert d.digest == digest and d.callable_kind == P.CallableKind.CHIP_CALLABLE
    with pytest.raises(ValueError):
        P.encode_digest_callable_command(P.RemoteRegistryTarget.INNER_L3_WORKER, P.CallableKind.CHIP_CALLABLE, b"x")
    control = simwire.encode_control(simwire.ControlPayload(
        P.ControlName.PREPARE_REGISTER_CALLABLE,
        simwire.RegisterCallableCommand(cmd.target_registry, cmd.callable_kind, digest, b"pkg.mod:fn")))
    payload = P.decode_control(control)
    assert payload.control_name == P.ControlName.PREPARE_REGISTER_CALLABLE and payload.command_bytes == data


def test_chip_callable_payload_round_trips():
    blob = b"\x01\x02\x03"
    import hashlib

    p = P.RemoteChipCallablePayload(b"descriptor", P.ChipCallableBlobLocation.INLINE_BLOB, len(blob),
                                    hashlib.sha256(blob).digest(), blob, b"")
    assert P.decode_remote_chip_callable_payload(P.encode_remote_chip_callable_payload(p)) == p


def _export():
    return P.ExportBufferResult(1, 5, 1, P.RemoteAddressSpace.REMOTE_WINDOW, 0, 64, 77, 0x9000, 11, 0,
                                P.REMOTE_BUFFER_ACCESS_READ_WRITE, "host_tcp", b"")


def test_buffer_export_import_controls_round_trip():
    res = _export()
    assert P.decode_export_buffer_result(P.encode_export_buffer_result(res)) == res
    req = simwire.encode_command(P.ControlName.EXPORT_BUFFER,
                                 P.ExportBufferRequest(1, 5, 1, 0, 64, P.REMOTE_BUFFER_ACCESS_READ, "host_tcp"))
    assert P.decode_export_buffer_request(req).nbytes == 64
    imp_req = simwire.encode_command(P.ControlName.IMPORT_BUFFER, simwire.ImportBufferRequest(
        2, simwire.AccessFlags.READ, P._convert(res, simwire.ExportBufferResult)))
    decoded = P.decode_import_buffer_request(imp_req)
    assert decoded.importer_worker_id == 2 and decoded.export_desc == res
    imp = P.ImportBufferResult(2, 1, 5, 1, 3, P.RemoteAddressSpace.REMOTE_WINDOW, 0, 64, 0x9000, 11, 0,
                               P.REMOTE_BUFFER_ACCESS_READ, "host_tcp", b"")
    back = simwire.decode_result(P.ControlName.IMPORT_BUFFER, P.encode_import_buffer_result(imp))
    assert (back.import_id, back.remote_addr) == (3, 0x9000)
    rel = simwire.encode_command(P.ControlName.RELEASE_IMPORT, P.ReleaseImportRequest(2, 1, 5, 1, 3))
    assert P.decode_release_import_request(rel).import_id == 3
    with pytest.raises(ValueError):  # an export needs a live identity
        P.encode_export_buffer_result(P.ExportBufferResult(1, 0, 1, P.RemoteAddressSpace.REMOTE_WINDOW, 0, 64, 77,
                                                           0, 0, 0, 1, "host_tcp", b""))


def test_control_reply_carries_a_checked_result():
    data = P.encode_control_reply(4, P.ControlName.EXPORT_BUFFER, 1, 0, "", P.encode_export_buffer_result(_export()))
    reply = simwire.decode_control_reply(data)
    assert reply.sequence == 4 and reply.result.export_id == 77
    failed = simwire.decode_control_reply(P.encode_control_reply(5, P.ControlName.RELEASE_IMPORT, 1, 3, "gone"))
    assert (failed.error_code, failed.error_message, failed.result) == (3, "gone", None)
    with pytest.raises(ValueError):
        P.encode_control_reply(6, P.ControlName.EXPORT_BUFFER, 1, 0, "", b"\x00")


def test_task_payload_decodes_to_upstream_shaped_records():
    t = B.remote_sidecar_tensor((4,), DataType.FLOAT32, 16, 1, 5, 1, B.AddressSpace.HOST)
    desc = P.RemoteTensorDesc(P.RemoteAddressSpace.REMOTE_DEVICE, 1, 5, 0, 16, 0x100, 0, 1, 0, 0, 0)
    args = simwire.RemoteTaskArgs((t, t), (desc, None), (7,), b"")
    cfg = simwire.CallConfigWire(aicpu_thread_num=2)
    payload = simwire.encode_task_payload(simwire.TaskPayload(bytes(32), cfg, args))
    task = P.decode_task_payload(payload)
    assert isinstance(task.config, CallConfig) and task.config.aicpu_thread_num == 2
    assert task.args.remote_desc == (P.RemoteTensorSidecar(True, desc), P.RemoteTensorSidecar(False, None))
    assert task.args.tensors == (t, t) and task.args.scalars == (7,)
    assert P.decode_remote_task_args(simwire.encode_remote_task_args(args)) == task.args

    # the record decoders take a standalone record or a cursor they advance
    record = simwire.encode_tensor(t)
    assert P.decode_tensor(record) == t
    cursor = SimpleNamespace(data=record + record, offset=0)
    assert P.decode_tensor(cursor) == t and cursor.offset == len(record)
    assert P.decode_remote_tensor_desc(simwire.encode_remote_tensor_desc(desc)) == desc
    cfg_bytes = simwire.encode_call_config(simwire.CallConfigWire(enable_pmu=1, output_prefix="out"))
    got = P.decode_call_config(cfg_bytes)
    assert (got.enable_pmu, got.output_prefix) == (1, "out")
    with pytest.raises(ValueError, match="trailing"):
        P.decode_call_config(cfg_bytes + b"\x00")


# ----------------------------------------------------------------------------- simpler.callable_identity


def _lp(*parts):
    out = b""
    for p in parts:
        data = p.encode() if isinstance(p, str) else p
        out += struct.pack("<I", len(data)) + data
    return out


def test_python_import_descriptor_and_hashid_helpers():
    from compat.simpler import callable_identity as CI

    desc = CI.build_python_import_descriptor("pkg.mod", "Cls.run")
    assert desc == struct.pack("<II", 1, 3) + _lp("pkg.mod", "Cls.run")  # version 1, kind PYTHON_IMPORT
    hashid = CI.compute_callable_hashid(desc)
    assert hashid.startswith("sha256:") and len(CI.hashid_to_digest(hashid)) == CI.CALLABLE_HASH_DIGEST_BYTES == 32
    import hashlib

    assert CI.hashid_to_digest(hashid) == hashlib.sha256(desc).digest()
    assert CI.validate_hashid(hashid) is None
    for bad in ("md5:" + "0" * 64, "sha256:" + "A" * 64, "sha256:" + "0" * 63):
        with pytest.raises(ValueError, match="HASHID_FORMAT_INVALID"):
            CI.validate_hashid(bad)
    with pytest.raises(TypeError):
        CI.validate_hashid(b"sha256:00")
    assert CI.parse_python_import_target(" pkg.mod:Cls.run\n") == ("pkg.mod", "Cls.run")
    for bad in ("pkg.mod", ".rel:fn", "pkg:a:b", "pkg:outer.<locals>.fn", "pkg:1bad"):
        with pytest.raises(ValueError):
            CI.parse_python_import_target(bad)
    with pytest.raises(ValueError):
        CI.build_python_import_descriptor("pkg", "<locals>.fn")


def test_python_serialized_payload_and_descriptor():
    from compat.simpler import callable_identity as CI

    body = b"pickled-bytes"
    envelope = b"SPYC" + struct.pack("<BBHQ", 1, 1, 0, len(body)) + body
    assert CI.parse_python_callable_payload(envelope) == (1, 1, body)
    import hashlib

    assert CI.build_python_serialized_descriptor(envelope) == (struct.pack("<IIII", 1, 2, 1, 1)
                                                               + _lp(hashlib.sha256(body).digest()))
    for bad in (b"SPY", b"XXXX" + envelope[4:], envelope[:4] + b"\x02" + envelope[5:], envelope[:-1]):
        with pytest.raises(ValueError):
            CI.parse_python_callable_payload(bad)
    assert set(__import__("typing").get_args(CI.CallableKindName)) == {"CHIP_CALLABLE", "PYTHON_SERIALIZED",
                                                                       "PYTHON_IMPORT"}
    assert set(__import__("typing").get_args(CI.TargetNamespaceName)) == {"LOCAL_CHIP", "LOCAL_PYTHON",
                                                                          "REMOTE_TASK_DISPATCHER"}


def test_chip_descriptor_names_the_handle_register_returns(tmp_path):
    from compat.callables import ArgDirection, ChipCallable
    from compat.simpler import callable_identity as CI
    from tests.compat.test_api import _vector_add

    chip = _vector_add(tmp_path)
    assert isinstance(chip, ChipCallable)
    schema = CI.build_chip_signature_schema(chip)
    assert schema == struct.pack("<5I", 1, 3, ArgDirection.IN, ArgDirection.IN, ArgDirection.OUT)
    desc = CI.build_chip_callable_descriptor(target=chip, platform="a2a3sim", runtime="tensormap_and_ringbuffer")
    assert desc[:8] == struct.pack("<II", 1, 1) and desc[8:] .startswith(_lp("a2a3", "a2a3sim"))
    w = Worker(level=2, platform="a2a3sim", runtime="tensormap_and_ringbuffer", device_id=0)
    try:
        handle = w.register(chip)
        assert handle.hashid == CI.compute_callable_hashid(desc)
    finally:
        w.close()


# ----------------------------------------------------------------------------- simpler.worker_level


def test_worker_level_words_and_span_prefix():
    from compat.simpler.worker_level import WorkerLevel, span_prefix

    assert [(m.name, int(m)) for m in WorkerLevel] == [("core", 0), ("chip", 2), ("node", 3), ("network1", 4),
                                                       ("network2", 5), ("network3", 6)]
    assert span_prefix(3) == "node" and span_prefix(WorkerLevel.network1) == "network1"
    assert WorkerLevel.node >= 3  # an int wherever a level is compared
    with pytest.raises(ValueError, match="no span prefix for worker level 1"):
        span_prefix(1)


# ----------------------------------------------------------------------------- simpler.task_interface


def test_task_interface_constants_states_and_scalars():
    import ctypes

    from sim.task import TaskState as SimTaskState

    assert TI.MAX_TENSOR_DIMS == 5 and TI.RemoteAddressSpace is P.RemoteAddressSpace
    assert [(m.name, int(m)) for m in TI.TaskState] == [("FREE", 0), ("PENDING", 1), ("READY", 2), ("RUNNING", 3),
                                                       ("COMPLETED", 4), ("FAILED", 5), ("CONSUMED", 6),
                                                       ("BUILDING", 7)]
    assert TI.TaskState[SimTaskState.BUILDING.name] == 7  # the engine's states map by name
    assert TI.scalar_to_uint64(1.0) == 0x3F800000  # a float goes as IEEE single precision
    assert TI.scalar_to_uint64(ctypes.c_double(1.0)) == 0x3FF0000000000000
    assert TI.scalar_to_uint64(ctypes.c_float(-2.0)) == 0xC0000000
    assert TI.scalar_to_uint64(-1) == TI.scalar_to_uint64(ctypes.c_int32(-1)) == 2**64 - 1
    assert TI.scalar_to_uint64(np.int64(7)) == 7 and TI.scalar_to_uint64(True) == 1


def test_remote_tensor_ref_takes_upstreams_fields():
    from sim import SimConfig
    from sim import Worker as SimWorker
    from sim.remote.spec import RemoteWorkerSpec

    w = SimWorker(level=4, sim=SimConfig(seed=5))
    rid = w.add_remote_worker(RemoteWorkerSpec("127.0.0.1:9100", "a2a3sim", device_ids=(0,)))
    w.init()
    try:
        h = w.remote_malloc(worker=rid, nbytes=64)
        r = TI.RemoteTensorRef(h, 16, (4,), DataType.FLOAT32, 16)
        assert (r.offset, r.shape, r.nbytes) == (16, (4,), 16) and isinstance(r, TI.RemoteTensorRef)
        with pytest.raises(InvalidArgument, match="nbytes"):
            TI.RemoteTensorRef(h, 0, (4,), DataType.FLOAT32, 8)
        with pytest.raises(InvalidArgument, match="HOST_INLINE"):
            TI.RemoteTensorRef(h, 0, (4,), DataType.FLOAT32, None, b"\0" * 16)
        with pytest.raises(InvalidArgument, match="exceeds"):
            TI.RemoteTensorRef(h, 60, (4,), DataType.FLOAT32)
        inline = TI.RemoteTensorRef.host_inline(b"\0" * 8, shape=(2,), dtype=DataType.FLOAT32)
        again = TI.RemoteTensorRef(inline.handle, 0, (2,), DataType.FLOAT32, 8, b"\1" * 8)
        assert again.is_inline and again.nbytes == 8 and again._payload == b"\1" * 8
        t = TaskArgs()
        t.add_tensor(r)
        assert t.tensor_count() == 1
    finally:
        w.close()


# ----------------------------------------------------------------------------- orchestrator, worker, remote session

_SEEN_INNER: list = []


def remote_inner_lookup(orch, args, config) -> None:
    """A remote L3 orchestration (``RemoteCallable`` target): looks its inner ``add`` handle up by hashid."""
    from compat.simpler.remote_l3_session import get_inner_handle
    from sim.remote.session import find_inner_handle

    add = find_inner_handle("add")
    by_hashid = get_inner_handle(hashid=add.hashid)
    by_hex = get_inner_handle(add.hashid.removeprefix("sha256:"))
    _SEEN_INNER.append((by_hashid is add, by_hex is add))


def test_get_inner_handle_takes_a_hashid_with_or_without_prefix():
    from compat.simpler.remote_l3_session import get_inner_handle
    from reference import get_kernel
    from sim import SimConfig
    from sim import TaskArgs as SimTaskArgs
    from sim import Worker as SimWorker
    from sim.errors import InvalidArgument as SimInvalidArgument
    from sim.remote.spec import RemoteCallable, RemoteWorkerSpec

    with pytest.raises(SimInvalidArgument, match="only valid inside"):
        get_inner_handle("sha256:" + "0" * 64)
    _SEEN_INNER.clear()
    w = SimWorker(level=4, sim=SimConfig(seed=5))
    rid = w.add_remote_worker(RemoteWorkerSpec("127.0.0.1:9100", "a2a3sim", device_ids=(0,)))
    w.register(get_kernel("add"))
    h = w.register(RemoteCallable("tests.compat.test_parity_additions:remote_inner_lookup"), workers=[rid])
    w.init()
    try:
        w.run(lambda o, _a, _c: o.submit_next_level(h, SimTaskArgs(), worker=rid))
    finally:
        w.close()
    assert _SEEN_INNER == [(True, True)]


def test_orchestrator_reports_committed_device_memory_and_unregister_takes_upstreams_name():
    w = Worker(level=3, platform="a2a3sim", device_ids=[0, 1], num_sub_workers=1)
    sub = w.register(lambda args: None)
    w.init()
    seen = []
    try:
        def orch(o, _args, _cfg):
            before = o.committed_device_memory(1)
            buf = o.malloc(1, 256)
            seen.append((before, o.committed_device_memory(1), o.committed_device_memory(0)))
            o.free(buf)
            seen.append(o.committed_device_memory(1))

        w.run(orch, args=None, config=CallConfig())
        assert seen == [(0, 256, 0), 0]
        w.unregister(handle_or_slot=sub)
        with pytest.raises(KeyError, match="unregistered"):  # upstream: KeyError for a handle not registered
            w.unregister(sub)
    finally:
        w.close()


def test_alloc_shared_tensor_and_release_buffer_follow_the_run_being_built():
    seen = []
    w = Worker(level=3, platform="a2a3sim", device_ids=[0], num_sub_workers=1)
    sub = w.register(lambda args: seen.append(float(args.tensor(0)[0])))
    w.init()
    try:
        with pytest.raises(InvalidState, match="orchestration context"):
            w.alloc_shared_tensor((4,), DataType.FLOAT32)
        named, spare = w.create_buffer(16), w.create_buffer(16)
        np.frombuffer(named.shm.buf, np.float32)[:] = 7.0

        def orch(o, _args, _cfg):
            inter = w.alloc_shared_tensor((4,), DataType.FLOAT32)
            assert inter.nbytes == 16
            t = TaskArgs()
            t.add_tensor(named.tensor((4,), DataType.FLOAT32))
            o.submit_sub(sub, t)
            with pytest.raises(RuntimeError, match="in-flight run"):
                w.release_buffer(named)
            w.release_buffer(spare)  # not named by this run: released at once
            assert spare.closed

        w.run(orch, args=None, config=CallConfig())
        assert seen == [7.0] and not named.closed
        w.release_buffer(named)  # the run is complete
        w.release_buffer(named)  # idempotent
        assert named.closed
        with pytest.raises(TypeError, match="Buffer"):
            w.release_buffer(np.zeros(4))
    finally:
        w.close()


def test_parse_platform_splits_arch_and_variant():
    from compat.simpler_setup import parse_platform

    assert [parse_platform(p) for p in ("a2a3", "a2a3sim", "a5", "a5sim")] == [
        ("a2a3", "onboard"), ("a2a3", "sim"), ("a5", "onboard"), ("a5", "sim")]
    for bad in ("", "a3", "A2A3sim"):
        with pytest.raises(ValueError):
            parse_platform(bad)
