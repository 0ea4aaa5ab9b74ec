"""HTTP route of the marketplace's events: POST /events (role intake).

A batch is checked (422 naming every offending field), stored in one transaction (409 if a known id comes
with other content; nothing of the batch is stored then), and only then answered: what is acknowledged is
durable. New orders are then scored by the order fraud model at once, and one above
`monitors.fraud_threshold` opens an automated_detection case (transaction monitoring as orders arrive); the
fulfilment rules judge the sellers whose orders or shipping facts arrived (a rules_engine case when one fires).
"""
from __future__ import annotations

from typing import Any

import bentoml
from fastapi import Body, Depends, Request
from fastapi.responses import JSONResponse

from serving.events import check_batch
from serving.ledger_routes import _now, actor_of, app
from serving.market import ConflictError


def service(svc: Any = Depends(bentoml.get_current_service)):
    return svc


@app.exception_handler(ConflictError)
async def _conflict(request: Request, exc: ConflictError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=409)


@app.post("/events")
def ingest(request: Request, body: Any = Body(None), svc=Depends(service)):
    """Store a batch of accounts, account updates, orders, order updates, enforcements and outcomes."""
    batch = check_batch(body, svc.settings.max_batch)
    now = _now()
    result = svc.market.ingest(batch, actor=actor_of(request), now=now)
    known = set(result["already_known"].get("orders", []))
    result["cases"] = svc.watch_orders([r for r in batch.rows.get("orders", []) if r["order_id"] not in known], now) \
        + svc.watch_fulfilment(batch.rows, now)
    return result
