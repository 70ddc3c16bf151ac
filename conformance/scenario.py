"""YAML scenarios: a case written as data instead of a Python function.

A scenario file names a topology (a tree of Workers), the host tensors of the run, the callables
each Worker registers (reference kernels as chip or SUB callables, standard remote orchestration
functions), a program of submits for each Worker that orchestrates, a fault plan and the
expectations the judge checks. It is replayed through the same runtime-shaped API as a Python case
(:mod:`conformance.scenario_runner`), so it runs on every backend that has what it needs.

The format is defined by the pydantic models below (every mapping strict: an unknown field is an
error) and exported as JSON Schema for editors (``tierbed scenario-schema``; a committed copy sits
next to this module). :func:`load_scenario` keeps the YAML node tree, so that a bad file fails with
a :class:`ScenarioError` naming the file, the line and the field: ``file:line: field.path: message``.

Shape of a file (see ``conformance/scenarios/`` for complete examples)::

    scenario: l3-chip-pipeline            # a name
    topology:                             # the root Worker; children for L4 and above
      {name: node, level: 3, device_ids: [0, 1], num_sub_workers: 1}
    tensors:
      - {name: a, shape: [16], dtype: float32, init: {random: 1}}   # zeros | ones | arange | random
    callables:
      - {name: add, kernel: add, worker: node}                      # chip callable (default)
      - {name: check, kernel: mul, worker: node, runs_on: sub}      # the kernel's golden as a SUB callable
      - {name: boom, builtin: fail, worker: node}                   # host SUB builtins: fail (raises),
      - {name: nap, builtin: slow, duration_us: 400, worker: node}  #   slow, noop (duration_us optional)
      - {name: late, kernel: add, worker: node, after_init: true}   # registered after init()
    unregister: [{callable: add, when: before_init}]                # or when: after_init (the default)
    program:                              # per orchestrating Worker, by name
      node:
        - {kind: next_level, callable: add, worker: 0, id: first,
           args: [{tensor: a, tag: INPUT}, {tensor: b, tag: INPUT}, {tensor: x, tag: OUTPUT}]}
        - {alloc: t, shape: [16], dtype: float32}                   # o.alloc: t names it in later steps
        - {kind: sub_group, callable: nap, members: [{args: []}, {args: []}]}
        - scope: [ ...steps... ]
    faults: [{type: SessionCrash, worker: node1, at_us: 2000}]
    expect:
      init: OK                            # or {error: INVALID_STATE}: then nothing runs
      run: OK                             # or {error: TASK_FAILURE} / {error: [A, B]}
      tasks: {first: COMPLETED, "l3:r1:t2": {failed: TASK_FAILURE}}
      outputs: [x]                        # against the reference executor's run of the same program
    found: {by: fuzz, seed: 3, property: ..., observed: {...}}      # provenance, never judged

Worker ids in a program are chip indices at L3 and child names (or ids) at L4 and above. A
non-root local Worker's program is what its parent's ``next_level`` submits run (the callable may
be left out); its ``params`` name, in order, the tensors the parent passes. An ``alloc`` name is new
in its program and visible to the later steps of its scope (nested scopes included); an alloc
takes a task slot, so it counts in task ids (``l3:r1:tN``) without being a task of the record.

An L3 states its chips with ``device_ids`` (``[]`` for none); an L4+ may have ``children: []``.
``init()`` accepts such Workers; it fails (INVALID_STATE) when a registered callable has no target
there (a chip kernel without chips, a SUB callable without SUB workers: REG-012, REG-013).
:func:`scenario_to_yaml` writes a Scenario model back as a file (what generators save).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

from conformance.fault_space import BUILTIN_INVARIANTS, FaultSpace
from conformance.yamlfile import Loc, YamlFileError, compose, locate, read_text, validate
from sim.faultpoints import FAULT_POINTS
from sim.node import MAX_SCOPE_DEPTH

SCHEMA_FILE = Path(__file__).with_name("scenario.schema.json")

Name = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_.\-]*$", description="an identifier")]
TagName = Literal["INPUT", "OUTPUT", "INOUT", "OUTPUT_EXISTING", "NO_DEP"]
DType = Literal["float32", "float16", "bfloat16", "float64", "int8", "int32", "int64", "uint8"]
OutcomeWord = Literal["COMPLETED", "NOT_RUN", "FAILED"]
RemoteTarget = Literal["noop", "fail", "chain", "add_buffers"]
BuiltinKind = Literal["fail", "slow", "noop"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


# ------------------------------------------------------------------------------------------- topology


class WorkerNode(_Strict):
    """One Worker of the tree: L3 holds chips (``device_ids``) and SUB workers; L4+ holds children."""

    name: Name
    level: int = Field(ge=2, le=6)
    device_ids: list[Annotated[int, Field(ge=0)]] | None = None
    num_sub_workers: int = Field(default=0, ge=0)
    heap_ring_size: int | None = Field(default=None, gt=0)
    remote: bool = Field(default=False, description="a remote L3 reached through a session (add_remote_worker)")
    endpoint: str | None = Field(default=None, description="host:port of a remote L3 (default: loopback)")
    children: list[WorkerNode] = Field(default_factory=list)


# ------------------------------------------------------------------------------------------- data


class RandomInit(_Strict):
    random: int = Field(ge=0, description="seed of a standard-normal fill")


class TensorDef(_Strict):
    name: Name
    shape: list[Annotated[int, Field(ge=1)]] = Field(min_length=1)
    dtype: DType = "float32"
    init: Literal["zeros", "ones", "arange", "random"] | RandomInit = "zeros"


class CallableDef(_Strict):
    """A callable registered on ``worker`` before ``init()`` (or after it, ``after_init: true``): a reference
    kernel, a remote target or a built-in host SUB callable."""

    name: Name
    worker: Name
    kernel: str | None = Field(default=None, description="a reference kernel name")
    runs_on: Literal["chip", "sub"] = Field(default="chip", description="chip callable, or the kernel's golden "
                                            "run on the host as a SUB callable")
    remote: RemoteTarget | None = Field(default=None, description="a standard remote orchestration function")
    targets: list[Name] | None = Field(default=None, description="the remote children it is registered on "
                                       "(default: all of the worker's remote children)")
    builtin: BuiltinKind | None = Field(default=None, description="a host SUB callable every backend has: fail "
                                        "(raises), slow (takes duration_us), noop; it ignores its args")
    duration_us: float | None = Field(default=None, ge=0, description="a builtin's modeled time (sim); "
                                      "elsewhere slow sleeps at most 0.05 s")
    after_init: bool = Field(default=False, description="registered after init() (and before the run)")

    @model_validator(mode="after")
    def _one_target(self) -> CallableDef:
        if sum(x is not None for x in (self.kernel, self.remote, self.builtin)) != 1:
            raise ValueError("a callable needs exactly one of kernel:, remote: or builtin:")
        if self.remote is None and self.targets is not None:
            raise ValueError("targets: applies to remote callables only")
        if self.builtin is None and self.duration_us is not None:
            raise ValueError("duration_us: applies to builtin callables only")
        if self.builtin == "slow" and self.duration_us is None:
            raise ValueError("a slow builtin needs duration_us:")
        if self.builtin == "fail" and self.duration_us is not None:
            raise ValueError("duration_us: applies to the slow and noop builtins, not fail")
        if self.builtin is not None and "runs_on" in self.model_fields_set and self.runs_on != "sub":
            raise ValueError("a builtin is a SUB callable: leave runs_on: out (or give runs_on: sub)")
        return self

    @property
    def is_sub(self) -> bool:
        """Whether it is submitted as a SUB callable (``sub`` / ``sub_group``)."""
        return self.builtin is not None or (self.kernel is not None and self.runs_on == "sub")


class UnregisterDef(_Strict):
    """``Worker.unregister`` of a declared callable's handle, before or after ``init()``."""

    callable: Name
    when: Literal["before_init", "after_init"] = "after_init"


