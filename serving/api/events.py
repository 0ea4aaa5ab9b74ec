"""HTTP route of the marketplace's events: POST /events (role intake).

A batch is checked (422 naming every offending field), stored in one transaction (409 if a known id comes
with other content; nothing of the batch is stored then), and only then answered: what is acknowledged is
durable. New orders are then scored by the order fraud model at once, and one above
`monitors.fraud_threshold` opens an automated_detection case (transaction monitoring as orders arrive); the
fulfilment rules judge the sellers whose orders or shipping facts arrived (a rules_engine case when one fires).
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from serving.api import metrics
from serving.api.routing import BATCH_BODY_BYTES, actor_of, json_payload, now, service
from serving.market.events import check_batch

router = APIRouter()


@router.post("/events")
def ingest(request: Request, body: Any = Depends(json_payload(BATCH_BODY_BYTES)), svc=Depends(service)):
    """Store a batch of accounts, account updates, orders, order updates, enforcements and outcomes."""
    batch = check_batch(body, svc.settings.max_batch)
    at = now()
    result = svc.market.ingest(batch, actor=actor_of(request), now=at)
    metrics.counted_events(result["stored"])
    known = set(result["already_known"].get("orders", []))
    result["cases"] = svc.watch_orders([r for r in batch.rows.get("orders", []) if r["order_id"] not in known], at) \
        + svc.watch_fulfilment(batch.rows, at)
    return result
