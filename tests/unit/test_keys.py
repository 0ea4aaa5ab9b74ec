"""API keys: expiry, revocation, the listing, the bounded cache of invalid keys, per-key rate limits."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from serving.api.auth import Keys
from serving.api.key_store import KeyError_, create_key, has_keys, list_keys, parse_duration, revoke_key
from serving.api.rate_limits import RateLimiter
from serving.enforcement.ledger import NotFoundError
from serving.store import tables as T

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def bearer(key: str) -> str:
    return f"Bearer {key}"


def test_a_revoked_key_is_refused_by_the_next_check_with_no_cache_to_wait_for(engine):
    key = create_key(engine, "investigator", actor="tests", now=NOW)
    keys = Keys(engine)
    key_id = key.split("_")[1]
    assert keys.role_of(bearer(key)) == (key_id, "investigator")
    revoke_key(engine, key_id, actor="tests", now=NOW)
    assert keys.role_of(bearer(key)) is None


def test_revoking_twice_keeps_the_first_revocation_and_audits_once(engine):
    key_id = create_key(engine, "intake", actor="tests", now=NOW).split("_")[1]
    first = revoke_key(engine, key_id, actor="a", now=NOW)
    again = revoke_key(engine, key_id, actor="b", now=NOW + timedelta(hours=1))
    assert first == again and first["revoked_at"] == NOW.isoformat()
    with engine.connect() as conn:
        actions = conn.execute(select(T.audit_events.c.action).where(T.audit_events.c.entity_id == key_id)).scalars()
        assert sorted(actions) == ["key_created", "key_revoked"]


def test_revoking_an_unknown_key_is_not_found(engine):
    with pytest.raises(NotFoundError):
        revoke_key(engine, "nosuchkey", actor="tests", now=NOW)


def test_a_key_works_until_its_expiry_and_not_after(engine):
    key = create_key(engine, "admin", actor="tests", now=NOW, expires_at=NOW + timedelta(days=30))
    assert Keys(engine, clock=lambda: NOW + timedelta(days=29)).role_of(bearer(key))[1] == "admin"
    assert Keys(engine, clock=lambda: NOW + timedelta(days=30)).role_of(bearer(key)) is None
    assert has_keys(engine, "admin", now=NOW) and not has_keys(engine, "admin", now=NOW + timedelta(days=31))


@pytest.mark.parametrize("expires_at, why", [
    (NOW - timedelta(seconds=1), "not in the future"), (NOW + timedelta(days=4000), "days away"),
    (datetime(2027, 1, 1), "time zone")])
def test_an_expiry_in_the_past_too_far_out_or_without_a_zone_is_refused(engine, expires_at, why):
    with pytest.raises(KeyError_, match=why):
        create_key(engine, "intake", actor="tests", now=NOW, expires_at=expires_at)


@pytest.mark.parametrize("text, expected", [("30d", timedelta(days=30)), ("12h", timedelta(hours=12)),
                                            ("90m", timedelta(minutes=90)), ("45s", timedelta(seconds=45))])
def test_lifetimes_read_as_durations(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["0d", "30", "d", "-1d", "1w", "1e9d", ""])
def test_other_lifetimes_are_refused(text):
    with pytest.raises(KeyError_):
        parse_duration(text)


def test_the_listing_shows_ids_roles_expiry_and_revocation_never_a_secret(engine):
    key = create_key(engine, "intake", actor="tests", now=NOW, expires_at=NOW + timedelta(days=1))
    other = create_key(engine, "admin", actor="tests", now=NOW + timedelta(seconds=1))
    revoke_key(engine, other.split("_")[1], actor="tests", now=NOW + timedelta(seconds=2))
    listed = list_keys(engine)
    assert [(k["key_id"], k["role"]) for k in listed] == [(key.split("_")[1], "intake"), (other.split("_")[1], "admin")]
    assert listed[0]["expires_at"] and listed[0]["revoked_at"] is None and listed[1]["revoked_at"]
    text = repr(listed)
    assert key.split("_", 2)[2] not in text and other.split("_", 2)[2] not in text and "hash" not in text


def test_the_cache_of_invalid_keys_is_bounded_and_answers_without_the_store(engine):
    keys = Keys(engine, invalid_cache_size=100)
    for i in range(1_000):
        assert keys.role_of(bearer(f"dk_{i:012x}_{'s' * 32}")) is None
    assert keys.invalid_cached == 100
    engine.dispose()
    keys.engine = None  # a known-bad key no longer reaches the store
    assert keys.role_of(bearer(f"dk_{999:012x}_{'s' * 32}")) is None


def test_overlong_or_malformed_keys_are_refused_before_the_store(engine):
    keys = Keys(engine)
    keys.engine = None
    for header in (None, "", "Bearer", "Basic x", "Bearer dk__x", "Bearer dk_" + "a" * 33 + "_x",
                   "Bearer dk_ab_" + "s" * 65):
        assert keys.role_of(header) is None


def test_the_rate_limiter_allows_a_burst_then_refills_at_its_rate():
    t = [0.0]
    limiter = RateLimiter(rate=2, burst=3, clock=lambda: t[0])
    assert [limiter.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("k") == pytest.approx(0.5)
    assert limiter.take("other") == 0.0  # one bucket per key
    t[0] = 0.5
    assert limiter.take("k") == 0.0 and limiter.take("k") > 0
    assert RateLimiter(0, 0).take("k") == 0.0  # rate 0: no limit
