"""Deals on their own clock: ``predict.open_only`` scores only the deals still open at the as-of date and
lists the closed ones as skipped; a feature that alone tells labelled from censored deals is named."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from leadtier.models.proxies import label_presence_auc
from leadtier.pipelines import tracking
from leadtier.pipelines.cli import app
from leadtier.pipelines.config import ConfigError, load_config
from leadtier.pipelines.features import build
from typer.testing import CliRunner

AS_OF = dt.date(2020, 6, 1)


def deal_world(root: Path, n: int = 1400, seed: int = 3) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Deals started over 17 months; the origin sets how fast (and whether) a deal is won; some are lost,
    the rest still open. ``days_open`` (days from the start to the export) is a censoring proxy: old deals
    are labelled, new ones censored."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 500, n), unit="D")
    origin = rng.choice(["referral", "paid", "organic", "event"], n)
    speed = pd.Series(origin).map({"referral": 20, "paid": 80, "organic": 150, "event": 60}).to_numpy()
    fate = rng.random(n)
    days = np.ceil(rng.exponential(speed)).astype(int)
    won = np.where(fate < 0.55, start + pd.to_timedelta(days, unit="D"), pd.NaT)
    lost = np.where((fate >= 0.55) & (fate < 0.8), start + pd.to_timedelta(rng.integers(5, 120, n), unit="D"), pd.NaT)
    ids = [f"D{i:04d}" for i in range(n)]
    deals = pd.DataFrame(
        {
            "deal_id": ids,
            "created": start.strftime("%Y-%m-%d"),
            "origin": origin,
            "days_open": (pd.Timestamp(AS_OF) - start).days,
        }
    )
    outcomes = pd.DataFrame({"deal_id": ids, "won": pd.to_datetime(won), "lost": pd.to_datetime(lost)})
    outcomes = outcomes[outcomes["won"].notna() | outcomes["lost"].notna()]
    root.mkdir(parents=True, exist_ok=True)
    deals.to_csv(root / "deals.csv", index=False)
    outcomes.assign(won=outcomes["won"].dt.strftime("%Y-%m-%d"), lost=outcomes["lost"].dt.strftime("%Y-%m-%d")).to_csv(
        root / "outcomes.csv", index=False
    )
    return deals, outcomes


def deal_config(folder: Path, **predict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = {
        "name": "deals",
        "data": {
            "root": str(folder / "data"),
            "as_of": AS_OF.isoformat(),
            "tables": {
                "customers": {
                    "path": "deals.csv",
                    "columns": {"customer_id": "deal_id", "created_at": "created"},
                    "categorical": ["origin"],
                    "numeric": ["days_open"],
                },
                "outcomes": {
                    "path": "outcomes.csv",
                    "columns": {"customer_id": "deal_id", "won_at": "won", "lost_at": "lost"},
                },
            },
        },
        "features": {"families": ["customers"], "output": str(folder / "out" / "features.parquet")},
        "labels": {
            "source": "outcome",
            "scheme": "time_to_close",
            "outcome": {"kind": "days_to_win", "thresholds_days": [30, 90, 180], "horizon_days": 200},
            "allow_empty_tiers": True,
        },
        "train": {
            "evaluation": "ordered_holdout",
            "order_by": "created_at",
            "min_per_tier": 2,  # D (181-200 days) is rare
            "bootstrap_resamples": 0,
            "choice": {"candidates": ["lightgbm"]},
            "tuning": {"n_trials": 1, "timeout_s": 30, "cv_folds": 2},
        },
        "segments": {"k": 3},
        "predict": {"output": str(folder / "out" / "predictions.csv"), **predict},
        "report": {"output": str(folder / "out" / "report.html")},
        "mlflow": {"experiment": "deals", "model_name": "deals"},
    }
    path = folder / "deals.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
    return path


def test_open_only_scores_open_deals_and_lists_the_closed_ones_as_skipped(workdir, caplog):
    deals, outcomes = deal_world(workdir / "data")
    config = deal_config(workdir, open_only=True)
    runner = CliRunner()
    trained = runner.invoke(app, ["train", "--config", str(config)])
    assert trained.exit_code == 0, trained.output
    text = " ".join(trained.output.split())
    assert "censoring proxies" in text and "days_open (AUC" in text  # old deals are labelled, new ones censored

    res = runner.invoke(app, ["predict", "--config", str(config)])
    assert res.exit_code == 0, res.output  # far more than max_reject_share are skipped: they are not rejects
    before = lambda col: pd.to_datetime(outcomes[col]) < pd.Timestamp(AS_OF)  # noqa: E731
    closed = set(outcomes.loc[before("won") | before("lost"), "deal_id"])
    assert 0 < len(closed) < len(deals)
    scored = pd.read_csv(workdir / "out" / "predictions.csv", dtype={"customer_id": str})
    assert set(scored["customer_id"]) == set(deals["deal_id"]) - closed
    rejects = pd.read_csv(workdir / "out" / "predictions.rejects.csv", dtype={"customer_id": str})
    assert set(rejects["customer_id"]) == closed
    assert set(rejects["reason"]) == {"skipped: closed (won or lost) before the as-of date"}
    out = " ".join(res.output.split())
    assert f"skipped {len(closed)} (not bad input" in out and "rejected 0" in out
    assert f"{len(deals)} = {len(deals) - len(closed)} scored + 0 rejected + {len(closed)} skipped (ok)" in out
    # a deal still open after 31 days can no longer close within 30 (A), after 201 not within the horizon
    age = scored["customer_id"].map(deals.set_index("deal_id")["days_open"])
    proba = scored[[f"proba_{t}" for t in "ABCDE"]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    for tier, days in zip("ABCD", (30, 90, 180, 200), strict=True):
        assert (scored.loc[age > days, f"proba_{tier}"] == 0).all() and not (
            scored.loc[age > days, "tier"] == tier
        ).any()
        assert (scored.loc[age <= days, f"proba_{tier}"] > 0).all()
    assert (age > 200).any() and (scored.loc[age > 200, "proba_E"] == 1).all()
    # the days left until the window of each deal's tier closes: the worklist calls before then
    window = scored["tier"].map({"A": 30, "B": 90, "C": 180, "D": 200})
    np.testing.assert_allclose(scored["tier_days_left"], window - age)  # NaN for E: no window closes
    inside = scored["tier"] != "E"
    assert inside.any() and (scored.loc[inside, "tier_days_left"] >= 0).all(), scored["tier"].value_counts()

    # over REST the days open are optional: without them, the tiers as seen from each deal's first days
    cfg = load_config(config)
    tracking.setup(cfg)
    scorer = tracking.load_model(tracking.champion_uri(cfg)).unwrap_python_model().scorer
    feats = build(cfg, with_labels=False).features
    feats = feats[feats["customer_id"].isin(scored["customer_id"])]
    plain = scorer.score(feats.drop(columns="open_days"))
    assert np.allclose(plain[[f"proba_{t}" for t in "ABCDE"]].sum(axis=1), 1.0)
    assert (plain.loc[(feats["open_days"] > 30).to_numpy(), "proba_A"] > 0).all()

    every = deal_config(workdir / "all", output=str(workdir / "all.csv"))  # the same model, open_only off
    every.write_text(every.read_text(encoding="utf-8").replace(str(workdir / "all" / "data"), str(workdir / "data")))
    with caplog.at_level("WARNING"):
        res = runner.invoke(app, ["predict", "--config", str(every)])
    assert res.exit_code == 0, res.output
    assert len(pd.read_csv(workdir / "all.csv")) == len(deals) and "skipped" not in res.output
    assert "predict.open_only is off: every entity is scored as still open" in caplog.text


def test_open_only_without_an_outcomes_table_is_a_config_error(tmp_path):
    path = deal_config(tmp_path, open_only=True)
    cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
    del cfg["data"]["tables"]["outcomes"]
    cfg["labels"] = {"source": "rules", "rules": [{"tier": "A", "when": "origin = 'referral'"}]}
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"predict.open_only needs data.tables.outcomes"):
        load_config(path)


def test_label_presence_auc_finds_proxies_of_every_shape():
    rng = np.random.default_rng(0)
    n = 4000
    has = rng.random(n) < 0.3
    X = pd.DataFrame(
        {
            "age_days": np.where(has, rng.normal(300, 40, n), rng.normal(60, 40, n)),  # numeric proxy
            "filled_when_closed": np.where(has, rng.normal(5, 1, n), np.nan),  # missingness proxy
            "stage": np.where(has, "closed", rng.choice(["new", "open"], n)),  # categorical proxy
            "noise": rng.normal(size=n),
            "row_id": [f"r{i}" for i in range(n)],  # unique values: pooled, never a proxy by memorising
            "flag": rng.random(n) < 0.5,
        }
    )
    auc = label_presence_auc(X, has)
    assert auc[["age_days", "filled_when_closed", "stage"]].min() > 0.95
    assert auc[["noise", "row_id", "flag"]].max() < 0.56
    assert list(auc.index[:3]) == sorted(auc.index[:3], key=lambda c: -auc[c])  # highest first
    flipped = label_presence_auc(X.assign(age_days=-X["age_days"]), has)
    assert flipped["age_days"] == pytest.approx(auc["age_days"])  # direction does not matter
    assert label_presence_auc(X, np.ones(n, bool)).empty  # every row labelled: nothing to tell apart
    sampled = label_presence_auc(X, has, max_rows=1000, seed=1)
    assert sampled["age_days"] > 0.95
    with pytest.raises(ValueError, match="one value per row"):
        label_presence_auc(X, has[:10])


def test_the_drift_reference_leaves_out_deals_closed_within_the_days_their_features_describe():
    """A deal won or lost in its first 14 days shows it in its day-14 features (no current stage); predict
    never scores such a deal as open, so it is left out of the rows scoring is compared with, and scoring
    the trained snapshot's open deals shows no drift."""
    from leadtier.models.drift import DriftAccumulator, reference_profile
    from leadtier.pipelines.train import CLOSED_EARLY, Prepared, drift_rows

    sql = (Path(__file__).parents[1] / "features" / "sql" / "labels_days_to_win.sql").read_text(encoding="utf-8")
    assert f"THEN '{CLOSED_EARLY} " in sql  # the reason the labels give such deals
    rng = np.random.default_rng(0)
    n = 4000
    closed = rng.random(n) < 0.06
    feats = pd.DataFrame(
        {
            "customer_id": [f"D{i}" for i in range(n)],
            "stage_current": np.where(closed, np.nan, rng.integers(1, 4, n).astype(float)),
        }
    )
    prep = Prepared(train=feats, test=None, features=feats, stats={}, protocol={})
    assert drift_rows(prep) is feats  # nothing closed early: every row
    prep.closed_early = set(feats.loc[closed, "customer_id"])
    rows = drift_rows(prep)
    assert len(rows) == n - closed.sum() and not rows["customer_id"].isin(prep.closed_early).any()

    def warned(reference_rows):
        acc = DriftAccumulator(reference_profile(reference_rows, ["stage_current"], {}))
        acc.add(feats[~closed])  # the open deals, as predict scores them on the day trained
        return acc.table(threshold=0.01).set_index("feature").loc["stage_current", "warning"]

    assert warned(feats) and not warned(rows)
