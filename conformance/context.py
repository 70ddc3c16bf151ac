"""What a case declares and observes: the :class:`CaseContext` handed to every case as ``ctx``.

A case drives the runtime and states its expectations here; the judge
(:mod:`conformance.judge`) turns them into a verdict. Expectations are of five kinds, matching the
observables of ``DESIGN.md``:

- ``ctx.observe(record)`` -- a RunRecord the backend returned; every dependency edge in it is
  checked (end(producer) <= start(consumer)) without being asked;
- ``ctx.expect_outcomes(record, {task_id: "COMPLETED" | "NOT_RUN" | ("FAILED", "ERROR_CLASS")})``
  and ``ctx.expect_producers(record, task_id, (producer ids))``;
- ``with ctx.expect_error("label", "ERROR_CLASS"):`` / ``with ctx.expect_ok("label"):`` -- a call's
  outcome, OK or ERROR(error class);
- ``ctx.expect_output(record, name, golden, kernel=...)`` -- an output against a golden computed
  with the reference kernels (``ctx.golden(kernel, *values)``), with the kernel's dtype tolerance;
- ``ctx.check(label, expected, observed)`` -- any other observable value.

Every expectation may be marked ``should=True``: missing only such expectations gives NON_STRICT
instead of FAIL.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conformance.backends import NotSupportedByBackend, Unobservable


@dataclass
class Expectation:
    """One declared expectation and what was observed for it."""

    kind: str  # outcome | producers | call | output | value | order
    label: str
    expected: Any
    observed: Any = None
    should: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class CaseContext:
    """Expectations and observations of one case run."""

    def __init__(self, backend: Any, seed: int) -> None:
        self.rt = backend
        self.seed = seed
        self.expectations: list[Expectation] = []
        self.records: list[Any] = []
        self.notes: list[str] = []

    # ---------------------------------------------------------------- records

    def observe(self, record: Any, label: str = "") -> Any:
        """Keep a RunRecord for judgment (dependency order is always checked); return it."""
        self.records.append((label or f"record {len(self.records) + 1}", record))
        return record

    def take(self, worker: Any, label: str = "") -> Any:
        """``worker.take_record()`` and observe it."""
        return self.observe(worker.take_record(), label)

    def note(self, text: str) -> None:
        self.notes.append(text)

    # ---------------------------------------------------------------- task outcomes

    def expect_outcomes(self, record: Any, expected: Mapping[str, Any], *, exact: bool = False,
                        should: bool = False) -> None:
        """Per-task outcome: ``"COMPLETED"``, ``"NOT_RUN"``, ``"FAILED"`` or ``("FAILED", class)``.

        With ``exact=True`` the record must hold no other task.
        """
        for tid, want in expected.items():
            t = record.tasks.get(tid)
            got = None if t is None else (t.outcome.value if t.outcome.value != "FAILED"
                                          else ("FAILED", t.error_class))
            if isinstance(want, str) and want == "FAILED" and isinstance(got, tuple):
                got = "FAILED"
            if isinstance(want, tuple):
                want = tuple(want)
            exp = Expectation("outcome", tid, want, got if got is not None else "ABSENT", should)
            if tid in record.metadata.get("unobserved_tasks", ()):
                exp.extra["unobservable"] = "the backend cannot observe this task's outcome"
            self.expectations.append(exp)
        if exact:
            extra = sorted(set(record.tasks) - set(expected))
            self.expectations.append(Expectation("outcome", "no other tasks", [], extra, should))

    def expect_producers(self, record: Any, task_id: str, producers: tuple[str, ...], *,
                         should: bool = False) -> None:
        """The task's dependency producers, as a set."""
        t = record.tasks.get(task_id)
        got = sorted(t.producers) if t is not None else "ABSENT"
        exp = Expectation("producers", task_id, sorted(producers), got, should)
        if record.metadata.get("producers") == "not observed":
            exp.extra["unobservable"] = "the backend does not observe dependency producers"
        self.expectations.append(exp)

    # ---------------------------------------------------------------- calls

    @contextlib.contextmanager
    def _call(self, exp: Expectation) -> Iterator[Expectation]:
        """Record ``exp`` and what the block did: OK, or the class and message of its error."""
        self.expectations.append(exp)
        try:
            yield exp
        except NotSupportedByBackend:
            raise
        except Exception as exc:
            exp.observed = f"ERROR({self.rt.error_class(exc)})"
            exp.extra["message"] = f"{type(exc).__name__}: {exc}"[:500]
        else:
            exp.observed = "OK"

    @contextlib.contextmanager
    def expect_error(self, label: str, error_class: str | tuple[str, ...], *, should: bool = False
                     ) -> Iterator[Expectation]:
        """The block must raise an error of ``error_class`` (one name, or any of several)."""
        want = (error_class,) if isinstance(error_class, str) else tuple(error_class)
        exp = Expectation("call", label, " | ".join(f"ERROR({w})" for w in want), should=should)
        with self._call(exp):
            yield exp
        if len(want) > 1 and exp.observed in {f"ERROR({w})" for w in want}:
            exp.observed = exp.expected  # one of the accepted classes: judged equal to the expectation

    @contextlib.contextmanager
    def expect_ok(self, label: str, *, should: bool = False) -> Iterator[Expectation]:
        """The block must not raise."""
        with self._call(Expectation("call", label, "OK", should=should)) as exp:
            yield exp

    def run_expecting(self, worker: Any, orch: Any, error_class: str | None, label: str = "run",
                      args: Any = None, config: Any = None) -> Any:
        """``worker.run(orch)`` expecting OK (``None``) or an error class; observe and return the record."""
        if error_class is None:
            with self.expect_ok(label):
                worker.run(orch, args, config)
        else:
            with self.expect_error(label, error_class):
                worker.run(orch, args, config)
        return self.take(worker, label)

    # ---------------------------------------------------------------- values and outputs

    def check(self, label: str, expected: Any, observed: Any, *, should: bool = False) -> bool:
        """Any other observable: equal or not (an :class:`Unobservable` is judged not observable)."""
        if isinstance(observed, Unobservable):
            exp = Expectation("value", label, expected, "not observable", should)
            exp.extra["unobservable"] = observed.why
            self.expectations.append(exp)
            return False
        self.expectations.append(Expectation("value", label, expected, observed, should))
        return _equal(expected, observed)

    def golden(self, kernel: str, *values: Any) -> Any:
        """Run the reference kernel's plain-numpy golden on copies of ``values`` (positional, in the
        kernel's signature order; OUT parameters given as arrays of the right shape); return the
        written outputs (one array, or a tuple)."""
        from reference import get_kernel

        k = get_kernel(kernel)
        vals = [np.array(v, copy=True) if isinstance(v, np.ndarray) else v for v in values]
        k.golden(vals)
        outs = [v for p, v in zip(k.params, vals, strict=True) if p.direction.writes]
        return outs[0] if len(outs) == 1 else tuple(outs)

    def expect_output(self, record: Any, name: str, golden: Any, *, kernel: str | None = None,
                      tolerance: tuple[float, float] | None = None, should: bool = False) -> None:
        """Output ``name`` of ``record`` must match ``golden`` within the kernel's dtype tolerance."""
        g = np.asarray(golden)
        if tolerance is None:
            if kernel is not None:
                from reference import get_kernel

                tolerance = get_kernel(kernel).tolerance(g.dtype)
            else:
                tolerance = (0.0, 0.0)
        observed = record.outputs.get(name)
        self.expectations.append(Expectation("output", name, g, observed, should,
                                             {"rtol": tolerance[0], "atol": tolerance[1], "kernel": kernel}))


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return bool(np.array_equal(np.asarray(a), np.asarray(b)))
    try:
        return bool(a == b)
    except Exception:
        return False
