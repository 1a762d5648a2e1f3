"""Screening: exposure + attribution + policy in, verdict out (pure; no I/O besides reading a policy file)."""

from fundtrail.screen.policy import Policy, Rule, default_policy, parse_policy
from fundtrail.screen.verdict import Verdict, screen_profile

__all__ = ["Policy", "Rule", "default_policy", "parse_policy", "Verdict", "screen_profile"]
