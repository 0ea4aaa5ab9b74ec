"""ConflictError: a known id sent again with other content (HTTP 409), for every domain that stores by id.

It lives at the store's layer so the ledger, the marketplace's events and the queue's intake all raise the one
type (issue 15: "409 for a known id with different content, everywhere"); serving.api.errors turns it into
the 409. Each conflict names the field that differs, so a caller can tell a bug from a retry.
"""
from __future__ import annotations

from serving.input_checks import FieldError

ALREADY_STORED = "conflict: already stored with other content"


class ConflictError(ValueError):
    """Known ids sent again with other content: nothing of the request is stored (HTTP 409)."""

    def __init__(self, conflicts: list[FieldError], message: str = ALREADY_STORED):
        self.conflicts, self.message = conflicts, message
        super().__init__(f"{message}: " + "; ".join(f"{c.field}: {c.message}" for c in conflicts))

    def body(self) -> dict:
        return {"error": self.message, "detail": [c.as_dict() for c in self.conflicts]}
