"""`docket evaluate` on a data scientist's own payments data (accounts and orders only), as a real process:
k set directly, known fraud accounts left out, the scores file, the protocol, and windows that leave
nothing to evaluate refused in one line."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from features.io import write_tables
from simulator.simulate import simulate
from training import tuning
from training.evaluation import REVIEW_SHARE
from training.window_scoring import LOGISTIC_MAX_ROWS
from training.windows import CALIBRATION_SHARE, TEST_SHARE

DOCKET = str(Path(sys.executable).parent / "docket")
REPORTS = 2000  # about 4,000 orders, 100 of them fraud: seconds per evaluation
RANKERS = ["model", "logistic_regression", "depth2_tree", "fifo"]


@pytest.fixture(scope="module")
def tables() -> dict:
    return simulate(REPORTS, seed=5)


@pytest.fixture(scope="module")
def payments(tmp_path_factory, tables) -> Path:
    path = tmp_path_factory.mktemp("payments")
    write_tables({k: tables[k] for k in ("accounts", "orders")}, path)
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("work")


def run(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin", "HOME": str(workdir), "COLUMNS": "200",
           "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}"}
    return subprocess.run([DOCKET, *args], capture_output=True, text=True, cwd=workdir, env=env, timeout=600)


@pytest.fixture(scope="module")
def excluded(workdir, payments) -> tuple[subprocess.CompletedProcess, dict, pd.DataFrame]:
    res = run(workdir, "evaluate", "--data", str(payments), "--k", "2", "--exclude-known-fraud-accounts",
              "--scores-out", "scores.parquet", "--out", "ev_excluded")
    assert res.returncode == 0, res.stderr
    doc = json.loads((workdir / "ev_excluded" / "evaluation.json").read_text())
    return res, doc, pd.read_parquet(workdir / "scores.parquet")


@pytest.fixture(scope="module")
def everything(workdir, tables, tmp_path_factory) -> tuple[dict, pd.DataFrame]:
    """The same orders with the simulator's truth (an oracle), nothing left out, k from the review share."""
    path = tmp_path_factory.mktemp("payments_truth")
    write_tables({k: tables[k] for k in ("accounts", "orders", "truth_orders")}, path)
    res = run(workdir, "evaluate", "--data", str(path), "--scores-out", "scores.csv", "--out", "ev_all")
    assert res.returncode == 0, res.stderr
    doc = json.loads((workdir / "ev_all" / "evaluation.json").read_text())
    return doc, pd.read_csv(workdir / "scores.csv", dtype={"id": str, "account": str})


def test_evaluation_json_states_k_the_protocol_and_the_rows_left_out(excluded):
    res, doc, _ = excluded
    fraud = doc["fraud_orders"]
    assert (fraud["k_per_day"], fraud["k"], fraud["k_set_by"]) == (2, 2 * fraud["days"], "k")
    protocol = doc["protocol"]
    assert protocol["review_capacity"] == {"set_by": "k", "k_per_day": 2}
    assert protocol["exclude_known_fraud_accounts"] is True
    assert protocol["calibration_share"] == CALIBRATION_SHARE
    assert protocol["logistic_regression_max_rows"] == LOGISTIC_MAX_ROWS
    assert protocol["fraud_model_search"] == tuning.budget()
    assert protocol["refit_after_calibration"]["fraud_orders"] is True
    # The search's record: the defaults and every draw scored at each origin it could score, and its choice.
    search = fraud["search"]
    assert search["candidates"][0]["params"] == "defaults" and len(search["candidates"]) == 1 + tuning.DRAWS
    assert search["chosen"] == "defaults" or search["chosen"] in tuning.draws(7)
    assert fraud["excluded_known_fraud_account_rows"] == doc["rows"]["orders_test_excluded_known_fraud_accounts"] > 0
    assert doc["rows"]["orders_logistic_regression"] == doc["rows"]["orders_train"] + doc["rows"]["orders_calibration"]
    assert f"{fraud['excluded_known_fraud_account_rows']:,} from fraud_orders" in res.stderr


def test_the_scores_file_has_one_row_per_test_row_and_every_rankers_score(excluded):
    _, doc, scores = excluded
    assert list(scores.columns) == ["task", "id", "account", "day", "label", *RANKERS]
    assert len(scores) == doc["fraud_orders"]["rows"] and set(scores["task"]) == {"fraud_orders"}
    assert scores["id"].is_unique and not scores[RANKERS].isna().any().any()
    assert scores["label"].mean() == pytest.approx(doc["fraud_orders"]["positive_rate"])


