"""Statistics for researchers and policy: stolen and laundered value per actor, year, month, asset, chain,
cash-out country, entity and category, with the method of every figure (docs/statistics.md)."""

from fundtrail.stats.aggregate import group, shares, timing, weighted_quantile
from fundtrail.stats.model import GROUP_KEYS, MEASURES, Fact, GroupRow, StatsResult
from fundtrail.stats.service import compute_stats, facts_of

__all__ = ["GROUP_KEYS", "MEASURES", "Fact", "GroupRow", "StatsResult", "compute_stats", "facts_of", "group",
           "shares", "timing", "weighted_quantile"]
