"""The shipped real-data configs train end to end on small slices of ../shared/datasets."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from leadtier.pipelines import predict as predict_stage
from leadtier.pipelines import train as train_stage
from leadtier.pipelines.config import load_config
from leadtier.pipelines.tracking import load_model
from leadtier.pipelines.train import TrainingDataError

from tests.conftest import REPO

SHARED = Path(os.environ.get("LEADTIER_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))
RETAIL = [
    "online_retail_ii/online_retail_ii_2009-12_2010-12.parquet",
    "online_retail/online_retail_2010-12_2011-12.parquet",
]
LEADS = "x_education_leads/Leads.csv"

pytestmark = [
    pytest.mark.realdata,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (SHARED / LEADS).is_file() or not all((SHARED / f).is_file() for f in RETAIL),
        reason=f"real datasets not found under {SHARED} (set LEADTIER_SHARED_DATASETS)",
    ),
]


def _tiny_budget(cfg):
    cfg.train.tuning.n_trials = 1
    cfg.train.tuning.timeout_s = 30
    cfg.train.tuning.cv_folds = 2
    cfg.train.min_per_tier = 5
    cfg.segments.k_range = (3, 3)
    return cfg


def test_online_retail_slice_backtest_trains_and_registers(workdir):
    root = workdir / "retail"
    for rel in RETAIL:  # every 10th customer keeps whole purchase histories
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        id_col = '"Customer ID"' if "_ii_" in rel else "CustomerID"
        duckdb.sql(
            f"COPY (SELECT * FROM read_parquet('{SHARED / rel}') WHERE CAST({id_col} AS BIGINT) % 10 = 0) "
            f"TO '{root / rel}' (FORMAT parquet)"
        )
    cfg = _tiny_budget(load_config(REPO / "configs" / "online_retail.yaml", data_root=str(root)))
    res = train_stage.run(cfg)
    assert res.alias == "champion" and res.protocol["evaluation"] == "backtest"
    assert res.protocol["train_labels_observed_until"] == "2011-03-01"
    assert {"model", "majority", "logreg", "rfm_scorecard"} <= set(res.metrics)
    assert res.metrics["model"]["qwk"] > 0.1


def test_x_education_leads_slice_kfold_trains_and_scores_every_lead(workdir):
    root = workdir / "leads"
    (root / "x_education_leads").mkdir(parents=True)
    pd.read_csv(SHARED / LEADS).head(2500).to_csv(root / LEADS, index=False)
    cfg = _tiny_budget(load_config(REPO / "configs" / "x_education_leads.yaml", data_root=str(root)))
    cfg.train.folds = 3
    cfg.predict.output = str(workdir / "leads_pred.parquet")
    res = train_stage.run(cfg)
    assert res.protocol["evaluation"] == "kfold"
    assert res.metrics["model"]["macro_f1"] > res.metrics["majority"]["macro_f1"]
    pred = predict_stage.run(cfg, progress=False)
    assert pred.input_rows == 2500 and pred.scored + pred.rejected + pred.skipped == 2500
    out = pd.read_parquet(pred.output)
    assert out["tier"].isin(cfg.scheme.codes).all()
    # the leaky columns never reach the model
    feature_table = set(train_stage.prepare(cfg).features.columns)
    assert not any(c.startswith(("cust_converted", "cust_tags", "cust_lead_quality")) for c in feature_table)
    # Lead Number is read (train.order_by can hold out the newest leads) but features.exclude keeps it out
    # of the model: it lowers QWK on the newest leads (docs/results.md)
    scorer = load_model(f"models:/{cfg.mlflow.model_name}/{res.model_version}").unwrap_python_model().scorer
    assert "cust_lead_number" in feature_table and "cust_lead_number" not in scorer.feature_columns
    assert "cust_total_time_spent_on_website" in scorer.feature_columns
    # the Converted config reads the same file: Lead Number is a feature there, the leaky columns are not
    conv = load_config(REPO / "configs" / "x_education_converted.yaml", data_root=str(root))
    conv_feats = train_stage.prepare(conv).features
    conv_cols = set(conv_feats.columns)
    assert "cust_lead_number" in conv_cols and "cust_total_time_spent_on_website" in conv_cols
    assert not any(c.startswith(("cust_converted", "cust_tags", "cust_lead_quality")) for c in conv_cols)
    # ... but the K-means segments leave it out (segments.exclude_columns): they describe behaviour
    seg_cols = train_stage.segment_columns(conv_feats, conv.segments.exclude_columns)
    assert "cust_lead_number" not in seg_cols and "cust_total_time_spent_on_website" in seg_cols
    with pytest.raises(TrainingDataError, match=r"segments\.exclude_columns .*\['cust_lead_nr'\]"):
        train_stage.segment_columns(conv_feats, ["cust_lead_nr"])
