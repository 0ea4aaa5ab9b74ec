"""The BentoML service over HTTP, started for real with `bentoml serve`."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import as_request

from config import settings as S
from features import vocabulary as V

RESPONSE_FIELDS = {"report_id", "p_valid", "severity", "severity_probabilities", "fraud_risk", "priority",
                   "reasons", "model_versions"}


@pytest.fixture(scope="module")
def sample(tables) -> pd.DataFrame:
    r = tables["reports"]
    return r.iloc[np.random.default_rng(5).choice(len(r), size=25, replace=False)].reset_index(drop=True)


@pytest.fixture
def post(api):
    """POST JSON with the admin key."""
    return lambda url, path, body: api.post(f"{url}{path}", json=body)


def test_readyz_and_livez_answer_once_models_are_loaded(api, service, post):
    assert api.get(f"{service}/livez").status_code == 200
    assert api.get(f"{service}/readyz").status_code == 200


def test_score_returns_one_result_per_report_in_request_order(api, service, sample, trained, post):
    res = post(service, "/score", {"reports": as_request(sample)})
    assert res.status_code == 200, res.text
    body = res.json()
    assert [r["report_id"] for r in body] == sample["report_id"].tolist()
    for r in body:
        assert RESPONSE_FIELDS <= set(r)
        assert 0 <= r["p_valid"] <= 1 and 0 <= r["fraud_risk"] <= 1 and 0 <= r["priority"] <= 100
        assert r["severity"] in V.SEVERITIES
        assert set(r["severity_probabilities"]) == set(V.SEVERITIES)
        assert abs(sum(r["severity_probabilities"].values()) - 1) < 1e-4
        assert r["severity"] == max(r["severity_probabilities"], key=r["severity_probabilities"].get)
        assert r["model_versions"] == trained.versions
        assert 1 <= len(r["reasons"]) <= 5
        assert all({"feature", "contribution"} <= set(x) for x in r["reasons"])


def test_score_over_http_matches_the_batch_scorer(api, service, sample, tables, settings, post):
    """Online scoring (HTTP, one report at a time) equals offline batch scoring of the same rows."""
    from serving.scoring.runtime import load_runtime

    runtime = load_runtime(settings)
    batch = runtime.scorer.score(sample, runtime.history)
    for i in range(5):
        online = post(service, "/score", {"reports": as_request(sample.iloc[[i]])}).json()[0]
        assert online["p_valid"] == pytest.approx(batch[i]["p_valid"], abs=1e-9)
        assert online["fraud_risk"] == pytest.approx(batch[i]["fraud_risk"], abs=1e-9)
        assert online["reasons"] == batch[i]["reasons"]


def test_rank_orders_by_priority_with_deterministic_ties(api, service, sample, post):
    body = {"reports": as_request(sample)}
    ranked = post(service, "/rank", body).json()
    keys = [(-r["priority"], r["created_at"], r["report_id"]) for r in ranked]
    assert keys == sorted(keys)
    assert sorted(r["report_id"] for r in ranked) == sorted(sample["report_id"])
    # the same reports in another order rank identically
    shuffled = {"reports": list(reversed(body["reports"]))}
    assert [r["report_id"] for r in post(service, "/rank", shuffled).json()] == [r["report_id"] for r in ranked]


def test_rank_breaks_equal_priorities_by_time_then_id(api, service, sample, post):
    one = as_request(sample.iloc[[0]])[0]
    twins = [dict(one, report_id="zz-b"), dict(one, report_id="zz-a")]
    ranked = post(service, "/rank", {"reports": twins}).json()
    assert ranked[0]["priority"] == ranked[1]["priority"]
    assert [r["report_id"] for r in ranked] == ["zz-a", "zz-b"]


@pytest.mark.parametrize(
    "change, field, words",
    [
        (lambda r: r.update(category="hatespeech"), "reports[0].category", "unknown value 'hatespeech'"),
        (lambda r: r.pop("subject_id"), "reports[0].subject_id", "missing field"),
        (lambda r: r.update(created_at="yesterday"), "reports[0].created_at", "not an ISO-8601"),
        (lambda r: r.update(reporter_type=3), "reports[0].reporter_type", "expected a string"),
        (lambda r: r.update(colour="red"), "reports[0].colour", "unknown field"),
        (lambda r: r.update(channel=None), "reports[0].channel", "must not be null"),
    ],
)
def test_bad_fields_get_422_naming_the_field(api, service, sample, change, field, words, post):
    report = as_request(sample.iloc[[0]])[0]
    change(report)
    res = post(service, "/score", {"reports": [report]})
    assert res.status_code == 422, res.text
    assert field in res.text and words in res.text


def test_empty_and_oversized_batches_are_rejected(api, service, sample, post):
    assert post(service, "/score", {"reports": []}).status_code == 422
    one = as_request(sample.iloc[[0]])[0]
    big = [dict(one, report_id=f"b{i}") for i in range(S.Settings.from_env({}).max_batch + 1)]
    res = post(service, "/score", {"reports": big})
    assert res.status_code == 422 and "exceeds the maximum" in res.text


@pytest.mark.parametrize("body", [{}, {"reports": "x"}, {"reports": [1]}, [1, 2]])
def test_malformed_bodies_are_4xx_not_500(api, service, body, post):
    res = post(service, "/score", body)
    assert 400 <= res.status_code < 500, res.text


@pytest.mark.parametrize("path", ["/score", "/rank"])
def test_bodies_that_are_not_the_request_shape_get_a_status_saying_so(api, service, path):
    """/score and /rank answer at the ASGI level (serving/api/scoring.py), so they make their own 4xx."""
    res = api.post(f"{service}{path}", content=b'{"reports": [', headers={"Content-Type": "application/json"})
    assert res.status_code == 400 and "not JSON" in res.json()["error"]
    res = api.post(f"{service}{path}", json={"reports": [], "colour": "red"})
    assert res.status_code == 422 and res.json()["detail"] == [{"field": "colour", "message": "unknown field (allowed: reports)"}]
    res = api.post(f"{service}{path}", json=[1, 2])
    assert res.status_code == 422 and res.json()["detail"][0]["field"] == "body"
    res = api.post(f"{service}{path}", json={})
    assert res.status_code == 422 and res.json()["detail"][0]["field"] == "reports"
    assert api.get(f"{service}{path}").status_code == 405


def test_score_and_rank_need_a_key(service):
    import httpx

    for path in ("/score", "/rank"):
        assert httpx.post(f"{service}{path}", json={"reports": []}, timeout=10).status_code == 401


def test_duplicate_ids_in_one_batch_are_rejected(api, service, sample, post):
    one = as_request(sample.iloc[[0]])[0]
    res = post(service, "/score", {"reports": [one, one]})
    assert res.status_code == 422 and "duplicate" in res.text


def test_concurrent_requests_each_get_their_own_answer_and_an_invalid_one_its_own_422(api, service, sample, settings):
    """Concurrent requests are scored together (serving/scoring/batching.py), yet each client gets exactly its
    reports, with the numbers of scoring them alone, and an invalid request among them fails alone."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from serving.scoring.runtime import load_runtime

    runtime = load_runtime(settings)
    expected = {r["report_id"]: r for r in runtime.scorer.score(sample, runtime.history)}
    bodies = [{"reports": as_request(sample.iloc[[i, (i + 1) % len(sample)]])} for i in range(len(sample))]
    bodies[7]["reports"][1]["category"] = "hatespeech"

    def send(body):
        with httpx.Client(headers=api.headers, timeout=120) as c:
            return c.post(f"{service}/score", json=body)

    for _ in range(3):
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, bodies))
        for i, (body, res) in enumerate(zip(bodies, answers)):
            if i == 7:
                assert res.status_code == 422 and "reports[1].category" in res.text, res.text
                continue
            assert res.status_code == 200, res.text
            got = res.json()
            assert [r["report_id"] for r in got] == [r["report_id"] for r in body["reports"]]
            for r in got:
                want = expected[r["report_id"]]
                assert r["priority"] == pytest.approx(want["priority"], abs=1e-6)
                assert r["reasons"] == want["reasons"]


