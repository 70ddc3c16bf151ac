"""Fault-injection campaigns: many seeds, drawn fault plans, invariants, shrunk replayable failures.

``tierbed campaign SCENARIO --seeds A:B`` and :func:`run_campaign` are the product; see
:mod:`conformance.campaign.api`. The anchors are FoundationDB's simulation (seeded runs, BUGGIFY
fault points, swizzle-clogging), TigerBeetle's VOPR (safety and liveness modes) and Jepsen
(nemesis, checker, readable report).
"""

from conformance.campaign.api import CampaignResult, load_case, parse_seeds, replay_seed, run_campaign, run_case
from conformance.campaign.invariants import BUILTIN as BUILTIN_INVARIANTS
from conformance.campaign.invariants import Observation
from conformance.campaign.target import CampaignInputError, load_target
from conformance.fault_space import FAULT_KINDS, FaultSpace

__all__ = ["BUILTIN_INVARIANTS", "FAULT_KINDS", "CampaignInputError", "CampaignResult", "FaultSpace", "Observation",
           "load_case", "load_target", "parse_seeds", "replay_seed", "run_campaign", "run_case"]
