"""Conformance: the case catalog, runner, comparison and reports (to come), and the ``tierbed`` CLI.

Today this room holds the command line (:mod:`conformance.cli`); the catalog and runner that
replay cases on every backend are the next piece of work.
"""
