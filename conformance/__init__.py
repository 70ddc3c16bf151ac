"""Conformance: the case catalog, runner, judgment, reports and the ``tierbed`` CLI.

- :mod:`conformance.backends` -- one runtime-shaped API per backend (``sim``, ``reference``; ``hw`` later);
- :mod:`conformance.catalog` and :mod:`conformance.cases` -- cases keyed by ``AREA-NNN``;
- :mod:`conformance.context` -- what a case declares and observes; :mod:`conformance.judge` -- verdicts;
- :mod:`conformance.runner` -- one process per case, with timeouts; :mod:`conformance.report` -- JSON, JUnit;
- :mod:`conformance.cli` -- ``tierbed demo``, ``tierbed list``, ``tierbed conform``.
"""
