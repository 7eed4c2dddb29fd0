"""All state the facade keeps: Redis keys, their lifetimes and their atomic operations."""

from proxy.store.store import FamilyGrant, RedeemedCode, RefreshOutcome, Store

__all__ = ["FamilyGrant", "RedeemedCode", "RefreshOutcome", "Store"]
