"""bench/ (the benchmarks beside the package): the pandas reference equals the DuckDB features (a fair
baseline); the JSON lines."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from leadtier.models.worklist import capture_gains
from leadtier.pipelines.features import build
from leadtier.pipelines.synthetic_crm import generate

from bench import harness, reference
from bench import worklist as bench_worklist
from tests.conftest import AS_OF, REPO, small_config, write_tables

CONFIGS = ("demo", "online_retail", "x_education_leads", "x_education_converted")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """3,000 synthetic customers as canonical tables, and the demo config pointing at them."""
    root = tmp_path_factory.mktemp("bench_world")
    chunks = list(generate(n_customers=3000, seed=7, as_of=AS_OF, history_days=730, label_share=0.3, chunk_size=1000))
    tables = {t: pd.concat([c[t] for c in chunks], ignore_index=True) for t in chunks[0]}
    write_tables(root, tables["customers"], tables["transactions"], tables["interactions"], tables["labels"])
    return small_config(root), tables


def _reference(cfg, tables) -> pd.DataFrame:
    return reference.pandas_features(
        tables["customers"],
        tables["transactions"],
        tables["interactions"],
        cfg.data.as_of,
        cfg.features.windows_days,
        cfg.features.interaction_types,
    )


def test_pandas_reference_equals_duckdb_column_by_column(world):
    cfg, tables = world
    duck = build(cfg, with_labels=False).features
    ref = _reference(cfg, tables)
    assert list(ref.columns) == list(duck.columns)
    assert len(ref) == len(duck) == 3000
    assert ref["customer_id"].tolist() == duck["customer_id"].tolist()
    for col in duck.columns:
        a, b = duck[col], ref[col]
        if pd.api.types.is_numeric_dtype(a):
            assert b.dtype == "float64", col
            np.testing.assert_allclose(b.to_numpy(), a.to_numpy(), rtol=1e-9, atol=0, equal_nan=True, err_msg=col)
        else:
            assert (
                a.astype(object).where(a.notna(), None).tolist() == b.astype(object).where(b.notna(), None).tolist()
            ), col
    assert reference.frame_differences(duck, ref) == []
    # the data exercise every family: buyers, returns, several segments, all interaction types
    assert (ref["rfm_frequency"] > 0).mean() > 0.2
    assert ref["rfm_return_lines"].sum() > 0
    assert ref["rfm_segment"].nunique() >= 8
    assert all(ref[f"ix_{t}_365d"].sum() > 0 for t in cfg.features.interaction_types)


def test_reference_respects_the_as_of_date(world):
    """Events on or after as_of and customers created on or after it never count, like the SQL."""
    cfg, tables = world
    as_of = cfg.data.as_of - dt.timedelta(days=200)
    duck = build(cfg, as_of=as_of, with_labels=False).features
    ref = reference.pandas_features(
        tables["customers"],
        tables["transactions"],
        tables["interactions"],
        as_of,
        cfg.features.windows_days,
        cfg.features.interaction_types,
    )
    assert len(ref) < 3000
    assert reference.frame_differences(duck, ref) == []


def test_frame_differences_reports_a_changed_value(world):
    cfg, tables = world
    ref = _reference(cfg, tables)
    other = ref.copy()
    other.loc[5, "rfm_monetary"] = other.loc[5, "rfm_monetary"] + 1
    other.loc[7, "rfm_segment"] = "nobody"
    diffs = reference.frame_differences(ref, other)
    assert [d.split(":")[0] for d in diffs] == ["rfm_monetary", "rfm_segment"]


def test_registry_names_and_size_labels():
    for name in (
        "demo_data_1m_seconds",
        "features_1m_seconds",
        "features_1m_peak_rss_gb",
        "features_speedup_vs_pandas",
        "online_retail_dataset_seconds",
        "predict_1m_seconds",
        "predict_1m_peak_rss_gb",
        "train_demo_seconds",
        "leads_tier_macro_f1",
        "leads_tier_qwk",
        "leads_tier_logreg_macro_f1",
        "leads_tier_logreg_qwk",
        "leads_tier_newest_macro_f1",
        "leads_tier_newest_qwk",
        "leads_tier_newest_macro_f1_seed_mean",
        "leads_tier_newest_qwk_seed_mean",
        "leads_tier_newest_refit_gain_macro_f1",
        "leads_tier_newest_refit_gain_qwk",
        "leads_converted_auc",
        "leads_converted_newest_auc",
        "leads_converted_newest_auc_without_lead_number",
        "leads_converted_newest_logreg_auc",
        "online_retail_tier_macro_f1",
        "online_retail_tier_qwk",
        "online_retail_tier_log_loss",
        "worklist_1m_seconds",
        *(f"worklist_{w}_captured_top{k}pct" for w in ("wins", "revenue", "leads_wins") for k in (5, 10, 20)),
        *(f"{c}_{f}" for c in CONFIGS for f in ("overlap", "log_loss", "brier", "ece", "mean_proba_gap")),
    ):
        assert name in harness.load_benchmarks()
    assert harness.size_label(1_000_000) == "1m" and harness.size_label(20_000) == "20k"
    assert harness.size_label(2500) == "2500"
    with pytest.raises(
        SystemExit, match=r"^unknown benchmark\(s\) \['no_such_benchmark'\]; known: .*train_demo_seconds"
    ):
        harness.select("no_such_benchmark")
    assert harness.select("train_demo_seconds, features_1m_seconds") == ["train_demo_seconds", "features_1m_seconds"]


def test_cli_prints_json_lines(tmp_path):
    work = tmp_path / "work"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--only",
            "features_1m_seconds",
            "--n-customers",
            "2000",
            "--workdir",
            str(work),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]
    assert [line["name"] for line in lines] == ["features_1m_seconds"]
    line = lines[0]
    assert {"name", "value", "unit", "n_customers", "rows", "bar", "ok", "command"} <= set(line)
    assert line["unit"] == "s" and line["value"] > 0
    assert line["n_customers"] == 2000 and line["rows"] == 2000
    assert line["bar"] == "<= 10" and isinstance(line["ok"], bool)
    assert "--only features_1m_seconds" in line["command"]
    assert (work / "data2k" / "customers.parquet").is_file()  # generated under --workdir, not the repo


def test_speedup_on_a_subset_reports_matching_outputs(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--only",
            "features_speedup_vs_pandas",
            "--n-customers",
            "3000",
            "--pandas-max-customers",
            "1000",
            "--workdir",
            str(tmp_path / "work"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = [json.loads(x) for x in proc.stdout.splitlines() if x.strip()]
    assert line["name"] == "features_speedup_vs_pandas" and line["unit"] == "x" and line["value"] > 0
    assert line["n_customers"] == 1000 and line["rows"] == 1000 and "note" in line
    assert line["outputs_match"] is True, line["differences"]


def test_real_data_benchmarks_skip_without_the_files(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--only",
            "leads_converted_auc,leads_converted_newest_auc,online_retail_dataset_seconds",
            "--shared",
            str(tmp_path / "absent"),
            "--workdir",
            str(tmp_path / "work"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.strip()]
    assert [x["name"] for x in lines] == [
        "online_retail_dataset_seconds",
        "leads_converted_newest_auc",
        "leads_converted_auc",
    ]
    assert all("absent" in x["skipped"] for x in lines)
    assert lines[-1]["skipped"].count("Leads.csv") == 1  # customers and labels read the same file: named once


def _retail_like(shared, n_customers: int = 500, seed: int = 0) -> None:
    """Invoice lines shaped like the two Online Retail files (their names, columns and split), for
    ``configs/online_retail.yaml`` on ``shared``: customers who buy every 10 to 120 days for a while."""
    rng = np.random.default_rng(seed)
    first, days = pd.Timestamp("2009-12-01"), 738
    lines = []
    for c in range(n_customers):
        start = int(rng.integers(0, 200))
        end, gap, day = min(days, start + int(rng.integers(30, days))), float(rng.choice([10, 30, 60, 120])), start
        while day < end:
            for _ in range(int(rng.integers(1, 4))):
                lines.append((f"{len(lines) + 500000}", 12000.0 + c, first + pd.Timedelta(days=day, hours=10)))
            day += 1 + rng.exponential(gap)
    frame = pd.DataFrame(lines, columns=["Invoice", "Customer ID", "InvoiceDate"])
    frame["Invoice"] = frame.groupby(["Customer ID", "InvoiceDate"])["Invoice"].transform("first")
    frame["StockCode"] = pd.Series(rng.integers(100, 130, len(frame))).map("P{}".format)
    frame["Quantity"] = rng.integers(1, 12, len(frame))
    frame["Price"] = np.round(rng.uniform(0.5, 20.0, len(frame)), 2)
    frame["Country"] = rng.choice(["United Kingdom", "France", "Germany"], len(frame))
    early = frame["InvoiceDate"] < pd.Timestamp("2010-12-01")
    for folder, part, names in (
        ("online_retail_ii", early, {}),
        ("online_retail", ~early, {"Invoice": "InvoiceNo", "Customer ID": "CustomerID", "Price": "UnitPrice"}),
    ):
        (shared / folder).mkdir(parents=True)
        span = "2009-12_2010-12" if folder.endswith("_ii") else "2010-12_2011-12"
        frame[part].rename(columns=names).to_parquet(shared / folder / f"{folder}_{span}.parquet", index=False)


def test_worklist_figures_name_each_share_with_its_gains_and_intervals(tmp_path):
    """The worklist backtest end to end on generated Online-Retail-shaped files (one tuning trial), and
    the worklist timing on 2,000 generated customers."""
    _retail_like(tmp_path / "shared")
    wanted = [*bench_worklist.ONLINE_RETAIL, "worklist_1m_seconds"]
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--only", ",".join(wanted), "--n-customers", "2000"]
        + ["--shared", str(tmp_path / "shared"), "--workdir", str(tmp_path / "work")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "LEADTIER_BENCH_TRIALS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = {x["name"]: x for x in map(json.loads, proc.stdout.splitlines())}
    assert list(lines) == wanted
    for name in bench_worklist.ONLINE_RETAIL:
        line = lines[name]
        assert line["unit"] == "share" and 0 <= line["value"] <= 1 and line["n_trials"] == 1
        for other in bench_worklist.BASELINES:
            gain, low, high = line[f"gain_over_{other}_95ci"]
            assert low <= gain <= high and line[f"vs_{other}"] in {"better", "worse", "within noise"}
            assert 0 <= line[f"{other}_captured"] <= 1
        assert line["command"] == f"LEADTIER_BENCH_TRIALS=1 python -m bench --only {name} --n-customers 2000 " + (
            f"--shared {tmp_path / 'shared'}"
        )
    assert lines["worklist_revenue_captured_top10pct"]["totals"]["revenue"] > 0
    speed = lines["worklist_1m_seconds"]
    assert speed["n_customers"] == 2000 and speed["bar"] == "<= 30" and speed["ok"] is True


def test_worklist_lines_say_which_orderings_were_not_compared():
    """Leads have no RFM features: their lines name the missing comparison instead of leaving it out silently."""
    rng = np.random.default_rng(0)
    wins = (rng.random(300) < 0.3).astype(float)
    score = wins + rng.normal(0, 1, 300)
    gains = capture_gains(
        {"worklist": score, "score_only": score, "logreg": rng.random(300)},
        {"wins": wins},
        (0.05, 0.1, 0.2),
        "worklist",
    )
    res = {"gains": {k: {str(s): v for s, v in by.items()} for k, by in gains.items()}}
    ctx = harness.Ctx(n_customers=harness.DEFAULT_N, workdir=REPO, shared=harness.default_shared())
    lines = list(bench_worklist.capture_lines(ctx, "leads_", res, {"rows": 300}))
    assert [x["name"] for x in lines] == list(bench_worklist.LEADS)
    assert all(x["not_compared"] == ["rfm_scorecard"] and x["vs_score_only"] == "within noise" for x in lines)
    assert lines[1]["gain_over_score_only_95ci"] == [0.0, 0.0, 0.0]
