"""config.settings: one typed configuration read from the environment."""
from __future__ import annotations

import pytest

from config.settings import Settings


@pytest.mark.parametrize("value, traced", [(None, False), ("0", False), ("1", True), ("true", True), ("YES", True)])
def test_scoring_routes_are_traced_only_when_asked(value, traced):
    env = {} if value is None else {"DOCKET_TRACE_SCORING": value}
    assert Settings.from_env(env).trace_scoring is traced


def test_worker_and_pass_settings_come_from_the_environment():
    s = Settings.from_env({"DOCKET_WORKERS": "2", "DOCKET_SCORE_PASS_ROWS": "64"})
    assert (s.workers, s.score_pass_rows) == (2, 64)
    assert (Settings.from_env({}).workers, Settings.from_env({}).score_pass_rows) == (1, 256)


def test_the_policy_file_is_named_by_the_settings_and_read_once_for_both_halves(tmp_path, monkeypatch):
    from policy.file import DEFAULT_POLICY, load_policy, load_policy_file, load_queue_policy

    assert Settings.from_env({}).policy_file is None
    changed = tmp_path / "policy.yaml"
    changed.write_text(DEFAULT_POLICY.read_text().replace("claim_timeout_minutes: 30", "claim_timeout_minutes: 7"))
    assert Settings.from_env({"DOCKET_POLICY_FILE": str(changed)}).policy_file == changed.resolve()
    monkeypatch.setenv("DOCKET_POLICY_FILE", str(changed))
    assert load_queue_policy().claim_timeout_minutes == 7.0
    assert load_policy() is load_policy_file(changed).penalty  # one parse serves every reader of this file
    monkeypatch.delenv("DOCKET_POLICY_FILE")
    assert load_queue_policy().claim_timeout_minutes == 30.0


def test_rate_limits_come_from_the_environment_with_generous_defaults():
    s = Settings.from_env({"DOCKET_RATE_LIMIT": "2", "DOCKET_RATE_BURST": "3"})
    assert (s.rate_limit_per_second, s.rate_limit_burst) == (2.0, 3.0)
    default = Settings.from_env({})
    assert default.rate_limit_per_second >= 2000 and default.rate_limit_burst >= default.rate_limit_per_second
