"""The campaign as a Python API: :func:`run_campaign`, :func:`replay_seed`, :func:`run_case`.

``tierbed campaign`` is a thin layer over these. A campaign writes into its output directory:
``campaign.json`` (how it ran), ``seeds.parquet`` (one row per seed), ``summary.json`` (counts,
violations by invariant, violating seeds, coverage), ``campaign.html`` and, for each violated
invariant, a shrunk case under ``shrunk/``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from conformance.campaign import execute
from conformance.campaign.generate import usable_kinds, usable_points
from conformance.campaign.invariants import BUILTIN, Observation, check, resolve
from conformance.campaign.results import (
    CONFIG_FILE,
    ROWS_FILE,
    SUMMARY_FILE,
    read_rows,
    summarize,
    write_json,
    write_rows,
)
from conformance.campaign.seedrun import CampaignSpec, observe
from conformance.campaign.shrink import shrink, write_case
from conformance.campaign.target import CampaignInputError, FunctionTarget, ScenarioTarget, Target, load_target
from conformance.fault_space import FaultSpace, FaultSpaceError, parse_kinds

#: What the hw backend can inject through its fault relay (hw_backend.remote); the rest is sim-only.
HW_KINDS = ("link_cut", "health_cut", "link_delay", "session_crash", "session_hang", "frame_drop", "control_error")


def parse_seeds(text: str) -> range:
    """``A:B`` (seeds A..B-1) or ``N`` (seeds 0..N-1)."""
    parts = str(text).split(":")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        raise CampaignInputError(f"--seeds {text!r}: expected A:B (seeds A to B-1) or N, with whole numbers") from None
    if len(nums) == 1:
        nums = [0, nums[0]]
    if len(nums) != 2 or nums[0] < 0 or nums[1] <= nums[0]:
        raise CampaignInputError(f"--seeds {text!r}: expected A:B with 0 <= A < B (seeds A to B-1), or N > 0")
    return range(nums[0], nums[1])


@dataclass
class CampaignResult:
    out: Path
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    shrunk: dict[str, str] = field(default_factory=dict)
    interrupted: bool = False
    page: Path | None = None

    @property
    def violations(self) -> int:
        return int(self.summary["violations"])


def default_invariants(liveness: bool) -> list[str]:
    return [n for n in BUILTIN if liveness or n != "liveness"]


#: The backends a campaign (and so a case with invariants) runs on: the reference executor keeps no trace
#: or fault plan to check invariants against.
CAMPAIGN_BACKENDS = ("sim", "hw")


def make_spec(target: Target | str | Path, *, faults: str | list[str] | None = None, invariants: list[str] | tuple = (),
              liveness: bool = False, backend: str = "sim", seed_timeout_s: float = 60.0,
              determinism_every: int = 50, space: FaultSpace | None = None, defaults: bool = True) -> CampaignSpec:
    """Validate every input (nothing is written or run before this returns) and build the spec; ``defaults``
    adds the built-in invariants and the target's own to ``invariants``."""
    if backend not in CAMPAIGN_BACKENDS:
        raise CampaignInputError(f"backend {backend!r}: campaigns run on sim or hw")
    if backend == "hw":
        from conformance.backends import BackendUnavailable, get_backend

        try:
            get_backend("hw", 0)
        except BackendUnavailable as exc:
            raise CampaignInputError(str(exc).replace("or use --backend sim or --backend reference",
                                                      "or run the campaign on --backend sim")) from None
    t = load_target(target) if not isinstance(target, Target) else target
    sp = space or t.fault_space or FaultSpace()
    try:
        if faults is not None:
            sp = sp.with_kinds(parse_kinds(faults) if isinstance(faults, str) else parse_kinds(",".join(faults)))
    except FaultSpaceError as exc:
        raise CampaignInputError(str(exc)) from None
    if backend == "hw":
        sp = sp.model_copy(update={"kinds": [k for k in sp.kind_list() if k in HW_KINDS], "points": "none"})
    names = list(dict.fromkeys([*default_invariants(liveness), *t.invariants, *invariants] if defaults
                               else invariants))
    resolve(names)
    base: tuple[dict[str, Any], ...] = ()
    if isinstance(t, ScenarioTarget):
        base = tuple(f.model_dump(exclude_none=True) for f in t.scn.faults)
    topo = t.topology()
    asked = sp.kind_list()
    if faults is not None and asked and not usable_kinds(sp, topo):  # every kind asked for: none could be drawn
        raise CampaignInputError(f"--faults {','.join(asked)}: target {t.name} cannot host "
                                 f"{'this kind' if len(asked) == 1 else 'any of these kinds'} (remote kinds need a "
                                 "remote L3, local kinds a local child, control kinds CONTROL sent after init())")
    return CampaignSpec(t, sp, topo, tuple(names), backend=backend, liveness=liveness,
                        determinism_every=determinism_every if backend == "sim" else 0,
                        seed_timeout_s=seed_timeout_s, base_faults=base)


