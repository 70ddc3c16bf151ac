"""Callable registration on the simulator's ``Worker``: opaque handles, refcounts, ownership.

Spec: upstream ``docs/callable-identity-registration.md`` — "Runtime Contracts" (register
returns an opaque ``CallableHandle(hashid, kind, target_namespace)``, not an integer; a handle
built from its public fields is no live registration; submit APIs take only handles; L2 runs a
registered chip handle, L3+ run Python orchestration functions), "Registry Contract" (repeated
registrations share a target-local ``ref_count``; unregistering one handle never invalidates
another live handle with the same hashid), "Dispatch Contract" (a handle must belong to the
Worker that returned it; namespace is validated before the slot is committed) and "Canonical
Descriptor" (``sha256:`` + 64 lowercase hex). The init-time target check follows
``docs/hierarchical-level-runtime.md`` §4 "Recursive Composition" (Python callables run on
SUB or next-level Worker children; a topology with neither cannot resolve them).
"""

from __future__ import annotations

import copy
import operator
import pickle
import re

import numpy as np
import pytest

from reference import get_kernel
from sim import CallableHandle, SimConfig, TaskArgs, TensorArgType, Worker
from sim.errors import ForeignHandle, HandleMutated, InvalidArgument, InvalidState, UnknownCallable

HASHID = re.compile(r"sha256:[0-9a-f]{64}")


def _sub_worker(**kw) -> Worker:
    return Worker(level=3, num_sub_workers=1, sim=SimConfig(seed=0), **kw)


def _noop(args) -> None:
    return None


# ---------------------------------------------------------------------------------------------- the handle


def test_register_returns_an_opaque_handle_with_hashid_kind_and_namespace() -> None:
    w = Worker(level=3, device_ids=[0], num_sub_workers=1)
    hk = w.register(get_kernel("add"))
    hp = w.register(_noop)
    assert isinstance(hk, CallableHandle)
    assert isinstance(hp, CallableHandle)
    assert HASHID.fullmatch(hk.hashid), hk.hashid
    assert HASHID.fullmatch(hp.hashid), hp.hashid
    assert hk.hashid != hp.hashid
    assert (hk.kind, hk.target_namespace) == ("CHIP_CALLABLE", "LOCAL_CHIP")
    assert (hp.kind, hp.target_namespace) == ("PYTHON_SERIALIZED", "LOCAL_PYTHON")


def test_a_handle_built_from_its_fields_is_no_live_registration() -> None:
    w = _sub_worker()
    real = w.register(_noop)
    fake = CallableHandle(real.hashid, real.kind, real.target_namespace)
    assert (fake.hashid, fake.kind, fake.target_namespace) == (real.hashid, real.kind, real.target_namespace)
    assert fake != real
    w.init()
    with pytest.raises(ForeignHandle, match="does not belong to this Worker"):
        w.run(lambda o, a, c: o.submit_sub(fake))
    with pytest.raises(ForeignHandle):
        w.unregister(fake)
    w.run(lambda o, a, c: o.submit_sub(real))  # the real registration is untouched
    w.close()


@pytest.mark.parametrize("fields, bad", [
    (("sha256:" + "0" * 63, "CHIP_CALLABLE", "LOCAL_CHIP"), "hashid"),
    (("SHA256:" + "0" * 64, "CHIP_CALLABLE", "LOCAL_CHIP"), "hashid"),
    ((7, "CHIP_CALLABLE", "LOCAL_CHIP"), "hashid"),
    (("sha256:" + "0" * 64, "KERNEL", "LOCAL_CHIP"), "kind"),
    (("sha256:" + "0" * 64, "CHIP_CALLABLE", "ELSEWHERE"), "target_namespace"),
])
def test_constructing_a_handle_validates_its_fields(fields: tuple, bad: str) -> None:
    with pytest.raises(InvalidArgument, match=bad):
        CallableHandle(*fields)


@pytest.mark.parametrize("field, value", [("hashid", "sha256:" + "0" * 64), ("kind", "CHIP_CALLABLE"),
                                          ("target_namespace", "LOCAL_CHIP")])
def test_a_handle_whose_public_fields_changed_is_rejected_where_used(field: str, value: str) -> None:
    w = _sub_worker()
    h, twin = w.register(_noop), w.register(_noop)
    setattr(h, field, value)
    assert getattr(h, field) == value
    w.init()
    with pytest.raises(HandleMutated, match="no longer match"):
        w.run(lambda o, a, c: o.submit_sub(h))
    with pytest.raises(HandleMutated):
        w.unregister(h)
    w.run(lambda o, a, c: o.submit_sub(twin))  # the shared slot still serves the other handle
    assert [t.outcome.value for t in w.take_record().tasks.values()] == ["COMPLETED"]
    w.close()


