"""The service's metrics: defined, recorded, and served on GET /metrics; every label from a bounded set.

Labels are route templates, families, scored-by, event kinds, model names and versions; never a case, report,
account or key id, so no series is born per request. BentoML's own request metrics label each request with its
raw path (`endpoint="/cases/case-r-1"`: one series per case, per account, per random path a scanner tries), and
BentoML cannot be told otherwise, so the service turns them off (`metrics={"enabled": False}` in
serving/service.py) and this module serves /metrics instead, with requests counted by route template.

prometheus_client directly (BentoML 1.4 deprecates its bentoml.metrics alias): BentoML starts each worker with
PROMETHEUS_MULTIPROC_DIR in its environment, so the metrics are written to the shared files and /metrics adds up
every worker's counters, whichever worker answers. Gauges say how the workers combine: the backlog is the same
store read by every worker (the latest value wins), the models gauge counts the live workers serving a version.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

from config import settings as S

PREFIX = "docket"

requests = Counter(
    name=f"{PREFIX}_http_requests", documentation="Requests answered, by method, route template and status.",
    labelnames=["method", "route", "status"])
request_seconds = Histogram(
    name=f"{PREFIX}_http_request_duration_seconds", documentation="Time to answer, by method and route template.",
    labelnames=["method", "route"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
reports_accepted = Counter(
    name=f"{PREFIX}_reports_accepted", documentation="Reports accepted (new, not already known), by where they came "
    "from (api: POST /reports; transactions, fulfilment: the monitors, as events arrive) and what scored them: model "
    "or rules (the rules-only priority while the models are away).",
    labelnames=["source", "scored_by"])
events_stored = Counter(
    name=f"{PREFIX}_events_stored", documentation="Marketplace events stored by POST /events, by kind.",
    labelnames=["kind"])
claims = Counter(
    name=f"{PREFIX}_claims", documentation="Claims answered: a case handed out, or none (the queue was empty).",
    labelnames=["outcome"])
resolutions = Counter(
    name=f"{PREFIX}_resolutions", documentation="Cases resolved by their holder (POST /cases/{id}/resolve).")
queue_depth = Gauge(
    name=f"{PREFIX}_queue_depth", documentation="Unresolved cases (open or claimed), by family.",
    labelnames=["family"], multiprocess_mode="livemostrecent")
queue_oldest = Gauge(
    name=f"{PREFIX}_queue_oldest_case_age_seconds", documentation="Age of the oldest unresolved case, by family.",
    labelnames=["family"], multiprocess_mode="livemostrecent")
goals_missed = Gauge(
    name=f"{PREFIX}_queue_goals_missed", documentation="Unresolved cases past their response-time goal, by family.",
    labelnames=["family"], multiprocess_mode="livemostrecent")
models_loaded = Gauge(
    name=f"{PREFIX}_model_loaded", documentation="Workers serving each registered model version (0: no longer).",
    labelnames=["model", "version"], multiprocess_mode="livesum")


router = APIRouter()


@router.get("/metrics")
def metrics() -> Response:
    """Every worker's metrics in Prometheus' text format (no key needed: serving/api/auth.py OPEN_PATHS)."""
    return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)


def _registry():
    """All workers' metrics when BentoML runs several (the multiprocess files), else this process's."""
    from prometheus_client import REGISTRY

    if not S.process_environment().get("PROMETHEUS_MULTIPROC_DIR"):  # set by BentoML for its workers
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def record_request(method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in METHODS else "OTHER"  # a client may send any word as its method
    requests.labels(method=method, route=route, status=str(status)).inc()
    request_seconds.labels(method=method, route=route).observe(seconds)


def counted_intake(result: dict, source: str = "api") -> dict:
    """An intake's answer (POST /reports', or a monitor's), counted; returned unchanged."""
    if result.get("accepted"):
        reports_accepted.labels(source=source, scored_by=result.get("scored_by") or "unknown").inc(
            len(result["accepted"]))
    return result


def counted_events(stored: Mapping[str, int]) -> None:
    for kind, n in stored.items():
        if n:
            events_stored.labels(kind=kind).inc(n)


def counted_claim(case: dict | None) -> dict | None:
    """A claim's case (or None), counted (returned unchanged)."""
    claims.labels(outcome="case" if case else "empty").inc()
    return case


def counted_resolution(result: dict) -> dict:
    """A resolution's answer, counted (returned unchanged)."""
    resolutions.inc()
    return result


def set_backlog(rows: Iterable, families: Iterable[str]) -> None:
    """The backlog per family (serving/queue/backlog.py); a family with nothing unresolved reads 0."""
    by_family = {row.family: row for row in rows}
    for family in families:
        row = by_family.get(family)
        queue_depth.labels(family=family).set(row.cases if row else 0)
        queue_oldest.labels(family=family).set(row.oldest_seconds if row else 0)
        goals_missed.labels(family=family).set(row.past_goal if row else 0)


def set_models(now_serving: Mapping[str, str], before: Mapping[str, str] | None) -> None:
    """This worker serves `now_serving` ({model: version}) instead of `before`."""
    for model, version in (before or {}).items():
        if now_serving.get(model) != version:
            models_loaded.labels(model=model, version=str(version)).set(0)
    for model, version in now_serving.items():
        models_loaded.labels(model=model, version=str(version)).set(1)
