"""The cost model: named timing parameters per platform profile, and the chip roofline.

Parameters live in data (``sim/profiles/<name>.toml``), one file per platform profile, each
number documented with its upstream source there (``docs/hardware/mmio-performance.md``,
``docs/investigations/2026-07-host-dispatch-latency-budget.md``,
``docs/dfx/sched-overhead-model.md``). This module only loads, validates and applies them.
Virtual time is in microseconds.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from sim.errors import InvalidArgument

_SECTIONS: dict[str, tuple[str, ...]] = {
    "host": ("orch_submit_us", "orch_submit_per_tensor_us", "sched_dispatch_us", "sched_completion_us",
             "sched_release_per_consumer_us", "run_begin_us", "run_end_us"),
    "mailbox": ("dispatch_us", "completion_us", "per_tensor_us"),
    "sub": ("call_overhead_us", "default_task_us"),
    "chip": ("run_launch_us", "peak_tflops_fp16", "peak_tflops_fp32", "peak_tops_int8", "hbm_gbps",
             "h2d_gbps", "h2d_latency_us"),
}
_LINK_KEYS = ("latency_us", "gbps")
_PLATFORM_PROFILE = {"a2a3": "a2a3", "a2a3sim": "a2a3", "a5": "a5", "a5sim": "a5"}


@dataclass(frozen=True)
class Link:
    """A transport's one-way latency and bandwidth."""

    latency_us: float
    gbps: float
    extra: tuple[tuple[str, float], ...] = ()

    def transfer_us(self, nbytes: int) -> float:
        """Time for one frame of ``nbytes`` payload: latency plus serialisation."""
        return self.latency_us + nbytes / (self.gbps * 1e3)

    def get(self, key: str) -> float:
        for k, v in self.extra:
            if k == key:
                return v
        raise InvalidArgument(f"link parameter {key!r} is not defined")


@dataclass(frozen=True)
class Profile:
    """One platform profile's parameters (see ``sim/profiles/README.md``)."""

    name: str
    arch: str
    description: str
    host: dict[str, float]
    mailbox: dict[str, float]
    sub: dict[str, float]
    chip: dict[str, float]
    transports: dict[str, Link]
    #: ``[comm]``: which transport joins two chips of one L3 node and of two nodes (names in
    #: ``transports``), and the fixed costs of communication-domain setup (:mod:`sim.comm`).
    comm: dict[str, Any] = field(default_factory=dict)

    def comm_link(self, same_node: bool) -> Link:
        """The link a domain transfer between two chips crosses: intra-node or inter-node."""
        return self.transports[self.comm["intra_node_link" if same_node else "inter_node_link"]]

    def kernel_us(self, flops: float, nbytes: int, dtype: Any) -> float:
        """Roofline time of one kernel on one chip, excluding the run launch cost."""
        dt = np.dtype(dtype)
        if dt.kind == "f" and dt.itemsize == 4:
            peak = self.chip["peak_tflops_fp32"]
        elif dt.kind in "iub" and dt.itemsize == 1:
            peak = self.chip["peak_tops_int8"]
        else:
            peak = self.chip["peak_tflops_fp16"]
        compute = flops / (peak * 1e6)  # TFLOP/s -> flop per microsecond
        memory = nbytes / (self.chip["hbm_gbps"] * 1e3)  # GB/s -> bytes per microsecond
        return max(compute, memory)