def test_order_and_reporter_checks_name_the_field(api, service, tables, post):
    reports = tables["reports"]
    with_order = reports[reports["order_id"].notna() & reports["reporter_id"].notna()].iloc[[0]]
    report = as_request(with_order)[0]
    placed = tables["orders"].set_index("order_id").at[report["order_id"], "created_at"]
    early = dict(report, created_at=(placed - pd.Timedelta(hours=1)).isoformat())
    res = post(service, "/score", {"reports": [early]})
    assert res.status_code == 422 and "reports[0].order_id" in res.text and "placed after" in res.text
    own = dict(report, report_id="own-1", reporter_id=report["subject_id"])
    res = post(service, "/score", {"reports": [report, own]})
    assert res.status_code == 422 and "reports[1].reporter_id" in res.text and "its own reporter" in res.text



def test_a_report_about_accounts_and_orders_not_seen_yet_is_scored_and_flagged(api, service, tables, post):
    report = as_request(tables["reports"][tables["reports"]["reporter_id"].notna()].iloc[[0]])[0]
    unseen = dict(report, report_id=f"{report['report_id']}-unseen", subject_id="brand-new-seller-77",
                  order_id="no-such-order")
    res = post(service, "/score", {"reports": [report, unseen]})
    assert res.status_code == 200, res.text
    known, cold = res.json()
    assert known["cold_start"] == [] and cold["cold_start"] == ["subject_id", "order_id"]
    assert 0 <= cold["p_valid"] <= 1 and 0 <= cold["priority"] <= 100