def _config(spec: CampaignSpec, seeds: range) -> dict[str, Any]:
    t = spec.target
    target: dict[str, Any] = {"kind": t.kind, "name": t.name}
    if isinstance(t, ScenarioTarget):
        target.update(file=t.file, text=t.text)
    try:
        version = metadata.version("tierbed")
    except metadata.PackageNotFoundError:
        version = "unknown"
    return {"schema": "tierbed.campaign/1", "tierbed": version, "target": t.name, "target_spec": target,
            "seeds": f"{seeds.start}:{seeds.stop}", "backend": spec.backend, "fault_space": spec.space.model_dump(),
            "invariants": list(spec.invariants), "liveness": spec.liveness,
            "determinism_every": spec.determinism_every, "seed_timeout_s": spec.seed_timeout_s}


def spec_from_config(cfg: dict[str, Any]) -> CampaignSpec:
    """Rebuild the spec a campaign ran with, from its ``campaign.json``."""
    ts = cfg["target_spec"]
    target: Target = ScenarioTarget(ts["text"], ts["file"]) if ts["kind"] == "scenario" else FunctionTarget(ts["name"])
    return make_spec(target, invariants=cfg["invariants"], liveness=cfg["liveness"], backend=cfg["backend"],
                     seed_timeout_s=cfg["seed_timeout_s"], determinism_every=cfg["determinism_every"],
                     space=FaultSpace.model_validate(cfg["fault_space"]))


def run_campaign(target: Target | str | Path, seeds: range | str, *, out: Path | str = "runs/campaign",
                 faults: str | list[str] | None = None, invariants: list[str] | tuple = (), liveness: bool = False,
                 backend: str = "sim", scheduler: str | None = None, workers: int | None = None,
                 inline: bool = False, batch: int | None = None, seed_timeout_s: float = 60.0,
                 determinism_every: int = 50, do_shrink: bool = True, progress: bool = True) -> CampaignResult:
    """Run ``seeds`` of ``target`` under drawn faults; check invariants; write the results into ``out``."""
    seeds = parse_seeds(seeds) if isinstance(seeds, str) else seeds
    spec = make_spec(target, faults=faults, invariants=invariants, liveness=liveness, backend=backend,
                     seed_timeout_s=seed_timeout_s, determinism_every=determinism_every)
    if scheduler and not inline:
        _probe_scheduler(scheduler)
    out = Path(out)
    _clear(out)
    out.mkdir(parents=True, exist_ok=True)
    config = _config(spec, seeds)
    write_json(config, out / CONFIG_FILE)
    rows: list[dict[str, Any]] = []
    bar = execute.Progress(len(seeds), enabled=progress)

    def on_row(r: dict[str, Any]) -> None:
        rows.append(r)
        bar.update(r)

    t0 = time.perf_counter()
    try:
        if inline:
            interrupted = execute.run_inline(spec, list(seeds), on_row)
        else:
            interrupted = execute.run_dask(spec, list(seeds), on_row, scheduler=scheduler, workers=workers, batch=batch)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()
    wall = time.perf_counter() - t0
    write_rows(rows, out / ROWS_FILE)
    points, kinds = usable_points(spec.space, spec.topology), usable_kinds(spec.space, spec.topology)
    summary = summarize(rows, config=config, points=points, interrupted=interrupted, wall_s=wall,
                        requested=len(seeds), kinds=kinds)
    shrunk: dict[str, str] = {}
    if do_shrink and not interrupted:
        shrunk = shrink_all(spec, rows, out)
    summary["shrunk"] = shrunk
    usable = set(kinds) | set(points)
    summary["not_applicable"] = [k for k in [*spec.space.kind_list(), *spec.space.point_probabilities()]
                                 if k not in usable]  # the target cannot host them: never drawn
    write_json(summary, out / SUMMARY_FILE)
    from conformance.campaign.page import write_page

    page = write_page(summary, rows, shrunk, out)
    return CampaignResult(out, rows, summary, shrunk, interrupted, page)


def _probe_scheduler(address: str) -> None:
    """Fail early, before anything is written, when the Dask scheduler cannot be reached."""
    from distributed import Client

    try:
        Client(address, timeout="10s").close()
    except (OSError, TimeoutError, ValueError) as exc:
        raise CampaignInputError(f"--scheduler {address}: cannot connect ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:200]})") from None


