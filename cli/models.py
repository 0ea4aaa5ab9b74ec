"""`docket train`, `docket evaluate` and `docket promote`: the data scientist's loop on the command line.

The queue policy is read here (serving owns it) and handed to training, which may not import serving.
"""
from __future__ import annotations

import logging
from pathlib import Path

import typer
from rich.table import Table

from cli.support import DATA_HELP, CliError, err, out, steps
from cli.support import data_dir as _data_dir
from cli.support import run as _run
from config import settings as S

HEADERS = {"roc_auc": "AUC", "average_precision": "AP", "precision_at_k": "P@k", "recall_at_k": "R@k",
           "card_precision_at_k": "card P@k", "brier": "Brier", "ece": "ECE", "share_of_oracle_average_precision": "AP/oracle",
           "macro_f1": "macro F1", "quadratic_kappa": "QWK", "log_loss": "log loss", "top_class_ece": "top-class ECE"}


def _quiet_mlflow() -> None:
    # Cloudpickle is chosen on purpose (the bundle holds LightGBM boosters): keep its notice out of the way.
    logging.getLogger("mlflow.pyfunc").setLevel(logging.ERROR)


def _fmt(value) -> str:
    import math

    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def _print_evaluation(report: dict, title: str) -> None:
    from training.evaluation_output import SUMMARY_METRICS, queue_table, summary_table

    summary = summary_table(report)
    for task, metrics in SUMMARY_METRICS.items():
        rows = summary[summary["task"] == task] if len(summary) else summary
        if not len(rows):
            continue
        k = report[task].get("k_per_day")
        table = Table(title=f"{title}: {task} ({report[task]['rows']:,} rows{f', k = {k}/day' if k else ''})")
        table.add_column("ranker")
        for m in metrics:
            table.add_column(HEADERS.get(m, m), justify="right")
        for _, row in rows.iterrows():
            table.add_row(row["ranker"], *(_fmt(row[m]) for m in metrics))
        out.print(table)
    queue = queue_table(report)
    if len(queue):
        table = Table(title=f"{title}: queue replay, valid high + critical cases")
        for col in ("capacity", "ordering", "mean hours", "p90 hours", "x sooner than FIFO", "goals missed (valid)"):
            table.add_column(col, justify="left" if col == "ordering" else "right")
        for _, r in queue.iterrows():
            table.add_row(f"{r['capacity']:.0%}", r["ordering"], _fmt(r["urgent_mean_minutes"] / 60),
                          _fmt(r["urgent_p90_minutes"] / 60), _fmt(r["urgent_speedup_vs_fifo"]),
                          _fmt(r["goal_missed_share"]))
        out.print(table)
    for task, why in report.get("skipped", {}).items():
        err.print(f"[yellow]skipped[/yellow] {task}: {why}", highlight=False)


def train(
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
    alias: str = typer.Option("challenger", "--alias", help="Alias to point at the new versions."),
    unless_champion: bool = typer.Option(False, "--unless-champion", help="Do nothing if a champion already exists."),
) -> None:
    """Train both models, measure them against the baselines on held-out recent data, log to MLflow and
    register them as the challenger (the first models ever trained also become champion)."""

    def go() -> None:
        import mlflow

        from features.io import load_tables
        from policy.file import load_queue_policy
        from training import registry
        from training.train import TRAIN_STEPS, CannotTrain
        from training.train import train as run

        settings = S.Settings.from_env()
        mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
        _quiet_mlflow()
        if unless_champion and all(registry.has_alias(m, S.CHAMPION) for m in (S.SEVERITY_MODEL, S.FRAUD_MODEL)):
            err.print("champion models already registered; nothing to do")
            return
        tables = load_tables(_data_dir(data))
        try:
            with steps("train", list(TRAIN_STEPS)) as advance:
                result = run(tables, settings, alias=alias, on_step=advance, rules=load_queue_policy())
        except CannotTrain as e:
            raise CliError(str(e)) from e
        _print_evaluation(result.evaluation.report, f"run {result.run_id[:8]}")
        err.print("registered " + ", ".join(f"{n} v{v}" for n, v in result.versions.items())
                  + " as @" + ", @".join(result.aliases), highlight=False)
        if S.CHAMPION not in result.aliases:
            err.print("compare with the champion and promote: docket promote", highlight=False)

    _run(go)


