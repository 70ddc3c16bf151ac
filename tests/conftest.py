"""Test-suite settings shared by every test folder."""

import os

from hypothesis import settings

# CI runs the properties with a fixed example sequence, so a landing is never decided by a new
# random example; local runs keep exploring and report any failure with a reproducible blob.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "dev")