#: What a campaign writes into its directory; an earlier campaign's are removed first, so nothing stale
#: (a shrunk case of another run, say) sits beside the new results.
OUTPUTS = (CONFIG_FILE, ROWS_FILE, SUMMARY_FILE, "campaign.html")
OUTPUT_DIRS = ("shrunk", "replay")


def _clear(out: Path) -> None:
    import shutil

    if out.exists() and not out.is_dir():
        raise CampaignInputError(f"--out {out}: exists and is not a directory")
    for name in OUTPUTS:
        (out / name).unlink(missing_ok=True)
    for name in OUTPUT_DIRS:
        if (out / name).is_dir():
            shutil.rmtree(out / name)


def shrink_all(spec: CampaignSpec, rows: list[dict[str, Any]], out: Path) -> dict[str, str]:
    """Shrink the first violating seed of each invariant; returns invariant -> the written case's path."""
    firsts: dict[str, dict[str, Any]] = {}
    for r in sorted(rows, key=lambda r: r["seed"]):
        if r["outcome"] in ("TIMEOUT", "CRASH"):
            continue  # a wall-clock or process failure cannot be replayed cheaply in this process
        for v in r["violations"]:
            firsts.setdefault(v, r)
    written: dict[str, str] = {}
    for inv, r in firsts.items():
        s = shrink(spec, r["seed"], json.loads(r["fault_plan"]), inv)
        name = inv.replace(":", "-").replace(".", "-")
        path = write_case(spec, s, out / "shrunk" / f"{name}-seed{r['seed']}.yaml", liveness=spec.liveness)
        written[inv] = str(path)
    return written


@dataclass
class Replay:
    seed: int
    observation: Observation
    violations: dict[str, list[str]]
    expected_digest: str | None
    trace_files: list[Path]

    @property
    def reproduced(self) -> bool | None:
        if not self.expected_digest:
            return None
        return self.expected_digest == self.observation.digest


def replay_seed(out: Path | str, seed: int, *, trace_dir: Path | None = None) -> Replay:
    """Run one seed of a finished campaign again, exactly; write its Perfetto and text traces."""
    out = Path(out)
    cfg_path = out / CONFIG_FILE
    if not cfg_path.is_file():
        raise CampaignInputError(f"{out}: not a campaign directory (no {CONFIG_FILE})")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CampaignInputError(f"{cfg_path}: not a campaign config ({exc})") from None
    if cfg.get("schema") != "tierbed.campaign/1":
        raise CampaignInputError(f"{cfg_path}: wrong schema {cfg.get('schema')!r}, expected 'tierbed.campaign/1'")
    spec = spec_from_config(cfg)
    expected = None
    if (out / ROWS_FILE).is_file():
        hit = [r for r in read_rows(out / ROWS_FILE) if r["seed"] == seed]
        expected = hit[0]["digest"] if hit else None
    faults = [dict(f) for f in spec.plan(seed).faults]
    tdir = trace_dir or out / "replay" / f"seed-{seed}"
    obs = observe(spec, seed, faults, keep_trace=True, trace_dir=tdir)
    if "determinism" in spec.invariants:
        obs.replay_digest = observe(spec, seed, [dict(f) for f in faults]).digest
    files = sorted(tdir.glob("trace.*")) if tdir.exists() else []
    return Replay(seed, obs, check(spec.checks(), obs), expected, files)


def load_case(path: Path | str) -> dict[str, Any] | None:
    """A shrunk case file of a ``module:function`` target (``target:`` at the top), or None if it is not one."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if isinstance(data, dict) and "target" in data and "topology" not in data:
        return data
    return None


def run_case(target: Target, seed: int, faults: list[dict[str, Any]], invariants: list[str], *,
             liveness: bool = False, backend: str = "sim", trace_dir: Path | None = None) -> tuple[Observation,
                                                                                                 dict[str, list[str]]]:
    """Run one explicit case (no drawing) and check ``invariants``: what ``tierbed run`` does with invariants."""
    spec = make_spec(target, invariants=invariants, liveness=liveness, backend=backend, defaults=False)
    obs = observe(spec, seed, [dict(f) for f in faults], keep_trace=True, trace_dir=trace_dir)
    if "determinism" in invariants:
        obs.replay_digest = observe(spec, seed, [dict(f) for f in faults]).digest
    return obs, check(spec.checks(), obs)


__all__ = ["CAMPAIGN_BACKENDS", "HW_KINDS", "CampaignResult", "Replay", "load_case", "make_spec", "parse_seeds",
           "replay_seed", "run_campaign", "run_case", "shrink_all"]