# ------------------------------------------------------------------------------------------- program


class TensorArg(_Strict):
    tensor: Name
    tag: TagName


class ScalarArg(_Strict):
    scalar: int | float


def _arg_kind(v: Any) -> str:
    return "scalar-arg" if isinstance(v, ScalarArg) or (isinstance(v, dict) and "scalar" in v) else "tensor-arg"


Arg = Annotated[Annotated[TensorArg, Tag("tensor-arg")] | Annotated[ScalarArg, Tag("scalar-arg")],
                Discriminator(_arg_kind)]
WorkerRef = int | Name


class Member(_Strict):
    worker: WorkerRef | None = Field(default=None, description="the member's worker (group); a sub_group "
                                     "member takes none")
    args: list[Arg] = Field(default_factory=list)


class Submit(_Strict):
    """One submit: ``next_level`` (to ``worker``), ``sub`` (any SUB worker), ``group`` (``members``, each
    with its worker) or ``sub_group`` (``members``, each on its own SUB worker)."""

    kind: Literal["next_level", "sub", "group", "sub_group"]
    callable: Name | None = None
    id: Name | None = Field(default=None, description="a label for expect.tasks (root program only)")
    worker: WorkerRef | None = None
    args: list[Arg] = Field(default_factory=list)
    members: list[Member] | None = None

    @model_validator(mode="after")
    def _shape(self) -> Submit:
        if self.kind == "next_level" and self.worker is None:
            raise ValueError("a next_level submit needs worker:")
        if self.kind == "group":
            if not self.members:
                raise ValueError("a group submit needs members: [{worker, args}, ...]")
            if self.worker is not None or self.args:
                raise ValueError("a group submit takes members:, not worker:/args:")
            if any(m.worker is None for m in self.members):
                raise ValueError("every member of a group submit needs worker:")
        elif self.kind == "sub_group":
            if not self.members:
                raise ValueError("a sub_group submit needs members: [{args}, ...]")
            if self.worker is not None or self.args:
                raise ValueError("a sub_group submit takes members:, not worker:/args:")
            if any(m.worker is not None for m in self.members):
                raise ValueError("a sub_group member runs on any SUB worker: it takes no worker:")
        elif self.members is not None:
            raise ValueError(f"members: applies to group submits, not {self.kind}")
        if self.kind == "sub" and self.worker is not None:
            raise ValueError("a sub submit runs on any SUB worker: it takes no worker:")
        if self.kind != "next_level" and self.callable is None:
            raise ValueError(f"a {self.kind} submit needs callable:")
        return self