def test_private_binding_of_a_handle_cannot_change() -> None:
    h = _sub_worker().register(_noop)
    for name in ("_owner", "_serial", "digest", "name", "extra"):
        with pytest.raises(AttributeError):
            setattr(h, name, None)


def test_handle_fields_cannot_be_deleted() -> None:
    h = _sub_worker().register(_noop)
    with pytest.raises(AttributeError):
        del h.hashid
    assert HASHID.fullmatch(h.hashid)


def test_handle_has_no_integer_value() -> None:
    h = _sub_worker().register(_noop)
    with pytest.raises(TypeError):
        int(h)
    with pytest.raises(TypeError):
        operator.index(h)
    with pytest.raises(TypeError):
        [0, 1][h]  # type: ignore[index]


def test_handle_is_equal_only_to_itself() -> None:
    w = _sub_worker()
    h1 = w.register(_noop)
    h2 = w.register(_noop)
    assert h1.hashid == h2.hashid  # same callable, same content-derived identity
    assert h1 == h1
    assert h1 != h2
    assert h1 != h1.hashid
    assert len({h1, h2}) == 2  # usable as distinct dict/set keys
    clone = copy.copy(h1)
    assert clone != h1
    assert pickle.loads(pickle.dumps(h1)) != h1


def test_identical_registrations_on_two_workers_share_the_hashid_not_the_handle() -> None:
    a, b = _sub_worker(), _sub_worker()
    ha, hb = a.register(_noop), b.register(_noop)
    assert ha.hashid == hb.hashid
    assert ha != hb


# ---------------------------------------------------------------------------------------------- refcounts


def test_duplicate_registrations_share_one_refcount() -> None:
    w = _sub_worker()
    h1 = w.register(_noop)
    h2 = w.register(_noop)
    # Target-local state (white box): one shared slot counted twice, released one handle at a time.
    assert w._registry.refcount(h1) == w._registry.refcount(h2) == 2
    w.unregister(h1)
    assert w._registry.refcount(h2) == 1
    w.register(_noop)
    assert w._registry.refcount(h2) == 2


@pytest.mark.parametrize("drop", ["first", "second"])
@pytest.mark.parametrize("when", ["before_init", "after_init"])
def test_unregistering_one_duplicate_leaves_the_other_runnable(drop: str, when: str) -> None:
    calls: list[float] = []

    def record(args) -> None:
        calls.append(float(args.tensor(0)[0]))

    w = _sub_worker()
    h1 = w.register(record)
    h2 = w.register(record)
    gone, kept = (h1, h2) if drop == "first" else (h2, h1)
    if when == "before_init":
        w.unregister(gone)
        w.init()
    else:
        w.init()
        w.unregister(gone)
    x = np.full(4, 7.0, np.float32)

    def orch(o, args, cfg):
        ta = TaskArgs()
        ta.add_tensor(x)
        o.submit_sub(kept, ta)
        with pytest.raises(UnknownCallable):
            o.submit_sub(gone, TaskArgs())

    w.run(orch)
    assert calls == [7.0]
    rec = w.take_record()
    assert [t.outcome for t in rec.tasks.values()] == ["COMPLETED"]
    w.close()


def test_double_unregister_is_unknown_callable_and_logged() -> None:
    w = _sub_worker()
    h = w.register(_noop)
    w.unregister(h)
    with pytest.raises(UnknownCallable) as info:
        w.unregister(h)
    assert h.hashid[:19] in str(info.value)
    w.init()
    calls = w.take_record().calls
    assert [(c.call, c.ok) for c in calls] == [("register", True), ("unregister", True), ("unregister", False)]
    assert calls[-1].error_class == "UNKNOWN_CALLABLE"
    w.close()


def test_unregistered_handle_cannot_be_submitted() -> None:
    w = _sub_worker()
    h = w.register(_noop)
    w.init()
    w.unregister(h)
    with pytest.raises(UnknownCallable):
        w.run(lambda o, a, c: o.submit_sub(h, TaskArgs()))
    w.close()


# ---------------------------------------------------------------------------------------------- ownership


