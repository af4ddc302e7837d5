"""Audits of synthetic images and of the data they were learnt from: memorisation (nearest training image against
the held-out reference), duplicates across splits and degenerate images."""

from .memorisation import QUANTILES, MemorisationAudit, split_records

__all__ = ["QUANTILES", "MemorisationAudit", "split_records"]