class Scope(_Strict):
    scope: list[Step]


class Alloc(_Strict):
    """``o.alloc(shape, dtype)``: binds ``alloc`` (for the later steps of its scope, nested scopes included) to a
    runtime-owned intermediate tensor."""

    alloc: Name
    shape: list[Annotated[int, Field(ge=1)]] = Field(min_length=1)
    dtype: DType = "float32"


def _step_kind(v: Any) -> str:
    if isinstance(v, Scope) or (isinstance(v, dict) and "scope" in v):
        return "scope-step"
    if isinstance(v, Alloc) or (isinstance(v, dict) and "alloc" in v):
        return "alloc-step"
    return "submit-step"


Step = Annotated[Annotated[Submit, Tag("submit-step")] | Annotated[Scope, Tag("scope-step")]
                 | Annotated[Alloc, Tag("alloc-step")], Discriminator(_step_kind)]
Scope.model_rebuild()


class Program(_Strict):
    params: list[Name] = Field(default_factory=list, description="names bound to the task's tensors, in order")
    steps: list[Step]


def _program_kind(v: Any) -> str:
    return "step-list" if isinstance(v, list) else "steps-with-params"


ProgramEntry = Annotated[Annotated[list[Step], Tag("step-list")] | Annotated[Program, Tag("steps-with-params")],
                         Discriminator(_program_kind)]


# ------------------------------------------------------------------------------------------- faults


class _Fault(_Strict):
    pass


class LinkCutF(_Fault):
    type: Literal["LinkCut"]
    worker: WorkerRef
    at_us: float = Field(ge=0)
    lanes: Literal["both", "health"] = "both"


class LinkDelayF(_Fault):
    type: Literal["LinkDelay"]
    worker: WorkerRef
    start_us: float = Field(ge=0)
    extra_us: float = Field(gt=0)
    end_us: float | None = None


class LinkClogF(_Fault):
    type: Literal["LinkClog"]
    worker: WorkerRef
    start_us: float = Field(ge=0)
    end_us: float = Field(gt=0)


class SessionCrashF(_Fault):
    """The session process dies at ``at_us``: its sockets close, the parent fails the endpoint at once."""

    type: Literal["SessionCrash"]
    worker: WorkerRef
    at_us: float = Field(ge=0)