def evaluate(
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
    train_start: str | None = typer.Option(
        None, "--train-start", help="Start of training (inclusive). ISO-8601 date or time (UTC when no zone) "
                                    "[default: the data's first event]."),
    train_end: str | None = typer.Option(
        None, "--train-end", help="End of training (exclusive); training labels count as known then. ISO-8601 "
                                  "[default: --test-start]."),
    test_start: str | None = typer.Option(
        None, "--test-start", help="Start of the test window (inclusive). ISO-8601 [default: --train-end if given, "
                                   "else where the last 20% of the data's time span begins]."),
    test_end: str | None = typer.Option(
        None, "--test-end", help="End of the test window (exclusive). ISO-8601 [default: just after the data's "
                                 "last event]."),
    label_delay_days: int | None = typer.Option(None, "--label-delay-days", min=0,
                                                help="Days before an order without a chargeback counts as genuine "
                                                     "[default: 90th percentile of observed chargeback delays]."),
    folds: int = typer.Option(1, "--folds", min=1,
                              help="Rolling-origin folds ending with the test window, each testing on a window as "
                                   "long; figures get mean and spread. Each fold must train for at least one test "
                                   "window."),
    review_share: float | None = typer.Option(
        None, "--review-share", min=0.0001, max=1.0,
        help="Fraud reviews a day as a share of the test window's mean daily volume: the k of precision@k and card "
             "precision@k [default: 0.05]. Not with --k."),
    k: int | None = typer.Option(None, "--k", min=1,
                                 help="Fraud reviews a day, set directly: the k of card precision@k (precision@k "
                                      "takes k x days over the window). Not with --review-share."),
    exclude_known_fraud_accounts: bool = typer.Option(
        False, "--exclude-known-fraud-accounts",
        help="Card-precision protocol: leave out of each test day the orders whose buyer's fraud (fraud_known_at of "
             "any of its orders) was known before the day began, and, for report fraud, the reports whose subject "
             "was confirmed as fraud on a report resolved before it; the same rows for every ranker. evaluation.json "
             "counts the rows left out."),
    scores_out: Path | None = typer.Option(
        None, "--scores-out",
        help="Write each fraud test row's scores: task, id, account, day, label and a column per ranker (model, "
             "logistic_regression, depth2_tree, rules for reports, fifo, oracle when the data has truth tables). "
             "CSV, or Parquet if the name ends .parquet. With --folds > 1: the last fold's test window."),
    out_dir: Path = typer.Option(Path("evaluation"), "--out", help="Folder for evaluation.json and the plots."),
) -> None:
    """Train on the training window, measure the models and every baseline on the test window, write
    evaluation.json and plots, and log them to MLflow. Partial data sets evaluate what they can; windows that
    leave nothing to evaluate exit 2 saying why and what to change. Windows: starts are inclusive, ends exclusive. By default the test window is the last 20% of the data's
    time span and training is everything before it. The models fit on the earliest 87.5% of the labelled
    training rows and the latest 12.5% calibrate them, after which the order fraud model is refitted on both;
    the fraud models' parameters come from a seeded rolling-origin search on at most 20,000 of their training
    rows. The baselines learn from all of them, logistic regression from a seeded sample of 50,000 when there
    are more. evaluation.json's "protocol" states these."""

    def go() -> None:
        import mlflow

        from features.io import load_tables
        from policy.file import load_queue_policy
        from training import evaluation_output
        from training.evaluation import REVIEW_SHARE, Options, nothing_evaluated
        from training.evaluation import evaluate as run
        from training.evaluation_data import prepare
        from training.train import data_fingerprint
        from training.windows import data_span, resolve_windows, rolling_windows

        if k is not None and review_share is not None:
            raise CliError("--k and --review-share both set the fraud reviews a day; give one of them")
        settings = S.Settings.from_env()
        tables = load_tables(_data_dir(data), require=["accounts"])
        base = resolve_windows(tables, train_start=train_start, train_end=train_end, test_start=test_start,
                               test_end=test_end, label_delay_days=label_delay_days)
        windows = rolling_windows(base, folds, data_span(tables)[0])
        names = ["features"] + [f"fold {i + 1}/{folds} {part}" for i in range(folds) for part in ("reports", "orders")]
        options = Options(seed=settings.seed, threads=max(settings.num_threads, 2),
                          review_share=REVIEW_SHARE if review_share is None else review_share, k_per_day=k,
                          exclude_known_fraud_accounts=exclude_known_fraud_accounts)
        rules = load_queue_policy()
        with steps("evaluate", [*names, "write"]) as advance:
            prep = prepare(tables)
            advance("features")
            evaluations = []
            for i, w in enumerate(windows):
                evaluations.append(run(prep, w, rules, options, on_step=advance))
                problem = nothing_evaluated(evaluations[-1])
                if problem:
                    raise CliError(f"fold {i + 1}/{folds}: {problem}" if folds > 1 else problem)
            fingerprint = data_fingerprint(tables)
            written = evaluation_output.write(evaluations, out_dir, fingerprint)
            if scores_out is not None:
                scores = evaluation_output.scores_table(evaluations[-1])
                evaluation_output.write_scores(scores, scores_out)
            mlflow.set_tracking_uri(settings.mlflow_tracking_uri)
            mlflow.set_experiment("docket-evaluation")
            with mlflow.start_run(run_name="evaluate") as mlrun:
                evaluation_output.log_to_mlflow(evaluations, written, fingerprint)
            advance("write")
        for ev in evaluations:
            err.print(f"window: {ev.windows.describe()}", highlight=False)
        last = evaluations[-1].report
        _print_evaluation(last, "most recent window" if folds > 1 else "test window")
        if folds > 1:
            _print_folds(evaluation_output.document(evaluations, fingerprint)["across_folds"], folds)
        if exclude_known_fraud_accounts:
            left_out = ", ".join(f"{last[t]['excluded_known_fraud_account_rows']:,} from {t}"
                                 for t in ("fraud_reports", "fraud_orders") if t in last)
            err.print(f"left out test rows of accounts with fraud known before their day: {left_out}", highlight=False)
        if scores_out is not None:
            err.print(f"wrote the scores of {len(scores):,} test rows to {scores_out}", highlight=False)
        err.print(f"wrote {len(written)} files to {out_dir} (MLflow run {mlrun.info.run_id[:8]})", highlight=False)

    _run(go)


