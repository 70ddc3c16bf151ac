"""Hypothesis generators of runtime programs."""