class SessionHangF(_Fault):
    """The session process stops at ``at_us`` (alive, silent): only health expiry fails the endpoint."""

    type: Literal["SessionHang"]
    worker: WorkerRef
    at_us: float = Field(ge=0)


class FrameFaultF(_Fault):
    type: Literal["FrameFault"]
    worker: WorkerRef
    frame_type: str
    action: Literal["drop", "delay"] = "drop"
    ordinal: int | None = Field(default=None, ge=1)
    probability: float | None = Field(default=None, gt=0, le=1)
    delay_us: float = Field(default=0.0, ge=0)


class ControlFaultF(_Fault):
    type: Literal["ControlFault"]
    worker: WorkerRef
    control: str
    ordinal: int | None = Field(default=None, ge=1)
    probability: float | None = Field(default=None, gt=0, le=1)
    outcome: Literal["error", "timeout"] = "error"


class LocalControlFaultF(_Fault):
    type: Literal["LocalControlFault"]
    target: str
    control: Literal["register", "unregister"]
    ordinal: int | None = Field(default=None, ge=1)
    probability: float | None = Field(default=None, gt=0, le=1)
    outcome: Literal["error", "timeout"] = "error"


class FaultPointF(_Fault):
    """A named fault point inside the model (``sim.faultpoints``); ``target``: a topology node name."""

    type: Literal["FaultPoint"]
    name: Literal[tuple(FAULT_POINTS)]  # type: ignore[valid-type]
    probability: float = Field(default=1.0, gt=0, le=1)
    factor: float = Field(default=10.0, ge=1)
    delay_us: float = Field(default=1000.0, gt=0)
    target: Name | None = Field(default=None, description="a topology node the point is limited to "
                                                          "(default: anywhere)")


FaultDef = Annotated[LinkCutF | LinkDelayF | LinkClogF | SessionCrashF | SessionHangF | FrameFaultF | ControlFaultF
                     | LocalControlFaultF | FaultPointF, Field(discriminator="type")]


# ------------------------------------------------------------------------------------------- expectations


class ErrorExpect(_Strict):
    error: str | list[str] = Field(description="an error class, or any of several")

    def classes(self) -> tuple[str, ...]:
        return (self.error,) if isinstance(self.error, str) else tuple(self.error)


class FailedExpect(_Strict):
    failed: str = Field(description="the error class of the failed task")


class Expect(_Strict):
    init: Literal["OK"] | ErrorExpect = Field(default="OK", description="how init() ends; with an error the "
                                              "program does not run")
    run: Literal["OK"] | ErrorExpect = "OK"
    tasks: dict[str, OutcomeWord | FailedExpect] = Field(
        default_factory=dict, description="per task (a submit id of the root program, or a record task id)")
    exact_tasks: bool = Field(default=False, description="the record holds no task other than those listed")
    outputs: list[Name] = Field(default_factory=list,
                                description="tensors compared with the reference executor's run of the program")


# ------------------------------------------------------------------------------------------- provenance


class Found(_Strict):
    """Where a generated case came from: informational, never judged."""

    by: str | None = Field(default=None, description="what found it (a fuzzer, a campaign, a person)")
    backend: str | None = None
    version: str | None = None
    seed: int | None = None
    property: str | None = Field(default=None, description="the property or invariant it broke")
    signature: str | None = Field(default=None, description="what kind of departure it is (tierbed fuzz keeps "
                                  "one case per signature)")
    observed: dict[str, Any] | None = Field(default=None, description="what was observed, free-form")
    note: str | None = None


# ------------------------------------------------------------------------------------------- the scenario


