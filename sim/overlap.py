"""Submit-time check: no two arguments of one task may overlap where either of them writes.

Models upstream ``docs/buffer-abi.md``, "What a submit checks" → "No overlapping writes within
one task", and ``validate_submit_args`` (``src/common/task_interface/task_args.h``; earlier
``task_args_wire.h``). Two tensor arguments of *one* TaskArgs that name intersecting bytes of one
backing are rejected when at least one of them is tagged to write (OUTPUT, INOUT,
OUTPUT_EXISTING): both belong to one DAG node, so nothing orders them. The other argument may
carry any tag (INPUT and NO_DEP name bytes too). Two readers of the same bytes conflict with
nothing, and disjoint slices of one buffer stay legal. Members of a group are not compared with
each other (the doc's closing paragraph of that section): a group is one node, and naming one
buffer as every member's output is how it publishes one completion token.

The rule is order-free, as the doc states it: a read placed *before* an overlapping write in the
TaskArgs is rejected just like one placed after it. (Upstream's loop only compares a writing
argument with the arguments after it, so on the real runtime a read that comes first slips
through; conformance reports that departure, case ORCH-048.)

"Same bytes" follows the doc's two-stage comparison ("Submitting a task"): first the bounding
byte ranges, then — for two strided views that share one canonical row-major layout (same dtype
and rank, identical element strides descending as exact multiples down to 1, origins on that
layout's lattice) — a per-axis intersection, so two column blocks of one matrix whose bounding
ranges interleave are disjoint. Any pair the second stage cannot model counts as overlapping.

What "one backing" is in the simulator: a :class:`~sim.tensors.TensorSpec` is its own backing
(its whole extent); a timing-only :class:`~sim.tensors.Tensor` lives in its :class:`Buffer`; data
-bearing tensors and numpy arrays live in the host address space (their byte addresses); a
``RemoteTensorRef`` lives in its owner's remote buffer (owner, buffer id, generation), at the
offset its dependency key carries; an inline payload is a backing of its own.

The caller keeps the hot path lean: it calls :func:`check_task_writes` only when one TaskArgs
names at least two non-spec tensors or one spec twice (the only ways two arguments can share a
backing), so a submit of distinct specs pays one ``set`` build.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sim.errors import InvalidArgument
from sim.tensors import TensorSpec
from sim.types import TensorArgType

try:  # numpy >= 2
    from numpy.lib.array_utils import byte_bounds as _byte_bounds
except ImportError:  # numpy 1.26
    _byte_bounds = np.byte_bounds  # type: ignore[attr-defined]

# Per-tag "declares a write", indexed by the tag's value.
WRITES = tuple(t in (TensorArgType.OUTPUT, TensorArgType.INOUT, TensorArgType.OUTPUT_EXISTING) for t in TensorArgType)


def _footprint(ref: Any) -> tuple[Any, int, int, np.ndarray | None]:
    """(backing, first byte, end byte, host array or None) of one engine reference."""
    key = ref.key
    nbytes = ref.nbytes
    if isinstance(ref, TensorSpec) or not isinstance(key, tuple):
        return ("spec", key), 0, nbytes, None
    kind = key[0]
    if kind == "remote":  # ("remote", owner worker, buffer id, generation, byte offset)
        return key[:4], key[4], key[4] + nbytes, None
    if kind == "buf":  # a timing-only Tensor: ("buf", buffer uid, byte offset)
        return key[:2], key[2], key[2] + nbytes, None
    arr = ref.array
    if kind == "host" and isinstance(arr, np.ndarray):
        if not arr.size:
            return "host", 0, 0, None  # names no byte
        if arr.flags.c_contiguous:
            lo = int(arr.__array_interface__["data"][0])
            return "host", lo, lo + arr.nbytes, arr
        lo, hi = _byte_bounds(arr)
        return "host", int(lo), int(hi), arr
    return key, 0, nbytes, None  # an inline payload, or anything else: a backing of its own


def _root(arr: np.ndarray) -> np.ndarray:
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr


def _lattice_disjoint(a: np.ndarray, b: np.ndarray) -> bool:
    """Stage 2: True only if ``a`` and ``b`` provably share no element of one row-major layout."""
    if a.dtype != b.dtype or a.ndim != b.ndim or a.ndim == 0:
        return False
    root = _root(a)
    if _root(b) is not root:
        return False
    item = a.dtype.itemsize
    if any(s % item for s in a.strides) or a.strides != b.strides:
        return False
    strides = [s // item for s in a.strides]
    if strides[-1] != 1 or any(s <= 0 for s in strides):
        return False
    if any(strides[i - 1] % strides[i] for i in range(1, len(strides))):
        return False
    origin = int(root.__array_interface__["data"][0])
    numel = root.nbytes // item
    if numel % strides[0]:
        return False
    ref_shape = [numel // strides[0]] + [strides[i - 1] // strides[i] for i in range(1, len(strides))]
    coords = []
    for arr in (a, b):
        rel = int(arr.__array_interface__["data"][0]) - origin
        if rel < 0 or rel % item:
            return False
        rem = rel // item
        c = []
        for s in strides:
            c.append(rem // s)
            rem %= s
        if rem or any(o + n > r for o, n, r in zip(c, arr.shape, ref_shape, strict=True)):
            return False
        coords.append(c)
    ca, cb = coords
    return any(not (oa < ob + nb and ob < oa + na)
               for oa, ob, na, nb in zip(ca, cb, a.shape, b.shape, strict=True))


def check_task_writes(refs: Sequence[Any], tags: Sequence[TensorArgType], api: str, where: str = "") -> None:
    """Raise InvalidArgument if two arguments of one task overlap in one backing and either writes.

    ``refs`` and ``tags`` are one TaskArgs' engine references and tags; ``where`` prefixes the
    message (e.g. ``"member 2 "`` of a group). Nothing is changed either way.
    """
    n = len(refs)
    if n < 2 or not any(WRITES[t] for t in tags):
        return
    prints = [_footprint(r) for r in refs]
    for i in range(n):
        bi, lo_i, hi_i, ai = prints[i]
        wi = WRITES[tags[i]]
        for j in range(i + 1, n):
            if not (wi or WRITES[tags[j]]):
                continue
            bj, lo_j, hi_j, aj = prints[j]
            if bi != bj or not (lo_i < hi_j and lo_j < hi_i):
                continue  # another backing, or disjoint bounding ranges (stage 1)
            if ai is not None and aj is not None and _lattice_disjoint(ai, aj):
                continue  # interleaved but disjoint views of one layout (stage 2)
            ti, tj = TensorArgType(tags[i]).name, TensorArgType(tags[j]).name
            raise InvalidArgument(
                f"{api}: {where}tensor arguments {i} ({ti}) and {j} ({tj}) overlap in the same buffer and at "
                f"least one of them writes it; the arguments of one task carry no order between them. Name "
                f"disjoint byte ranges, or split the work into separate tasks")