def _require_number(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgument(f"{where}: {key} must be a number, got {value!r}")
    if value < 0:
        raise InvalidArgument(f"{where}: {key} must be >= 0, got {value}")
    return float(value)


def parse_profile(data: dict[str, Any], where: str) -> Profile:
    """Validate a parsed profile table; raise InvalidArgument naming the file and key."""
    meta = data.get("profile")
    if not isinstance(meta, dict):
        raise InvalidArgument(f"{where}: missing [profile] table")
    for key in ("name", "arch", "description"):
        if not isinstance(meta.get(key), str):
            raise InvalidArgument(f"{where}: [profile].{key} must be a string")
    sections: dict[str, dict[str, float]] = {}
    for section, keys in _SECTIONS.items():
        table = data.get(section)
        if not isinstance(table, dict):
            raise InvalidArgument(f"{where}: missing [{section}] table")
        unknown = sorted(set(table) - set(keys))
        if unknown:
            raise InvalidArgument(f"{where}: [{section}] has unknown key {unknown[0]!r}")
        for key in keys:
            if key not in table:
                raise InvalidArgument(f"{where}: [{section}] is missing {key!r}")
        sections[section] = {k: _require_number(f"{where} [{section}]", k, table[k]) for k in keys}
    transports: dict[str, Link] = {}
    for name, table in sorted((data.get("transport") or {}).items()):
        if not isinstance(table, dict):
            raise InvalidArgument(f"{where}: [transport.{name}] must be a table")
        for key in _LINK_KEYS:
            if key not in table:
                raise InvalidArgument(f"{where}: [transport.{name}] is missing {key!r}")
        nums = {k: _require_number(f"{where} [transport.{name}]", k, v) for k, v in table.items()}
        if nums["gbps"] <= 0:
            raise InvalidArgument(f"{where}: [transport.{name}] gbps must be > 0")
        extra = tuple(sorted((k, v) for k, v in nums.items() if k not in _LINK_KEYS))
        transports[name] = Link(nums["latency_us"], nums["gbps"], extra)
    for key in ("peak_tflops_fp16", "peak_tflops_fp32", "peak_tops_int8", "hbm_gbps"):
        if sections["chip"][key] <= 0:
            raise InvalidArgument(f"{where}: [chip] {key} must be > 0")
    return Profile(meta["name"], meta["arch"], meta["description"], sections["host"], sections["mailbox"],
                   sections["sub"], sections["chip"], transports, _parse_comm(data.get("comm"), transports, where))


_COMM_LINKS = ("intra_node_link", "inter_node_link")
_COMM_COSTS = ("comm_init_us", "domain_alloc_us")


def _parse_comm(table: Any, transports: dict[str, Link], where: str) -> dict[str, Any]:
    """The ``[comm]`` table: two transport names and the domain setup costs."""
    if not isinstance(table, dict):
        raise InvalidArgument(f"{where}: missing [comm] table")
    unknown = sorted(set(table) - set(_COMM_LINKS) - set(_COMM_COSTS))
    if unknown:
        raise InvalidArgument(f"{where}: [comm] has unknown key {unknown[0]!r}")
    out: dict[str, Any] = {}
    for key in _COMM_LINKS:
        name = table.get(key)
        if name not in transports:
            raise InvalidArgument(f"{where}: [comm] {key} must name a [transport.*] table "
                                  f"({', '.join(sorted(transports))}), got {name!r}")
        out[key] = name
    for key in _COMM_COSTS:
        if key not in table:
            raise InvalidArgument(f"{where}: [comm] is missing {key!r}")
        out[key] = _require_number(f"{where} [comm]", key, table[key])
    return out


def load_profile(name_or_path: str | Path) -> Profile:
    """Load a built-in profile by name (``a2a3``, ``a5``) or a profile TOML file by path."""
    text: str
    where = str(name_or_path)
    if isinstance(name_or_path, Path) or str(name_or_path).endswith(".toml"):
        path = Path(name_or_path)
        if not path.is_file():
            raise InvalidArgument(f"profile file {path} does not exist")
        text = path.read_text(encoding="utf-8")
    else:
        res = resources.files("sim").joinpath("profiles", f"{name_or_path}.toml")
        if not res.is_file():
            raise InvalidArgument(f"no built-in profile {name_or_path!r}; built-in: {', '.join(builtin_profiles())}")
        text = res.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InvalidArgument(f"{where}: not valid TOML: {exc}") from None
    return parse_profile(data, where)


def builtin_profiles() -> list[str]:
    """Names of the profiles shipped with tierbed."""
    folder = resources.files("sim").joinpath("profiles")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def profile_for_platform(platform: str) -> str:
    """The profile name a platform string selects (``a2a3sim`` -> ``a2a3``)."""
    try:
        return _PLATFORM_PROFILE[platform]
    except KeyError:
        raise InvalidArgument(
            f"unknown platform {platform!r}; expected one of {', '.join(sorted(_PLATFORM_PROFILE))}") from None


F = TypeVar("F", bound=Callable[..., Any])

#: Attribute a SUB callable may carry to give its modeled duration in microseconds.
DURATION_ATTR = "__tierbed_duration_us__"


def modeled_duration(us: float) -> Callable[[F], F]:
    """Decorator: the simulator models this SUB callable's body as taking ``us`` microseconds.

    The attribute is inert on the real runtime, so a case written with it runs anywhere.
    """
    value = _require_number("modeled_duration", "us", us)

    def mark(fn: F) -> F:
        setattr(fn, DURATION_ATTR, value)
        return fn

    return mark