def _print_folds(spread: dict, folds: int) -> None:
    table = Table(title=f"across {folds} folds: mean ± standard deviation")
    table.add_column("figure")
    table.add_column("mean ± std", justify="right")
    for key, s in spread.items():
        if key.endswith((".average_precision", ".card_precision_at_k")) or ".1.model.urgent_speedup" in key \
                or ".1.oracle.urgent_speedup" in key:
            table.add_row(key, f"{s['mean']:.3f} ± {s['std']:.3f}")
    out.print(table)


def promote(
    data: Path | None = typer.Option(None, "--data", help=DATA_HELP),
    force: bool = typer.Option(False, "--force", help="Promote even if a guarded figure is worse (logged as forced)."),
    ap_tolerance: float = typer.Option(0.01, "--ap-tolerance", min=0.0, help="Largest allowed drop in average precision."),
    ece_tolerance: float = typer.Option(0.01, "--ece-tolerance", min=0.0, help="Largest allowed rise in calibration error."),
    missed_goal_tolerance: float = typer.Option(0.01, "--missed-goal-tolerance", min=0.0,
                                                help="Largest allowed rise in the share of response-time goals missed."),
) -> None:
    """Compare challenger with champion on the same recent held-out window; move champion only if the
    challenger is not worse beyond tolerance on any guarded figure. Exit 0 if promoted, 1 if kept."""

    def go() -> None:
        from features.io import load_tables
        from policy.file import load_queue_policy
        from training.promotion import PROMOTE_STEPS, Tolerances
        from training.promotion import promote as run

        settings = S.Settings.from_env()
        _quiet_mlflow()
        tables = load_tables(_data_dir(data), require=["accounts"])
        tolerances = Tolerances(ap_tolerance, ece_tolerance, missed_goal_tolerance)
        with steps("promote", list(PROMOTE_STEPS)) as advance:
            result = run(tables, settings, load_queue_policy(), tolerances, force, on_step=advance)
        d = result.decision
        if d.checks:
            table = Table(title=f"champion {_v(result.champion)} vs challenger {_v(result.challenger)}, "
                                f"held out from {result.window_start:%Y-%m-%d %H:%M}")
            for col in ("figure", "champion", "challenger", "worse by", "tolerance", "ok"):
                table.add_column(col, justify="left" if col == "figure" else "right")
            for c in d.checks:
                table.add_row(c.figure, f"{c.champion:.4f}", f"{c.challenger:.4f}", f"{c.worse_by:+.4f}",
                              f"{c.tolerance:.4f}", "yes" if c.passed else "[red]no[/red]")
            out.print(table)
        verdict = "promoted" if d.promote else "kept the champion"
        err.print(f"{verdict}{' (forced)' if d.forced and d.promote else ''}: {d.reason} "
                  f"(MLflow run {result.run_id[:8]})", highlight=False)
        if not d.promote and d.checks:
            raise typer.Exit(1)  # kept because the challenger is worse: scripts can tell

    _run(go)


def _v(versions: dict[str, str]) -> str:
    return "/".join(f"v{v}" for v in versions.values()) or "none"