def test_foreign_handle_is_rejected_at_submit_and_unregister() -> None:
    a, b = _sub_worker(), _sub_worker()
    ha = a.register(_noop)
    hb = b.register(_noop)
    with pytest.raises(ForeignHandle):
        b.unregister(ha)
    b.init()
    with pytest.raises(ForeignHandle):
        b.run(lambda o, args, cfg: o.submit_sub(ha, TaskArgs()))
    # The rejection left b usable and its own handle live.
    b.run(lambda o, args, cfg: o.submit_sub(hb, TaskArgs()))
    outcomes = [t.outcome for t in b.take_record().tasks.values()]
    assert outcomes == ["COMPLETED"]
    a.unregister(ha)  # and a's handle was never touched by b
    b.close()


def test_copied_handle_is_no_live_registration() -> None:
    w = _sub_worker()
    h = w.register(_noop)
    clone = pickle.loads(pickle.dumps(h))
    assert clone.hashid == h.hashid
    with pytest.raises(ForeignHandle):
        w.unregister(clone)
    w.init()
    with pytest.raises(ForeignHandle):
        w.run(lambda o, args, cfg: o.submit_sub(clone, TaskArgs()))
    w.close()


@pytest.mark.parametrize("bogus", ["sha256:" + "0" * 64, 1, None, _noop])
def test_submit_accepts_only_handles(bogus: object) -> None:
    w = _sub_worker()
    w.register(_noop)
    w.init()
    with pytest.raises(InvalidArgument):
        w.run(lambda o, args, cfg: o.submit_sub(bogus, TaskArgs()))
    w.close()


# ---------------------------------------------------------------------------------------------- namespaces


def test_python_callable_registered_at_l2_is_invalid_argument() -> None:
    l2 = Worker(level=2)
    with pytest.raises(InvalidArgument):
        l2.register(_noop)
    # The rejected registration left nothing behind: a kernel still registers and runs.
    h = l2.register(get_kernel("add"))
    l2.init()
    a, b, out = np.ones(8, np.float32), np.full(8, 2.0, np.float32), np.zeros(8, np.float32)
    ta = TaskArgs()
    ta.add_tensor(a)
    ta.add_tensor(b)
    ta.add_tensor(out, TensorArgType.OUTPUT)
    l2.run(h, ta)
    np.testing.assert_array_equal(out, a + b)
    l2.close()


def test_register_of_a_non_callable_is_invalid_argument() -> None:
    with pytest.raises(InvalidArgument):
        _sub_worker().register(42)


def test_sub_handle_to_submit_next_level_at_l3_is_invalid_argument() -> None:
    w = Worker(level=3, device_ids=[0], num_sub_workers=1, sim=SimConfig(data_mode="timing"))
    hs = w.register(_noop)
    hk = w.register(get_kernel("add"))
    w.init()
    seen: list[str] = []

    def orch(o, args, cfg):
        with pytest.raises(InvalidArgument) as info:
            o.submit_next_level(hs, TaskArgs(), worker=0)
        seen.append(str(info.value))
        with pytest.raises(InvalidArgument):
            o.submit_sub(hk, TaskArgs())  # and the other way round

    w.run(orch)
    assert "LOCAL_PYTHON" in seen[0]
    assert w.take_record().tasks == {}  # a rejected submit leaves no task behind
    w.close()


def test_init_fails_for_a_python_callable_with_no_sub_worker() -> None:
    w = Worker(level=3, device_ids=[0])
    h = w.register(_noop)
    with pytest.raises(InvalidState) as info:
        w.init()
    assert h.hashid in str(info.value)
    w.close()
    w.close()  # closing a Worker whose init failed is safe, twice
    with pytest.raises(InvalidState):
        w.run(lambda o, a, c: None)
    with pytest.raises(InvalidState):
        w.init()


def test_init_fails_for_a_chip_kernel_with_no_chip() -> None:
    w = Worker(level=3, num_sub_workers=1)
    w.register(get_kernel("add"))
    with pytest.raises(InvalidState):
        w.init()
    w.close()
    w.close()


def test_init_check_reaches_children() -> None:
    """A bad registration on an L3 child fails the root's init, not a later dispatch."""
    l3 = Worker(level=3, device_ids=[0])
    l3.register(_noop)
    l4 = Worker(level=4)
    l4.register(lambda o, a, c: None)
    l4.add_worker(l3)
    with pytest.raises(InvalidState):
        l4.init()
    l4.close()
    l4.close()


def test_unregistering_the_only_python_callable_lets_init_succeed() -> None:
    w = Worker(level=3, device_ids=[0])
    h = w.register(_noop)
    w.unregister(h)
    w.init()
    w.close()