def test_with_truth_the_oracle_scores_too_and_k_comes_from_the_review_share(everything):
    doc, scores = everything
    assert list(scores.columns) == ["task", "id", "account", "day", "label", *RANKERS, "oracle"]
    assert len(scores) == doc["fraud_orders"]["rows"]
    assert doc["fraud_orders"]["k_set_by"] == "review_share" and doc["fraud_orders"]["review_share"] == REVIEW_SHARE
    assert doc["protocol"]["exclude_known_fraud_accounts"] is False
    assert doc["fraud_orders"]["excluded_known_fraud_account_rows"] == 0


def test_exactly_the_orders_of_buyers_caught_before_the_day_are_left_out(excluded, everything, tables):
    _, doc, kept = excluded
    _, every = everything
    left_out = every[~every["id"].isin(set(kept["id"]))]
    assert set(kept["id"]) <= set(every["id"])
    assert len(left_out) == doc["fraud_orders"]["excluded_known_fraud_account_rows"]
    orders = tables["orders"]
    caught = orders[orders["fraud"]].groupby("buyer_id")["fraud_known_at"].min()

    def caught_before_its_day(rows: pd.DataFrame) -> pd.Series:
        day_start = pd.to_datetime(rows["day"].astype(str)).dt.tz_localize("UTC")
        return rows["account"].map(caught) < day_start

    assert caught_before_its_day(left_out).all()
    assert not caught_before_its_day(every[every["id"].isin(set(kept["id"]))]).any()


def _error_lines(res: subprocess.CompletedProcess) -> list[str]:
    return [line for line in res.stderr.splitlines() if line.startswith("error:")]


def test_a_label_delay_as_long_as_the_training_window_exits_2_in_one_line(workdir, payments):
    res = run(workdir, "evaluate", "--data", str(payments), "--train-start", "2025-06-01", "--train-end", "2025-07-01",
              "--test-end", "2025-07-31", "--label-delay-days", "30", "--out", "ev_nothing")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    [line] = _error_lines(res)
    assert line.startswith("error: nothing could be evaluated in train 2025-06-01 00:00 .. 2025-07-01 00:00")
    assert "orders: " in line and "30-day label delay is as long as the 30-day training window" in line
    assert "--label-delay-days" in line and "reports: " in line
    assert not (workdir / "ev_nothing" / "evaluation.json").exists()


def test_window_and_capacity_mistakes_are_one_readable_line(workdir, payments):
    res = run(workdir, "evaluate", "--data", str(payments), "--folds", "6")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    [line] = _error_lines(res)
    assert "fewer folds (--folds 3 at most)" in line and "an earlier --test-end" in line
    assert "--train-start" not in line  # the training window already starts with the data
    res = run(workdir, "evaluate", "--data", str(payments), "--k", "3", "--review-share", "0.1")
    assert res.returncode == 2 and _error_lines(res) == [
        "error: --k and --review-share both set the fraud reviews a day; give one of them"]


def test_help_states_window_bounds_defaults_and_every_sample_size(workdir):
    env_help = subprocess.run([DOCKET, "evaluate", "--help"], capture_output=True, text=True, timeout=60,
                              env={"PATH": "/usr/bin:/bin", "COLUMNS": "400", "HOME": str(workdir)})
    text = " ".join(env_help.stdout.split())
    for option, bound in (("train-start", "inclusive"), ("train-end", "exclusive"), ("test-start", "inclusive"),
                          ("test-end", "exclusive")):
        assert f"--{option} <str> " in text and f"({bound})" in text.split(f"--{option} <str> ")[1][:80], option
    assert text.count("[default: ") >= 7  # rich markup would eat an unescaped "[default: ...]"
    assert f"earliest {1 - CALIBRATION_SHARE:.1%}" in text and f"latest {CALIBRATION_SHARE:.1%}" in text
    assert f"{LOGISTIC_MAX_ROWS:,}" in text and f"last {TEST_SHARE:.0%}" in text
    assert f"[default: {REVIEW_SHARE:g}]" in text
    assert "--exclude-known-fraud-accounts" in text and "the last fold's test window" in text


def test_the_payments_data_set_validates_for_order_fraud_alone(workdir, payments):
    """The README's example, first step: accounts and orders alone are valid and serve order fraud."""
    res = run(workdir, "validate", "--data", str(payments))
    assert res.returncode == 0, res.stderr
    assert "serves: order fraud" in res.stderr and "not for the service: needs reports, enforcements, outcomes" in res.stderr
