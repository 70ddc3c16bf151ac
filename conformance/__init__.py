"""Conformance: the case catalog, runner, judgment, reports and the ``tierbed`` CLI.

- :mod:`conformance.backends` -- one runtime-shaped API per backend (``sim``, ``reference``, ``hw``);
- :mod:`conformance.catalog` and :mod:`conformance.cases` -- cases keyed by ``AREA-NNN``;
- :mod:`conformance.context` -- what a case declares and observes; :mod:`conformance.judge` -- verdicts;
- :mod:`conformance.runner` -- one process per case, with timeouts;
- :mod:`conformance.report` -- JSON and JUnit; :mod:`conformance.html` -- the HTML matrix;
- :mod:`conformance.scenario` and :mod:`conformance.scenario_runner` -- YAML scenarios;
- :mod:`conformance.pytest_plugin` -- the catalog as pytest items (``--tierbed-backend``);
- :mod:`conformance.cli` -- ``tierbed demo``, ``list``, ``conform``, ``report``, ``run``, ``scenario-schema``
  (the console script is :func:`conformance.entry.run`).
"""