class Scenario(_Strict):
    """A whole scenario file."""

    scenario: Name
    description: str = ""
    level: Literal["MUST", "SHOULD"] = "MUST"
    topology: WorkerNode
    tensors: list[TensorDef] = Field(default_factory=list)
    callables: list[CallableDef] = Field(default_factory=list)
    unregister: list[UnregisterDef] = Field(default_factory=list, description="handles released before or "
                                            "after init() (before the run)")
    program: dict[Name, ProgramEntry] = Field(
        min_length=1, description="per orchestrating worker: a list of steps, or {params, steps}")
    faults: list[FaultDef] = Field(default_factory=list)
    expect: Expect = Field(default_factory=Expect)
    seed: int | None = Field(default=None, ge=0, description="the run seed (a command line's --seed wins)")
    fault_space: FaultSpace | None = Field(default=None, description="what a campaign's seeds draw faults from")
    invariants: list[str] = Field(default_factory=list, description="invariants checked after the run: built-in "
                                  "names (see 'tierbed campaign --help') or module:function")
    found: Found | None = Field(default=None, description="provenance of a found case (not judged)")

    @model_validator(mode="after")
    def _lists_are_programs(self) -> Scenario:
        for k, v in list(self.program.items()):
            if isinstance(v, list):
                self.program[k] = Program.model_construct(params=[], steps=v)
        return self

    def programs(self) -> dict[str, Program]:
        return {k: v for k, v in self.program.items() if isinstance(v, Program)}

    # ---------------------------------------------------------------- helpers for the runner

    def workers(self) -> dict[str, tuple[WorkerNode, WorkerNode | None]]:
        """Every Worker by name, with its parent."""
        out: dict[str, tuple[WorkerNode, WorkerNode | None]] = {}

        def walk(n: WorkerNode, parent: WorkerNode | None) -> None:
            out.setdefault(n.name, (n, parent))
            for c in n.children:
                walk(c, n)

        walk(self.topology, None)
        return out

    def has_remote(self) -> bool:
        return any(n.remote for n, _ in self.workers().values())


def parse_faults(faults: list[dict[str, Any]]) -> list[Any]:
    """Fault mappings (the ``faults:`` vocabulary) as validated fault models; ValueError naming the field."""
    from pydantic import TypeAdapter, ValidationError

    try:
        return TypeAdapter(list[FaultDef]).validate_python(faults)
    except ValidationError as exc:
        e = exc.errors()[0]
        raise ValueError(f"faults.{'.'.join(str(p) for p in e['loc'])}: {e['msg']}") from None


def scenario_json_schema() -> dict[str, Any]:
    """The JSON Schema of the scenario format (what editors validate against)."""
    schema = Scenario.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "tierbed scenario"
    return schema


def schema_text() -> str:
    return json.dumps(scenario_json_schema(), indent=2, sort_keys=True) + "\n"


def scenario_to_yaml(scn: Scenario) -> str:
    """``scn`` as scenario YAML that :func:`parse_scenario` loads back to an equal Scenario.

    Defaults are left out; keys come in the models' field order (deterministic); a program without
    params is written as its list of steps; mappings and lists of scalars only are written inline.
    """
    data = scn.model_dump(mode="json", exclude_defaults=True)
    for name, prog in list(data.get("program", {}).items()):
        if isinstance(prog, dict) and set(prog) == {"steps"}:
            data["program"][name] = prog["steps"]
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120, allow_unicode=True)


# ------------------------------------------------------------------------------------------- loading


class ScenarioError(YamlFileError):
    """A scenario file that cannot be used: names the file, the line (1-based) and the field."""


def parse_scenario(text: str, file: str = "<scenario>") -> Scenario:
    """Validate scenario ``text``; raise :class:`ScenarioError` naming ``file``, the line and the field."""
    node, data = compose(text, file, ScenarioError,
                         depth_hint=f" (scopes nest at most {MAX_SCOPE_DEPTH} deep: sim.node.MAX_SCOPE_DEPTH)")
    deep = _too_deep_scope(node)
    if deep is not None:
        raise ScenarioError(file, deep.start_mark.line + 1, "", f"scope nesting deeper than {MAX_SCOPE_DEPTH} "
                                                                "(sim.node.MAX_SCOPE_DEPTH)")
    if not isinstance(data, dict):
        raise ScenarioError(file, 1, "", "a scenario is a YAML mapping (scenario:, topology:, program:, ...)")
    scn = validate(node, data, Scenario, file, "scenario", ScenarioError)
    problems = check_semantics(scn)
    if problems:
        loc, msg = problems[0]
        line, path = locate(node, loc, missing=True)
        raise ScenarioError(file, line, path, msg)
    return scn


