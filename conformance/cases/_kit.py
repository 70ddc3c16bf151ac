"""Small builders the case modules share (no backend ``if``s: only ``rt`` names)."""

from __future__ import annotations

import time
from typing import Any

from sim import modeled_duration

N = 16  # default vector length of functional cases
#: How long the hold SUB callables take: they sleep that long for real and are modeled as taking it,
#: so cases about order in time read the same on every backend that observes time.
LONG_S, SHORT_S = 0.4, 0.06
#: A hold that outlasts two gates and their dispatch on the real runtime (about 0.2 s each there).
LONGEST_S = 1.5


class Boom(Exception):
    """What a deliberately failing SUB callable or orchestration function raises."""


def boom(args: Any) -> None:
    raise Boom("sub callable failed on purpose")


def noop(args: Any) -> None:
    return None


def fill_from_scalar(args: Any) -> None:
    """SUB callable: fill tensor 0 with scalar 0 (shows the callee saw its own member's args)."""
    out = args.tensor(0)
    if out is not None:
        out[...] = args.scalar(0)


def fail_if_one(args: Any) -> None:
    if args.scalar(0) == 1:
        raise Boom("member 1 failed on purpose")


def targs(rt: Any, *pairs: tuple[Any, Any], scalars: tuple[Any, ...] = ()) -> Any:
    """TaskArgs from (tensor, tag) pairs and scalars."""
    ta = rt.TaskArgs()
    for tensor, tag in pairs:
        ta.add_tensor(tensor, tag)
    for s in scalars:
        ta.add_scalar(s)
    return ta


def add_args(rt: Any, a: Any, b: Any, out: Any, out_tag: Any = None) -> Any:
    t = rt.TensorArgType
    return targs(rt, (a, t.INPUT), (b, t.INPUT), (out, t.OUTPUT if out_tag is None else out_tag))


def remote_spec(rt: Any, port: int, **kw: Any) -> Any:
    kw.setdefault("device_ids", (0,))
    return rt.RemoteWorkerSpec(f"127.0.0.1:{port}", "a2a3sim", **kw)


def remote_l4(rt: Any, n: int = 2, *, local: bool = False, faults: Any = None, register_add: bool = False) -> Any:
    """An L4 with ``n`` remote L3s (and optionally one local L3 first); returns (w, local_ids, remote_ids)."""
    rt.require("remote")
    w = rt.Worker(4, num_sub_workers=1, faults=faults)
    ids = [w.add_worker(rt.Worker(3, num_sub_workers=1))] if local else []
    rids = [w.add_remote_worker(remote_spec(rt, 9000 + i)) for i in range(n)]
    if register_add:
        w.register(rt.kernel("add"))
    return w, ids, rids


def rref(rt: Any, handle: Any, n: int = N, offset: int = 0) -> Any:
    return rt.RemoteTensorRef(handle, offset=offset, shape=(n,), dtype=rt.DataType.FLOAT32)


@modeled_duration(LONG_S * 1e6)
def hold_long(args: Any) -> None:
    time.sleep(LONG_S)


@modeled_duration(LONGEST_S * 1e6)
def hold_longest(args: Any) -> None:
    time.sleep(LONGEST_S)


@modeled_duration(SHORT_S * 1e6)
def hold_short(args: Any) -> None:
    time.sleep(SHORT_S)


def starts_after(a: Any, b: Any) -> Any:
    """Task record ``a`` starts no earlier than ``b`` ends (``"no stamp"`` when either was not seen)."""
    if a is None or b is None or a.start is None or b.end is None:
        return "no stamp"
    return a.start >= b.end


def starts_while(a: Any, b: Any) -> Any:
    """``a`` starts before ``b`` ends."""
    if a is None or b is None or a.start is None or b.end is None:
        return "no stamp"
    return a.start < b.end


def starts_not_before(a: Any, b: Any) -> Any:
    """``a`` starts no earlier than ``b`` starts."""
    if a is None or b is None or a.start is None or b.start is None:
        return "no stamp"
    return a.start >= b.start
