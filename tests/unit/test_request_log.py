"""The request log's pieces: request ids, route templates, JSON lines, bounded metric labels."""
from __future__ import annotations

import json
import logging

import pytest

from serving.api import metrics
from serving.api.app import ROUTERS
from serving.api.request_log import UNMATCHED, JsonLines, RouteTemplates, request_id


@pytest.mark.parametrize("sent", [b"abc-123", b"a.b:c_d-e", b"x" * 64])
def test_a_safe_request_id_is_kept(sent):
    assert request_id([(b"X-Request-ID", sent)]) == sent.decode()


@pytest.mark.parametrize("sent", [b"", b"x" * 65, b"a b", b'a"b', b"caf\xe9", b"a\nb", b"<script>"])
def test_an_unsafe_or_missing_request_id_is_replaced_by_a_fresh_one(sent):
    made = request_id([(b"x-request-id", sent)])
    assert made != sent.decode("latin-1") and len(made) == 32
    assert request_id([]) != request_id([])


@pytest.mark.parametrize("path, template", [
    ("/cases/case-r-1", "/cases/{case_id}"), ("/cases/case-r-1/resolve", "/cases/{case_id}/resolve"),
    ("/accounts/a0001/health", "/accounts/{account_id}/health"), ("/keys/abc/revoke", "/keys/{key_id}/revoke"),
    ("/score", "/score"), ("/livez", "/livez"), ("/metrics", "/metrics"), ("/no/such/path/123", UNMATCHED)])
def test_paths_become_their_route_template_never_an_id(path, template):
    assert RouteTemplates(ROUTERS)(path) == template


def test_a_log_record_is_one_json_line_with_its_fields():
    record = logging.LogRecord("docket.requests", logging.INFO, __file__, 1, "request", None, None)
    record.fields = {"request_id": "r1", "route": "/score", "status": 200}
    line = JsonLines().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "info" and parsed["request_id"] == "r1" and parsed["time"].endswith("+00:00")


def test_methods_outside_http_s_own_are_counted_as_other():
    metrics.record_request("BREW", "/score", 405, 0.001)
    metrics.record_request("GET", "/score", 405, 0.001)
    methods = {s.labels["method"] for m in metrics.requests.collect() for s in m.samples}
    assert "BREW" not in methods and {"OTHER", "GET"} <= methods


def test_the_models_gauge_follows_a_reload():
    metrics.set_models({"docket-severity": "1", "docket-fraud": "1"}, None)
    metrics.set_models({"docket-severity": "2", "docket-fraud": "1"}, {"docket-severity": "1", "docket-fraud": "1"})
    values = {(s.labels["model"], s.labels["version"]): s.value for m in metrics.models_loaded.collect()
              for s in m.samples}
    assert values[("docket-severity", "1")] == 0 and values[("docket-severity", "2")] == 1
    assert values[("docket-fraud", "1")] == 1
