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