def _too_deep_scope(root: yaml.Node | None) -> yaml.Node | None:
    """The ``scope`` key that nests deeper than MAX_SCOPE_DEPTH scopes, if any (the tree is already bounded)."""
    stack: list[tuple[yaml.Node, int]] = [(root, 0)] if root is not None else []
    while stack:
        node, depth = stack.pop()
        if isinstance(node, yaml.SequenceNode):
            stack.extend((n, depth) for n in node.value)
        elif isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                d = depth
                if isinstance(k, yaml.ScalarNode) and k.value == "scope" and isinstance(v, yaml.SequenceNode):
                    d += 1
                    if d > MAX_SCOPE_DEPTH:
                        return k
                stack.append((v, d))
    return None


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file."""
    return parse_scenario(read_text(path, "scenario", ScenarioError), str(path))


# ------------------------------------------------------------------------------------------- semantics


def _error_classes() -> set[str]:
    from sim.errors import ErrorClass

    return {e.value for e in ErrorClass}


def _root_labels(scn: Scenario) -> set[str]:
    prog = scn.programs().get(scn.topology.name)
    out: set[str] = set()

    def walk(steps: list[Any]) -> None:
        for st in steps:
            if isinstance(st, Scope):
                walk(st.scope)
            elif isinstance(st, Submit) and st.id is not None:
                out.add(st.id)

    if prog is not None:
        walk(prog.steps)
    return out


def check_semantics(scn: Scenario) -> list[tuple[Loc, str]]:
    """Cross-references the schema cannot state: names that must exist, ids that must fit the topology."""
    from reference import kernel_names

    out: list[tuple[Loc, str]] = []
    workers = scn.workers()
    kernels = set(kernel_names())
    classes = _error_classes()
    init_fails = isinstance(scn.expect.init, ErrorExpect)

    def walk_topology(n: WorkerNode, loc: Loc, seen: set[str]) -> None:
        if n.name in seen:
            out.append(((*loc, "name"), f"worker name {n.name!r} is used twice"))
        seen.add(n.name)
        if n.level == 3 and n.device_ids is None and not n.remote:
            out.append(((*loc, "device_ids"), "an L3 Worker needs device_ids (its chips; [] for none)"))
        if n.level != 3 and n.device_ids is not None:
            out.append(((*loc, "device_ids"), f"device_ids applies to L3, not L{n.level}"))
        if n.level <= 3 and n.children:
            out.append(((*loc, "children"), f"an L{n.level} Worker has chips, not child Workers"))
        if n.remote and n.level != 3:
            out.append(((*loc, "remote"), "only an L3 Worker can be remote"))
        if n.remote and loc == ("topology",):
            out.append(((*loc, "remote"), "the root Worker cannot be remote"))
        for i, c in enumerate(n.children):
            if c.level != n.level - 1:
                out.append(((*loc, "children", i, "level"), f"a child of an L{n.level} Worker is L{n.level - 1}, "
                                                            f"not L{c.level}"))
            walk_topology(c, (*loc, "children", i), seen)

    walk_topology(scn.topology, ("topology",), set())
    tensors: set[str] = set()
    for i, t in enumerate(scn.tensors):
        if t.name in tensors:
            out.append((("tensors", i, "name"), f"tensor {t.name!r} is declared twice"))
        tensors.add(t.name)

    callables: dict[str, CallableDef] = {}
    for i, c in enumerate(scn.callables):
        loc = ("callables", i)
        if c.name in callables:
            out.append(((*loc, "name"), f"callable {c.name!r} is declared twice"))
        callables[c.name] = c
        if c.worker not in workers:
            out.append(((*loc, "worker"), f"no worker named {c.worker!r}; workers: {', '.join(workers)}"))
            continue
        w = workers[c.worker][0]
        if c.kernel is not None and c.kernel not in kernels:
            out.append(((*loc, "kernel"), f"unknown reference kernel {c.kernel!r}; known: "
                                          f"{', '.join(sorted(kernels))}"))
        if c.kernel is not None and c.runs_on == "chip" and w.level != 3 and not any(k.remote for k in w.children):
            out.append(((*loc, "runs_on"), f"a chip callable is registered on an L3 Worker (or on the parent of "
                                           f"remote L3s, for their sessions), {c.worker} is L{w.level}"))
        if c.is_sub and w.level < 3:
            out.append(((*loc, "worker"), f"a SUB callable is registered on an L3 or higher Worker, {c.worker} is "
                                          f"L{w.level}"))
        elif c.is_sub and w.num_sub_workers == 0 and not init_fails:
            out.append(((*loc, "worker"), f"{c.worker} has no SUB workers (num_sub_workers: 0); an init() that "
                                          "fails for it is stated with expect: {init: {error: INVALID_STATE}}"))
        if c.remote is not None:
            remote_kids = [k.name for k in w.children if k.remote]
            if not remote_kids:
                out.append(((*loc, "worker"), f"{c.worker} has no remote children for a remote callable"))
            for j, name in enumerate(c.targets or []):
                if name not in remote_kids:
                    out.append(((*loc, "targets", j), f"{name!r} is not a remote child of {c.worker}; "
                                                 f"remote children: {', '.join(remote_kids) or 'none'}"))

    unregistered: dict[str, UnregisterDef] = {}
    for i, u in enumerate(scn.unregister):
        loc = ("unregister", i)
        c = callables.get(u.callable)
        if c is None:
            out.append(((*loc, "callable"), f"no callable named {u.callable!r}; declared: "
                                            f"{', '.join(callables) or 'none'}"))
            continue
        if u.callable in unregistered:
            out.append(((*loc, "callable"), f"{u.callable!r} is unregistered twice (a callable is unregistered "
                                            "at most once)"))
        unregistered[u.callable] = u
        if c.after_init and u.when == "before_init":
            out.append(((*loc, "when"), f"{u.callable!r} is registered after init (after_init: true): it can only "
                                        "be unregistered after_init"))

    def check_args(args: list[Any], loc: Loc, bound: set[str]) -> None:
        for k, a in enumerate(args):
            if isinstance(a, TensorArg) and a.tensor not in tensors and a.tensor not in bound:
                out.append(((*loc, k, "tensor"), f"no tensor named {a.tensor!r}; declared: "
                                                 f"{', '.join(sorted(tensors | bound)) or 'none'}"))

    def check_worker(w: WorkerNode, ref: Any, loc: Loc) -> None:
        if w.level == 3:
            n = len(w.device_ids or [])
            if isinstance(ref, str) or not 0 <= ref < n:
                out.append((loc, f"{w.name} is L3: worker is a chip index 0..{n - 1}, got {ref!r}"))
        else:
            names = [c.name for c in w.children]
            ok = ref in names if isinstance(ref, str) else 0 <= ref < len(names)
            if not ok:
                out.append((loc, f"{w.name} has no child worker {ref!r}; children: {', '.join(names) or 'none'}"))

    def child_of(w: WorkerNode, ref: Any) -> WorkerNode | None:
        if w.level == 3:
            return None
        for i, c in enumerate(w.children):
            if ref == c.name or ref == i:
                return c
        return None

    def check_steps(w: WorkerNode, steps: list[Any], loc: Loc, bound: set[str], allocs: set[str]) -> None:
        bound = set(bound)  # what this scope binds ends with it
        for j, st in enumerate(steps):
            sl = (*loc, j)
            if isinstance(st, Scope):
                check_steps(w, st.scope, (*sl, "scope"), bound, allocs)
                continue
            if isinstance(st, Alloc):
                if st.alloc in tensors or st.alloc in bound or st.alloc in allocs:
                    what = ("a tensor" if st.alloc in tensors else "an earlier alloc" if st.alloc in allocs
                            else "a parameter")
                    out.append(((*sl, "alloc"), f"{st.alloc!r} is already {what} of this program: an alloc "
                                                "names a new tensor"))
                allocs.add(st.alloc)
                bound.add(st.alloc)
                continue
            if st.id is not None and loc[:2] != ("program", scn.topology.name):
                out.append(((*sl, "id"), "submit ids label tasks of the root program only"))
            targets = [(st.worker, (*sl, "worker"))] if st.kind == "next_level" else []
            targets += [(m.worker, (*sl, "members", k, "worker")) for k, m in enumerate(st.members or [])
                        if st.kind == "group"]
            for ref, rl in targets:
                check_worker(w, ref, rl)
            if st.callable is not None:
                c = callables.get(st.callable)
                if c is None:
                    out.append(((*sl, "callable"), f"no callable named {st.callable!r}; declared: "
                                                   f"{', '.join(callables) or 'none'}"))
                elif c.worker != w.name:
                    out.append(((*sl, "callable"), f"{st.callable!r} is registered on {c.worker}, not {w.name}"))
                elif (st.kind in ("sub", "sub_group")) != c.is_sub:
                    want = ("a SUB callable (runs_on: sub, or builtin:)" if st.kind in ("sub", "sub_group")
                            else "a chip or remote callable")
                    out.append(((*sl, "callable"), f"a {st.kind} submit needs {want}"))
            elif st.kind == "next_level":
                child = child_of(w, st.worker)
                if child is not None and (child.remote or child.name not in scn.program):
                    out.append(((*sl, "callable"), f"{child.name} has no program: name a callable"))
                elif w.level == 3:
                    out.append(((*sl, "callable"), "a chip submit needs callable:"))
            check_args(st.args, (*sl, "args"), bound)
            for k, m in enumerate(st.members or []):
                check_args(m.args, (*sl, "members", k, "args"), bound)

    for name, prog in scn.programs().items():
        if name not in workers:
            out.append((("program", name), f"no worker named {name!r}; workers: {', '.join(workers)}"))
            continue
        w, parent = workers[name]
        if w.remote:
            out.append((("program", name), "a remote L3 runs remote callables, not a program"))
            continue
        if parent is None and prog.params:
            out.append((("program", name, "params"), "the root program has no parameters"))
        check_steps(w, prog.steps, ("program", name, "steps"), set(prog.params), set())
    if scn.topology.name not in scn.program:
        out.append((("program",), f"no program for the root worker {scn.topology.name!r}"))

    remote_kids = {n.name: n for n, _ in workers.values() if n.remote}
    for i, f in enumerate(scn.faults):
        ref = getattr(f, "worker", None)
        if isinstance(ref, str) and ref not in remote_kids:
            out.append((("faults", i, "worker"), f"{ref!r} is not a remote worker; remote workers: "
                                                 f"{', '.join(remote_kids) or 'none'}"))
        if isinstance(f, FaultPointF) and f.target is not None and f.target not in workers:
            out.append((("faults", i, "target"), f"{f.target!r} is not a worker of the topology; workers: "
                                                 f"{', '.join(workers)}"))
    for phase in ("init", "run"):
        want = getattr(scn.expect, phase)
        if isinstance(want, ErrorExpect):
            for c in want.classes():
                if c not in classes:
                    out.append((("expect", phase, "error"), f"unknown error class {c!r}"))
    if init_fails:
        for field in ("run", "tasks", "outputs"):
            if field in scn.expect.model_fields_set:
                out.append((("expect", field), f"init() is expected to fail, so nothing runs: expect.{field} "
                                               "does not apply"))
    labels = _root_labels(scn)
    for key, want in scn.expect.tasks.items():
        if key not in labels and ":r" not in key:
            out.append((("expect", "tasks", key), f"{key!r} is neither a submit id of the root program "
                                                  f"({', '.join(sorted(labels)) or 'none'}) nor a task id "
                                                  "like 'l3:r1:t1'"))
        if isinstance(want, FailedExpect) and want.failed not in classes:
            out.append((("expect", "tasks", key, "failed"), f"unknown error class {want.failed!r}"))
    for i, name in enumerate(scn.expect.outputs):
        if name not in tensors:
            out.append((("expect", "outputs", i), f"no tensor named {name!r}"))
    if scn.expect.outputs and (scn.has_remote() or scn.faults):
        out.append((("expect", "outputs"), "outputs are judged against the reference executor, which has no "
                                           "remote workers or faults: expect outcomes instead"))
    for i, name in enumerate(scn.invariants):
        if name not in BUILTIN_INVARIANTS and (name.count(":") != 1 or not all(name.split(":"))):
            out.append((("invariants", i), f"unknown invariant {name!r}: built-in ones are "
                                           f"{', '.join(BUILTIN_INVARIANTS)}, or give module:function"))
    return out


__all__ = ["SCHEMA_FILE", "Scenario", "ScenarioError", "check_semantics", "load_scenario", "parse_faults",
           "parse_scenario", "scenario_json_schema", "scenario_to_yaml", "schema_text"]
