"""Demo data -> train (tiny budget) -> predict -> report, against a temporary MLflow store."""

from __future__ import annotations

import hashlib
import re

import mlflow
import pandas as pd
import pytest
from leadtier.pipelines import predict as predict_stage
from leadtier.pipelines import train as train_stage
from mlflow.tracking import MlflowClient

from tests.conftest import small_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One small demo world trained twice (the second run meets the champion gate)."""
    import os

    work = tmp_path_factory.mktemp("e2e")
    old_cwd, old_uri = os.getcwd(), os.environ.get("MLFLOW_TRACKING_URI")
    os.chdir(work)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{work / 'mlflow.db'}"
    try:
        from leadtier.pipelines.demo_data import write_demo

        cfg = small_config(work / "data", n_customers=3000, n_trials=3)
        cfg.predict.output = str(work / "out" / "pred.parquet")
        cfg.report.output = str(work / "out" / "report.html")
        counts = write_demo(cfg)
        first = train_stage.run(cfg)
        cfg.train.tuning.n_trials = 1
        second = train_stage.run(cfg)
        yield cfg, counts, first, second, work
    finally:
        os.chdir(old_cwd)
        if old_uri is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = old_uri


def test_first_model_becomes_champion_and_beats_baselines(trained):
    cfg, _, first, _, _ = trained
    assert first.alias == "champion"
    assert any("first model" in r for r in first.reasons)
    m = first.metrics
    assert m["model"]["macro_f1"] > m["majority"]["macro_f1"]
    assert m["model"]["qwk"] > m["majority"]["qwk"]
    assert 0.3 < m["model"]["macro_f1"] < 0.99  # learnable, not trivially perfect
    for baseline in ("majority", "rfm_scorecard"):  # a verdict per metric, calibration metrics included
        assert {"macro_f1", "qwk", "log_loss", "brier", "ece"} <= set(first.beats[baseline]), first.beats
    assert first.beats["majority"]["macro_f1"] and first.beats["majority"]["qwk"]
    # every verdict comes with the size of the gain and its bootstrap interval; against the majority
    # baseline the macro-F1 gain is far from noise
    assert {b: set(v) for b, v in first.gains.items()} == {b: set(v) for b, v in first.beats.items()}
    g = first.gains["majority"]["macro_f1"]
    assert 0 < g["low"] <= g["gain"] <= g["high"]
    assert g["gain"] == pytest.approx(m["model"]["macro_f1"] - m["majority"]["macro_f1"])
    text = train_stage.summary_text(cfg, first)
    assert re.search(r"^gain +vs majority ", text, re.M), text  # the gains in their own table
    assert re.search(r"^macro_f1 +[+-]0\.\d{3} \[[+-]0\.\d{3}, [+-]0\.\d{3}\]", text, re.M), text
    assert "paired bootstrap resamples" in " ".join(text.split())
    assert max(map(len, text.splitlines())) <= 100


def test_second_model_is_gated_against_the_champion(trained):
    cfg, _, first, second, _ = trained
    client = MlflowClient()
    champ = client.get_model_version_by_alias(cfg.mlflow.model_name, "champion")
    # the same seed and data: the same evaluation rows, on which the champion scores what the first run
    # logged; no margin or interval is asked (demo config), so a strictly higher figure promotes, a tie not
    primary = cfg.train.primary_metric
    assert (cfg.train.gate.min_gain, cfg.train.gate.interval) == (0, False)
    new, old = second.metrics["model"][primary], first.metrics["model"][primary]
    assert f"{primary}: new {new:.4f} vs champion v{first.model_version} {old:.4f}" in "\n".join(second.reasons)
    assert second.alias == ("champion" if new > old else "challenger"), second.reasons
    assert any(f"champion v{first.model_version} " in r for r in second.reasons), second.reasons
    assert not any("cannot compete" in r for r in second.reasons), second.reasons
    if second.alias == "challenger":
        assert str(champ.version) == first.model_version
        challenger = client.get_model_version_by_alias(cfg.mlflow.model_name, "challenger")
        assert str(challenger.version) == second.model_version
    else:
        assert str(champ.version) == second.model_version


def test_run_logs_params_metrics_artifacts_and_trials(trained):
    _, _, first, _, _ = trained
    client = MlflowClient()
    run = client.get_run(first.run_id)
    for key in (
        "test_macro_f1",
        "test_qwk",
        "test_log_loss",
        "test_balanced_accuracy",
        "logreg_macro_f1",
        "majority_macro_f1",
    ):
        assert key in run.data.metrics
    arts = {a.path for a in client.list_artifacts(first.run_id)}
    assert {"config.yaml", "plots", "eval", "model"} <= arts
    plots = {a.path for a in client.list_artifacts(first.run_id, "plots")}
    assert "plots/confusion_model.png" in plots and "plots/feature_importance.png" in plots
    assert "plots/reliability_model.png" in plots  # the calibration (reliability) diagram
    nested = mlflow.search_runs(
        experiment_ids=[run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{first.run_id}'"
    )
    assert len(nested) == 3  # one nested run per tuning trial
    info = mlflow.models.get_model_info(f"models:/leadtier-demo/{first.model_version}")
    assert info.signature is not None and info.saved_input_example_info is not None


def test_predict_scores_every_prospect_reproducibly(trained):
    cfg, counts, _, _, work = trained
    res = predict_stage.run(cfg, progress=False)
    out = pd.read_parquet(res.output)
    prospects = pd.read_csv(cfg.data_path(cfg.demo.prospects_file))
    assert res.input_rows == len(prospects) == counts["prospects"]
    assert res.scored + res.rejected + res.skipped == res.input_rows
    assert len(out) == res.scored
    assert set(out["customer_id"]) <= set(prospects["customer_id"].astype(str))
    cols = {"customer_id", "tier", "score", "segment", "segment_id", "model_version", "as_of"}
    assert cols | {f"proba_{c}" for c in cfg.scheme.codes} <= set(out.columns)
    assert out["tier"].isin(cfg.scheme.codes).all() and out["score"].between(0, 100).all()
    first_hash = hashlib.sha256(res.output.read_bytes()).hexdigest()
    again = predict_stage.run(cfg, progress=False)
    assert hashlib.sha256(again.output.read_bytes()).hexdigest() == first_hash


def test_predict_rejects_bad_rows_with_reasons(trained):
    cfg, _, _, _, work = trained
    prospects = pd.read_csv(cfg.data_path(cfg.demo.prospects_file))
    bad = pd.concat([prospects.head(200), prospects.head(2)], ignore_index=True)  # 2 duplicate ids
    bad.loc[5, "customer_id"] = None
    bad.loc[6, "created_at"] = "2027-01-01"  # created after the as-of date
    path = work / "bad_prospects.csv"
    bad.to_csv(path, index=False)
    res = predict_stage.run(cfg, input_path=str(path), output=str(work / "out" / "bad.parquet"), progress=False)
    assert res.input_rows == 202
    assert (res.rejected, res.skipped, res.scored) == (3, 1, 198)  # a customer not created yet is no bad input
    rejects = pd.read_csv(res.rejects)
    assert sorted(rejects["reason"].str.split(":").str[0].str.split(" ").str[0]) == [
        "duplicate",
        "duplicate",
        "missing",
        "skipped",
    ]
    from leadtier.pipelines import report as report_stage

    html = report_stage.run(cfg, predictions=str(res.output), output=str(work / "out" / "bad.html")).read_text()
    note = re.search(r'<div class="note" id="left-out">(.*?)</div>', html, re.S).group(1)
    assert "Not scored: 3 input rows rejected as bad input and 1 skipped by rule or config" in note
    assert "bad.rejects.csv" in note and "2 · duplicate customer_id" in note


def test_predict_with_reasons_explains_each_customer(trained):
    cfg, _, _, _, work = trained
    prospects = pd.read_csv(cfg.data_path(cfg.demo.prospects_file)).head(50)
    path = work / "few.csv"
    prospects.to_csv(path, index=False)
    res = predict_stage.run(
        cfg, input_path=str(path), output=str(work / "out" / "why.csv"), progress=False, reasons=True
    )
    out = pd.read_csv(res.output)
    assert len(out) == 50 and out["reasons"].notna().all()
    # in plain words with the direction: "bought 20 days ago (↑); no webinar in the last 90 days (↓)"
    assert out["reasons"].str.contains("(↑)", regex=False).mean() > 0.9
    assert not out["reasons"].str.contains(" = ", regex=False).any()


def test_second_scoring_run_writes_migration_and_drift_and_the_report_shows_them(trained):
    from leadtier.pipelines import report as report_stage
    from leadtier.pipelines.predict import side_file

    cfg, _, _, _, work = trained
    out = work / "out" / "twice.parquet"
    first = predict_stage.run(cfg, output=str(out), progress=False)
    assert not side_file(out, "migration").exists()
    drift = pd.read_csv(side_file(out, "drift"))
    assert {"feature", "psi", "warning"} <= set(drift.columns) and len(drift) > 10
    # scoring the same customers one month later: tiers may move
    later = predict_stage.run(cfg, output=str(out), progress=False, as_of=cfg.data.as_of + pd.Timedelta(days=30))
    moved = pd.read_csv(side_file(out, "migration"))
    assert len(moved) == first.scored == later.scored
    assert set(moved["change"]) <= {"upgraded", "downgraded", "unchanged", "new", "gone"}
    assert set(moved["trend"]) <= {"improving", "steady", "declining"}
    html = report_stage.run(cfg, predictions=str(out), output=str(work / "out" / "r.html")).read_text()
    assert 'id="migration"' in html and 'id="drift"' in html
    assert 'id="segments-ami"' in html  # how much the segments explain the tiers
    # another language than the config's goes beside it, not over it
    cfg_out = cfg.model_copy(deep=True)
    cfg_out.report.output = str(work / "out" / "report.html")
    english = report_stage.run(cfg_out, predictions=str(out))
    chinese = report_stage.run(cfg_out, predictions=str(out), lang="zh")
    assert (english.name, chinese.name) == ("report.html", "report.zh.html")
    assert '<html lang="en"' in english.read_text() and '<html lang="zh' in chinese.read_text()


def test_floors_keep_a_weak_model_out_of_production(trained):
    cfg, _, _, _, _ = trained
    client = MlflowClient()
    before = client.get_model_version_by_alias(cfg.mlflow.model_name, "champion").version
    strict = cfg.model_copy(deep=True)
    strict.train.tuning.n_trials = 1
    strict.train.floors.macro_f1 = 0.999
    res = train_stage.run(strict)
    assert res.alias == "challenger"
    assert any("below the floor 0.999" in r for r in res.reasons)
    assert client.get_model_version_by_alias(cfg.mlflow.model_name, "champion").version == before


def test_kfold_evaluation_tunes_each_outer_fold_without_its_held_out_rows(demo_data, monkeypatch):
    """Nested cross-validation: the figures reported for k-fold come from leadtier.models whose
    hyper-parameters never saw the fold they are scored on."""
    cfg = demo_data
    cfg.train.evaluation, cfg.train.folds = "kfold", 3
    cfg.train.tuning.n_trials = 1
    cfg.train.semi_supervised.enabled = False
    seen: list[set] = []
    real_tune = train_stage.tune

    def spy(X, *args, **kwargs):
        seen.append(set(X.index))
        return real_tune(X, *args, **kwargs)

    monkeypatch.setattr(train_stage, "tune", spy)
    res = train_stage.run(cfg)
    everyone, *fold_calls = seen
    assert len(fold_calls) == 3 and res.n_test == len(everyone)
    held_out = [everyone - s for s in fold_calls]
    assert all(fold <= everyone and fold for fold in held_out)
    assert set().union(*held_out) == everyone  # every labelled row is held out once ...
    assert sum(len(h) for h in held_out) == len(everyone)  # ... and only once
    runs = mlflow.search_runs(experiment_names=[cfg.mlflow.experiment], output_format="list")
    studies = {r.data.tags.get("leadtier.study") for r in runs if r.data.tags.get("leadtier.study")}
    assert studies == {"final", "fold1", "fold2", "fold3"}


def test_report_rebuilds_past_revenue_only_for_the_customers_that_were_scored(trained):
    from leadtier.pipelines import report as report_stage

    cfg, _, _, _, work = trained
    out = work / "out" / "rev.parquet"
    predict_stage.run(cfg, output=str(out), progress=False)
    preds = pd.read_parquet(out)
    with_revenue = report_stage.run(cfg, predictions=str(out), output=str(work / "out" / "rev.html")).read_text()
    no_revenue = report_stage.strings("en")["no_revenue"]
    assert no_revenue not in with_revenue
    # the same predictions without past_revenue: rebuilt from predict.input, the same report
    lean = work / "out" / "lean.parquet"
    preds.drop(columns=["past_revenue"]).to_parquet(lean, index=False)
    rebuilt = report_stage.run(cfg, predictions=str(lean), output=str(work / "out" / "lean.html")).read_text()
    assert no_revenue not in rebuilt
    section = 'id="summary"'  # tier sizes, revenue shares and the concentration answer
    assert rebuilt.split(section)[1].split("</section>")[0] == with_revenue.split(section)[1].split("</section>")[0]
    # predictions of other customers than predict.input: no revenue figures rather than wrong ones
    other = preds.drop(columns=["past_revenue"])
    other.loc[: len(other) // 2, "customer_id"] = "elsewhere-" + other["customer_id"].astype(str)
    other.to_parquet(lean, index=False)
    html = report_stage.run(cfg, predictions=str(lean), output=str(work / "out" / "other.html")).read_text()
    assert no_revenue in html


def test_report_says_when_tiers_do_not_come_from_the_champion(trained, caplog):
    from leadtier.pipelines import report as report_stage

    cfg, _, _, _, work = trained
    s = report_stage.strings("en")
    client = MlflowClient()
    champion = client.get_model_version_by_alias(cfg.mlflow.model_name, "champion").version
    other = next(
        v.version for v in client.search_model_versions(f"name='{cfg.mlflow.model_name}'") if v.version != champion
    )
    by_champion, by_other = work / "out" / "v_champion.parquet", work / "out" / "v_other.parquet"
    with caplog.at_level("WARNING", logger="leadtier.pipelines.predict"):
        predict_stage.run(cfg, output=str(by_champion), progress=False)
        predict_stage.run(
            cfg, model_uri=f"models:/{cfg.mlflow.model_name}/{champion}", output=str(by_champion), progress=False
        )
        assert not [r for r in caplog.records if "not the champion" in r.getMessage()]  # the champion by number
        predict_stage.run(
            cfg, model_uri=f"models:/{cfg.mlflow.model_name}/{other}", output=str(by_other), progress=False
        )
    said = [r.getMessage() for r in caplog.records if "not the champion" in r.getMessage()]
    assert said == [
        f"scoring with version {other} of {cfg.mlflow.model_name}, which is not the champion (version {champion}): "
        "these tiers are not the ones production scores"
    ]

    def notes(path):
        html = report_stage.run(cfg, predictions=str(path), output=str(work / "out" / "v.html")).read_text()
        return html.count('class="warn version-note"'), html

    assert notes(by_champion)[0] == 0
    count, html = notes(by_other)
    assert count == 1 and s["note_not_champion"].format(version=other, champion=champion) in html
    assert html.index("version-note") < html.index('<section id="call-first">')  # at the top, before the call list
    mixed = pd.concat([pd.read_parquet(by_champion).head(100), pd.read_parquet(by_other).iloc[100:400]])
    mixed.to_parquet(work / "out" / "v_mixed.parquet", index=False)
    count, html = notes(work / "out" / "v_mixed.parquet")
    assert count == 2 and f"v{other}: 75.0%, v{champion}: 25.0%" in html  # the described version is the larger share
