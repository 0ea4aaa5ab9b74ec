"""The identifiers Docket shares with the marketplace, in one place.

These exact strings appear in the data, the API and the policy file. Any other
spelling is rejected at the boundary rather than mapped, so a typo in a feed
shows up as an error instead of as a silently empty category.
"""
from __future__ import annotations

ROLES: tuple[str, ...] = ("buyer", "seller")

REPORTER_TYPES: tuple[str, ...] = (
    "buyer",
    "seller",
    "moderator",
    "automated_detection",
    "rules_engine",
)

# `system` is for reports raised by Docket's own monitors, which have no user channel.
CHANNELS: tuple[str, ...] = ("livestream", "profile", "direct_message", "system")

FAMILIES: tuple[str, ...] = ("behavioral", "logistics", "fraud")

CATEGORY_FAMILY: dict[str, str] = {
    "harassment": "behavioral",
    "hate_speech": "behavioral",
    "threats_of_harm": "behavioral",
    "violent_content": "behavioral",
    "explicit_content": "behavioral",
    "disruptive_auction_behavior": "behavioral",
    "spam": "behavioral",
    "shipping_delay": "logistics",
    "missing_item": "logistics",
    "wrong_item": "logistics",
    "damaged_item": "logistics",
    "counterfeit": "fraud",
    "misrepresented_item": "fraud",
    "non_delivery_scam": "fraud",
    "payment_fraud": "fraud",
    "shill_bidding": "fraud",
}
CATEGORIES: tuple[str, ...] = tuple(CATEGORY_FAMILY)

SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")

ACTIONS: tuple[str, ...] = (
    "warning",
    "suspension",
    "revoke_selling",
    "ban",
    "lose_early_payout",
    "increased_commission",
    "reduced_discoverability",
    "feature_restriction",
    "investigation_hold",
)


def family_of(category: str) -> str:
    """The issue family a category belongs to (raises KeyError for unknown categories)."""
    return CATEGORY_FAMILY[category]
