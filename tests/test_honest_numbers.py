"""Honest numbers: metrics that do not depend on row order, intervals that hold their point estimate."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from leadtier.models.metrics import lift_top_share, paired_bootstrap, tier_metrics


def _tied_predictions(rng: np.random.Generator, n: int, k: int, positives: float, distinct: int):
    """Labels and probabilities with few distinct values (many ties), first level the rare one."""
    y_idx = np.where(rng.random(n) < positives, 0, rng.integers(1, k, size=n))
    raw = rng.integers(1, distinct + 1, size=(n, k)).astype(float) + 3.0 * np.eye(k)[y_idx] * (rng.random((n, 1)) < 0.5)
    return y_idx, raw / raw.sum(axis=1, keepdims=True)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(20, 300),
    k=st.sampled_from([2, 3, 5]),
    positives=st.floats(0.05, 0.6),
    distinct=st.integers(1, 4),
)
def test_every_metric_is_the_same_whatever_the_row_order(seed, n, k, positives, distinct):
    rng = np.random.default_rng(seed)
    y_idx, proba = _tied_predictions(rng, n, k, positives, distinct)
    levels = [f"L{i}" for i in range(k)]
    y = np.array(levels, dtype=object)[y_idx]
    first = tier_metrics(y, proba, levels)
    order = rng.permutation(n)
    again = tier_metrics(y[order], proba[order], levels)
    assert first.keys() == again.keys()
    for m, v in first.items():
        assert again[m] == pytest.approx(v, rel=1e-9, abs=1e-12, nan_ok=True), m


def test_lift_of_a_constant_score_is_one_and_ties_share_the_top_decile():
    is_pos = np.r_[np.ones(10), np.zeros(90)]
    assert lift_top_share(np.full(100, 0.3), is_pos) == pytest.approx(1.0)
    assert lift_top_share(np.full(100, 0.3), is_pos[::-1]) == pytest.approx(1.0)
    # 5 rows clearly on top (all positive), then 20 tied rows holding 5 positives for the other 5 places
    score = np.r_[np.full(5, 0.9), np.full(20, 0.5), np.full(75, 0.1)]
    pos = np.r_[np.ones(5), np.ones(5), np.zeros(15), np.zeros(75)]
    expected = (5 + 5 * 5 / 20) / 10 / 0.10
    assert lift_top_share(score, pos) == pytest.approx(expected)
    assert lift_top_share(score, np.r_[pos[:5], pos[5:25][::-1], pos[25:]]) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("k", "positives", "distinct"),
    [(2, 0.08, 3), (2, 0.4, 50), (3, 0.2, 6), (5, 0.05, 20)],
    ids=["imbalanced-ties", "balanced", "three-levels", "five-levels-rare"],
)
def test_every_gain_lies_inside_its_own_interval(k, positives, distinct):
    """The interval printed beside a gain must contain it; the constant majority baseline included."""
    rng = np.random.default_rng(7)
    n = 600
    y_idx, model = _tied_predictions(rng, n, k, positives, distinct)
    levels = [f"L{i}" for i in range(k)]
    y = np.array(levels, dtype=object)[y_idx]
    prior = np.bincount(y_idx, minlength=k) / n
    majority = np.tile(prior, (n, 1))
    noisy = 0.5 * model + 0.5 * rng.dirichlet(np.ones(k), size=n)
    preds = {
        "model": (model, list(np.array(levels)[model.argmax(axis=1)])),
        "majority": (majority, [levels[int(prior.argmax())]] * n),
        "noisy": (noisy, list(np.array(levels)[noisy.argmax(axis=1)])),
    }
    keys = ["macro_f1", "qwk", "log_loss", "brier", "ece", "roc_auc", "pr_auc", "lift_top_decile"]
    gains = paired_bootstrap(y, preds, "model", levels, keys, n_resamples=400, seed=1)
    checked = 0
    for baseline, per_metric in gains.items():
        for m, g in per_metric.items():
            assert g["low"] <= g["gain"] <= g["high"], (baseline, m, g)
            checked += 1
    assert checked >= 2 * 5


# --------------------------------------------------------------------------- disjoint evaluation rows


def _people_labelled_backtest(cfg, labelled_before_cut: float):
    """The demo world's rep tiers with ``labelled_at``: a share assigned before the training cut, the
    rest between the cut and the evaluation date; train on the cut, evaluate on the as-of date."""
    import pandas as pd
    from leadtier.pipelines.config import SnapshotConfig

    labels = pd.read_parquet(cfg.data_path("labels.parquet"))
    cut = cfg.data.as_of - dt.timedelta(days=120)
    created = pd.read_parquet(cfg.data_path("customers.parquet")).set_index("customer_id")["created_at"]
    existed = (
        pd.to_datetime(labels["customer_id"].map(created)) < pd.Timestamp(cut - dt.timedelta(days=10))
    ).to_numpy()
    if labelled_before_cut == 1.0:  # only customers a rep could have tiered before the cut
        labels = labels[existed].reset_index(drop=True)
        existed = existed[existed]
    early = existed & (np.random.default_rng(0).random(len(labels)) < labelled_before_cut)
    labels["labelled_at"] = np.where(early, cut - dt.timedelta(days=10), cfg.data.as_of - dt.timedelta(days=5))
    labels.to_parquet(cfg.data_path("labels.parquet"), index=False)
    cfg.train.evaluation = "backtest"
    cfg.snapshots = SnapshotConfig(train_as_of=[cut], eval_as_of=[cfg.data.as_of])
    cfg.train.min_per_tier = 5
    return labels, cut


def test_a_backtest_with_labels_from_people_evaluates_only_customers_training_did_not_use(demo_data):
    from leadtier.pipelines.train import check_disjoint, prepare

    labels, cut = _people_labelled_backtest(demo_data, labelled_before_cut=0.6)
    prep = prepare(demo_data)
    trained, evaluated = set(prep.train["customer_id"]), set(prep.test["customer_id"])
    assert trained and evaluated and not trained & evaluated
    late = set(labels.loc[labels["labelled_at"] > cut, "customer_id"])
    assert evaluated <= late  # labelled after the training cut ...
    assert trained <= set(labels.loc[labels["labelled_at"] <= cut, "customer_id"])  # ... training used the rest
    assert check_disjoint(prep.train, prep.test, "table") == 0


def test_a_backtest_whose_evaluation_customers_were_all_trained_on_is_refused(demo_data):
    from leadtier.pipelines.train import TrainingDataError, prepare

    _people_labelled_backtest(demo_data, labelled_before_cut=1.0)
    with pytest.raises(TrainingDataError, match=r"backtest: all \d+ labelled customers .* were used in training"):
        prepare(demo_data)


@pytest.mark.parametrize("label_source", ["table", "outcome"])
def test_overlapping_rows_stop_the_run(label_source):
    import pandas as pd
    from leadtier.pipelines.train import check_disjoint

    day = dt.date(2026, 1, 1)
    train = pd.DataFrame({"customer_id": ["a", "b", "c"], "snapshot": [day] * 3})
    evaluation = pd.DataFrame({"customer_id": ["c", "d"], "snapshot": [day, day]})
    with pytest.raises(RuntimeError, match="1 evaluation row"):
        check_disjoint(train, evaluation, label_source)
    later = evaluation.assign(snapshot=dt.date(2026, 6, 1))
    # the same customer at a later snapshot is a new row for outcome labels, not for a rep's tier
    if label_source == "outcome":
        assert check_disjoint(train, later, label_source) == 0
    else:
        with pytest.raises(RuntimeError):
            check_disjoint(train, later, label_source)


def test_a_huge_label_value_is_cut_in_the_error_line(demo_data):
    """A 1 MB tier in the labels file is named in at most a few hundred characters, with its length."""
    import pandas as pd
    from leadtier.pipelines.sources import InputError
    from leadtier.pipelines.train import attach_labels

    feats = pd.DataFrame({"customer_id": ["a", "b"], "x": [1.0, 2.0]})
    labels = pd.DataFrame({"customer_id": ["a", "b"], "tier": ["A", "Z" * 1_000_000]})
    with pytest.raises(InputError) as err:
        attach_labels(demo_data, feats, labels)
    assert len(str(err.value)) < 600 and "1,000,000 characters" in str(err.value)


@pytest.mark.slow
def test_a_train_run_that_fails_leaves_the_champion_as_it_was(demo_data, monkeypatch):
    from leadtier.pipelines import tracking
    from leadtier.pipelines import train as train_stage
    from mlflow.tracking import MlflowClient

    cfg = demo_data
    cfg.train.tuning.n_trials = 1
    cfg.train.semi_supervised.enabled = False
    first = train_stage.run(cfg)
    assert first.alias == "champion"

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tracking, "register", disk_full)  # fails after the model was logged, before the gate
    cfg.seed = 7  # another model, which could otherwise have won the gate
    with pytest.raises(OSError, match="No space left"):
        train_stage.run(cfg)
    client = MlflowClient()
    assert str(client.get_model_version_by_alias(cfg.mlflow.model_name, "champion").version) == first.model_version
    versions = client.search_model_versions(f"name = '{cfg.mlflow.model_name}'")
    assert [str(v.version) for v in versions] == [first.model_version]  # the failed run registered nothing


def test_an_attribute_exported_after_the_outcome_is_named_and_a_leaky_one_is_not(demo_data, caplog):
    """A CRM export's current stage ('lost' for every E) has no date of its own, so it is never cut at the
    as-of date: alone it picks out tier E, and train names it; an honest attribute is not named, and
    one listed under leaky is no feature to name."""
    import pandas as pd
    from leadtier.models.proxies import tier_giveaway_auc
    from leadtier.pipelines.train import TrainingDataError, prepare, tier_giveaways

    cfg = demo_data
    customers = pd.read_parquet(cfg.data_path("customers.parquet"))
    tiers = pd.read_parquet(cfg.data_path("labels.parquet")).set_index("customer_id")["tier"]
    tier = customers["customer_id"].map(tiers)
    rng = np.random.default_rng(0)
    customers["current_stage"] = np.where(tier == "E", "lost", rng.choice(["open", "proposal", "won"], len(tier)))
    customers.to_parquet(cfg.data_path("customers.parquet"), index=False)
    cfg.data.tables.customers.categorical = [*cfg.data.tables.customers.categorical, "current_stage"]
    prep = prepare(cfg)
    found = tier_giveaways(cfg, prep, [c for c in prep.train.columns if c.startswith(("cust_", "rfm_", "ix_"))])
    assert list(found) == ["cust_current_stage"] and found["cust_current_stage"]["tier"] == "E"
    assert found["cust_current_stage"]["auc"] > 0.95
    assert "attribute cust_current_stage alone picks out tier E" in caplog.text and "list it under leaky" in caplog.text
    # the honest attributes stay well below the bar: the check is not a false alarm on the demo's own columns
    honest = [f"cust_{c}" for c in ("lead_source", "industry", "company_size", "region", "annual_revenue_musd")]
    assert tier_giveaway_auc(prep.train[honest], prep.train["tier"])["auc"].max() < 0.8
    cfg.data.tables.customers.categorical = [c for c in cfg.data.tables.customers.categorical if c != "current_stage"]
    cfg.data.tables.customers.leaky = ["current_stage"]
    prep = prepare(cfg)
    assert "cust_current_stage" not in prep.train.columns
    assert tier_giveaways(cfg, prep, [c for c in prep.train.columns if c.startswith("cust_")]) == {}
    # the tier itself among the attributes (a target column listed as a feature) stops the run
    customers["rep_tier"] = tier.fillna("none")
    customers.to_parquet(cfg.data_path("customers.parquet"), index=False)
    cfg.data.tables.customers.categorical = [*cfg.data.tables.customers.categorical, "rep_tier"]
    prep = prepare(cfg)
    with pytest.raises(
        TrainingDataError, match=r"\['cust_rep_tier'\] alone tell every tier .*List such a column under"
    ):
        tier_giveaways(cfg, prep, ["cust_region", "cust_rep_tier"])
    cfg.train.giveaway_auc = None  # the check can be turned off
    assert tier_giveaways(cfg, prep, ["cust_region", "cust_rep_tier"]) == {}


def test_share_gaps_name_only_tiers_whose_probabilities_are_off_beyond_chance():
    from leadtier.models.metrics import share_gaps

    drifted = {"observed_share_yes": 0.236, "mean_proba_yes": 0.115, "observed_share_no": 0.764, "mean_proba_no": 0.885}
    assert share_gaps(drifted, ["yes", "no"], 4000) == {
        "yes": {"observed": 0.236, "expected": 0.115},
        "no": {"observed": 0.764, "expected": 0.885},
    }
    assert share_gaps(drifted, ["yes", "no"], 20) == {}  # on 20 rows such a gap is chance
    calibrated = {"observed_share_yes": 0.112, "mean_proba_yes": 0.105}
    assert share_gaps(calibrated, ["yes"], 100_000) == {}  # within the 0.02 floor


def test_a_feature_without_a_value_in_any_training_row_is_no_model_feature(demo_data, caplog):
    """Customers without a created_at column have no tenure: the model does not carry an empty column."""
    import pandas as pd
    from leadtier.pipelines.train import model_columns, prepare

    cfg = demo_data
    customers = pd.read_parquet(cfg.data_path("customers.parquet"))
    customers.drop(columns=["created_at"]).to_parquet(cfg.data_path("customers.parquet"), index=False)
    prep = prepare(cfg)
    assert prep.features["cust_tenure_days"].isna().all()
    with caplog.at_level("INFO"):
        cols = model_columns(cfg, prep)
    assert "cust_tenure_days" not in cols and "rfm_recency_days" in cols
    assert "['cust_tenure_days'] have no value in any training row" in caplog.text


def test_a_backtest_says_its_model_learnt_up_to_the_last_training_snapshot_and_refuses_train_as_of(tmp_path):
    """A backtest's dates are its snapshots: the model card's 'trained on data as of' is the last training
    snapshot (not data.as_of), and `train --as-of`, which it would not read, is an error, not ignored."""
    from leadtier.pipelines.cli import app
    from leadtier.pipelines.config import load_config
    from leadtier.pipelines.train_log import model_as_of
    from typer.testing import CliRunner

    from tests.conftest import REPO

    config = REPO / "configs" / "online_retail.yaml"
    cfg = load_config(config)
    assert cfg.train.evaluation == "backtest" and max(cfg.snapshots.train_as_of) < cfg.data.as_of
    assert model_as_of(cfg) == max(cfg.snapshots.train_as_of)
    res = CliRunner().invoke(app, ["train", "--config", str(config), "--as-of", "2011-06-01"])
    assert res.exit_code == 2 and "error: --as-of is not read by train.evaluation 'backtest'" in res.output
    demo = load_config(REPO / "configs" / "demo.yaml")
    assert demo.train.evaluation != "backtest" and model_as_of(demo) == demo.data.as_of
