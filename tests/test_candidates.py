"""The tier model is chosen among LightGBM, the logistic regression, CatBoost and averages of their
probabilities, on validation rows inside the training rows, and a switch away from the first candidate
needs more than noise. CatBoost keeps the estimator contract of the others."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from leadtier.models.baselines import LogisticBaseline
from leadtier.models.candidates import BALANCES, AveragedTiers, choose, choose_balance, validation_predictions
from leadtier.models.catboost_tiers import CatBoostTiers
from leadtier.models.classifier import TierClassifier
from leadtier.models.metrics import tier_metrics
from sklearn.model_selection import StratifiedKFold

LEVELS = ["won", "lost"]


def _linear_world(n: int, seed: int):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({f"x{i}": rng.normal(size=n) for i in range(6)})
    logit = X.to_numpy() @ np.array([1.2, -1.0, 0.8, 0.6, -0.5, 0.4])
    return X, np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "won", "lost")


def _make(stumps: int):
    return {
        "lightgbm": lambda: TierClassifier(levels=LEVELS, n_estimators=stumps, num_leaves=2, calibration="none"),
        "logreg": lambda: LogisticBaseline(levels=LEVELS),
    }


def _splits(X, y):
    return list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))


def test_a_clearly_better_candidate_is_chosen_with_its_interval_in_the_reasons():
    X, y = _linear_world(3000, 0)  # six linear effects: three stumps cannot follow them, a logistic fit can
    choice, _ = choose(_make(3), X, y, _splits(X, y), LEVELS, "roc_auc", averages={"average": ("lightgbm", "logreg")})
    assert choice.name in {"logreg", "average"}
    assert choice.scores["logreg"] > choice.scores["lightgbm"] + 0.05
    assert f"{choice.name} chosen on 3000 validation rows from the training rows" in choice.reasons[0]
    assert "gain over lightgbm [95 % interval]" in choice.reasons[0]
    g = choice.gains[choice.name]  # the interval the rule read, kept with the choice (model/choice.json)
    assert g["low"] > 0 and g["low"] <= g["gain"] <= g["high"] and set(choice.gains) == {"logreg", "average"}


def test_a_bound_that_decides_the_rule_never_reads_as_zero():
    from leadtier.models.text import signed

    assert signed(0.0023) == "+0.0023" and signed(-0.12345, 3) == "-0.123" and signed(0.0) == "+0.0000"
    assert signed(0.00004) == "+0.00004" and signed(-0.000049) == "-0.00005" and float(signed(1e-9)) > 0


def test_the_first_candidate_stays_when_no_other_beats_it_beyond_noise():
    X, y = _linear_world(300, 1)
    make = {"lightgbm": _make(3)["logreg"], "logreg": _make(3)["logreg"]}  # the same model twice: a tie
    choice, _ = choose(make, X, y, _splits(X, y), LEVELS, "roc_auc")
    assert choice.name == "lightgbm"
    assert "lightgbm kept: no candidate beats it beyond noise" in choice.reasons[0]
    best, _ = choose(make, X, y, _splits(X, y), LEVELS, "roc_auc", rule="best")
    assert best.name == "lightgbm"  # a tie keeps the earlier candidate under 'best' too


def test_an_average_is_the_mean_of_its_members_and_explains_with_their_mean_contributions():
    X, y = _linear_world(800, 2)
    members = [TierClassifier(levels=LEVELS, n_estimators=20, calibration="none"), LogisticBaseline(levels=LEVELS)]
    avg = AveragedTiers(members).fit(X, y)
    fitted = avg.members_
    np.testing.assert_allclose(avg.predict_proba(X), (fitted[0].predict_proba(X) + fitted[1].predict_proba(X)) / 2)
    level = np.zeros(5, dtype=int)
    own = [m.contributions_for(X.head(5), level) for m in fitted]
    np.testing.assert_allclose(avg.contributions_for(X.head(5), level), (own[0] + own[1]) / 2)
    with pytest.raises(ValueError, match="at least two members"):
        AveragedTiers(members[:1]).fit(X, y)


@pytest.mark.slow
def test_the_choice_never_sees_the_evaluation_rows(demo_data, monkeypatch):
    from leadtier.pipelines import train as train_stage

    cfg = demo_data
    cfg.train.tuning.n_trials = 1
    cfg.train.semi_supervised.enabled = False
    seen: list[set] = []
    real = train_stage.choice_splits

    def spy(cfg, rows):
        seen.append(set(rows["customer_id"]))
        return real(cfg, rows)

    monkeypatch.setattr(train_stage, "choice_splits", spy)
    res = train_stage.run(cfg)
    evaluated = set(train_stage.prepare(cfg).test["customer_id"])
    # made once, on training rows: train.refit fits that choice again on every labelled row, never re-made
    # on a union whose validation rows would be the evaluation rows
    (first,) = seen
    assert first and not first & evaluated
    assert res.protocol["model"] in {"lightgbm", "logreg", "average", "average3", "catboost"}
    assert any("as chosen and evaluated" in r for r in res.protocol["model_choice"])


def _snapshot_rows(old: range, new: range) -> pd.DataFrame:
    frames = [
        pd.DataFrame({"customer_id": [f"c{i}" for i in ids], "snapshot": snap, "tier": ["A", "B"] * (len(ids) // 2)})
        for ids, snap in ((old, "2026-01-01"), (new, "2026-04-01"))
    ]
    return pd.concat(frames, ignore_index=True)


@pytest.mark.parametrize("source", ["table", "outcome"])
def test_a_backtest_chooses_on_newest_rows_whose_customers_did_not_fit_the_candidates(demo_data, source):
    """With labels from people a customer's tier is the same in every snapshot, so a customer of the older
    snapshots validates nothing; an outcome is the snapshot's own, as the evaluation counts it."""
    from leadtier.pipelines.train import choice_splits

    cfg = demo_data.model_copy(deep=True)
    cfg.train.evaluation, cfg.labels.source = "backtest", source
    rows = _snapshot_rows(range(0, 60), range(30, 100))
    ((fit, validate),) = choice_splits(cfg, rows)
    fitting, validating = set(rows.loc[fit, "customer_id"]), set(rows.loc[validate, "customer_id"])
    assert set(rows.loc[fit, "snapshot"]) == {"2026-01-01"} and set(rows.loc[validate, "snapshot"]) == {"2026-04-01"}
    if source == "table":
        assert not fitting & validating and len(validate) == 40
    else:
        assert len(validate) == 70


def test_a_backtest_whose_newest_customers_all_fitted_chooses_on_folds_grouped_by_customer(demo_data):
    from leadtier.pipelines.train import choice_splits

    cfg = demo_data.model_copy(deep=True)
    cfg.train.evaluation, cfg.labels.source = "backtest", "table"
    rows = _snapshot_rows(range(0, 60), range(0, 40))
    splits = choice_splits(cfg, rows)
    assert len(splits) == cfg.train.choice.folds
    for fit, validate in splits:
        assert not set(rows.loc[fit, "customer_id"]) & set(rows.loc[validate, "customer_id"])
    assert sorted(np.concatenate([v for _, v in splits])) == list(range(len(rows)))


TIERS = ["high", "medium", "low"]


def _mixed_world(n: int, seed: int) -> tuple[pd.DataFrame, list[str]]:
    """Numbers and text (pandas' string dtype), both with missing values; tiers follow both."""
    rng = np.random.default_rng(seed)
    score = rng.normal(size=n)
    source = pd.Series(rng.choice(["web", "event", "referral"], size=n), dtype="string")
    source[rng.random(n) < 0.1] = pd.NA
    X = pd.DataFrame({"customer_id": np.arange(n).astype(str), "score": score, "source": source})
    X.loc[rng.random(n) < 0.1, "score"] = np.nan
    signal = np.nan_to_num(score) + np.where(source.fillna("") == "referral", 1.0, 0.0) + rng.normal(0, 0.5, n)
    y = np.select([signal > 0.8, signal > -0.3], ["high", "medium"], "low")
    return X, list(y)


def _catboost(**kw) -> CatBoostTiers:
    return CatBoostTiers(**{"levels": TIERS, "iterations": 60, "class_weight": None, **kw})


def test_catboost_gives_probabilities_per_level_in_scheme_order():
    X, y = _mixed_world(600, 0)
    model = _catboost().fit(X, y)
    proba = model.predict_proba(X)
    assert list(model.classes_) == TIERS and proba.shape == (600, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    truth = np.asarray(y)
    for j, level in enumerate(TIERS):  # each column is its own level's: highest on that level's rows
        assert proba[truth == level, j].mean() > proba[truth != level, j].mean() + 0.2
    assert list(model.feature_names_in_) == ["score", "source"]
    three = _catboost().fit(X, ["low" if t == "medium" else t for t in y])  # a level absent from training
    np.testing.assert_array_equal(three.predict_proba(X)[:, 1], 0.0)


def test_catboost_is_deterministic_with_its_seed_and_leaves_the_input_alone():
    X, y = _mixed_world(400, 1)
    before = X.copy(deep=True)
    first = _catboost(random_state=3).fit(X, y).predict_proba(X)
    pd.testing.assert_frame_equal(X, before)
    np.testing.assert_array_equal(first, _catboost(random_state=3).fit(X, y).predict_proba(X))
    assert not np.array_equal(first, _catboost(random_state=4).fit(X, y).predict_proba(X))


def test_catboost_scores_unseen_levels_and_missing_values():
    X, y = _mixed_world(400, 2)
    model = _catboost().fit(X, y)
    new = pd.DataFrame({"customer_id": ["a", "b", "c"], "score": [np.nan, 0.5, None], "source": ["fair", None, "web"]})
    proba = model.predict_proba(new)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    reasons = model.contributions_for(new, np.array([0, 1, 2]))
    assert reasons.shape == (3, 3) and np.isfinite(reasons).all()
    assert set(model.feature_importances_.index) == {"score", "source"}


def test_catboost_refuses_bad_input_saying_what_it_got():
    X, y = _mixed_world(100, 3)
    with pytest.raises(TypeError, match="must be a pandas DataFrame"):
        _catboost().fit(X.to_numpy(), y)
    with pytest.raises(ValueError, match=r"not in levels"):
        _catboost().fit(X, ["gold"] + y[1:])
    with pytest.raises(ValueError, match="class_weight must be None or 'balanced'. Got 'heavy' instead"):
        _catboost(class_weight="heavy").fit(X, y)


def test_a_choice_among_candidates_with_catboost_scores_each_and_explains_its_pick():
    X, y = _mixed_world(900, 4)
    X = X.drop(columns="customer_id")
    make = {
        "lightgbm": lambda: TierClassifier(levels=TIERS, n_estimators=30, calibration="none", class_weight=None),
        "logreg": lambda: LogisticBaseline(levels=TIERS, class_weight=None),
        "catboost": lambda: _catboost(),
    }
    averages = {"average3": ("lightgbm", "logreg", "catboost"), "average": ("lightgbm", "logreg")}
    candidates = ["average3", "average", "lightgbm", "logreg", "catboost"]
    splits = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
    choice, _ = choose(make, X, y, splits, TIERS, "macro_f1", candidates=candidates, averages=averages)
    assert set(choice.scores) == set(candidates) and choice.name in candidates
    assert "on 900 validation rows from the training rows" in choice.reasons[0]
    avg = AveragedTiers([make["lightgbm"](), make["logreg"](), make["catboost"]()]).fit(X, y)
    own = [m.predict_proba(X) for m in avg.members_]
    np.testing.assert_allclose(avg.predict_proba(X), np.mean(own, axis=0))
    assert avg.contributions_for(X.head(4), np.zeros(4, dtype=int)).shape == (4, 3)


@pytest.mark.slow
def test_a_registered_model_with_catboost_inside_loads_and_scores_through_the_cli(tmp_path, monkeypatch):
    import mlflow
    import yaml
    from leadtier.pipelines.cli import app
    from leadtier.pipelines.tracking import load_model
    from typer.testing import CliRunner

    from tests.conftest import DEMO_CONFIG

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("LEADTIER_DATA_ROOT", raising=False)
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["data"]["root"] = str(tmp_path / "data")
    raw["demo"]["n_customers"] = 1500
    raw["features"]["output"] = str(tmp_path / "out" / "features.parquet")
    raw["predict"]["output"] = str(tmp_path / "out" / "predictions.parquet")
    raw["segments"] = {"k": 3}
    raw["train"]["min_per_tier"] = 10
    raw["train"]["tuning"] |= {"n_trials": 1, "timeout_s": 10, "cv_folds": 2}
    raw["train"]["choice"] = {"candidates": ["average3", "catboost"], "folds": 2}
    config = tmp_path / "demo_catboost.yaml"
    config.write_text(yaml.safe_dump(raw, sort_keys=False))
    runner = CliRunner()
    for command in (["demo-data"], ["train"], ["predict", "--reasons"]):
        res = runner.invoke(app, [*command, "--config", str(config)])
        assert res.exit_code == 0, res.output
    chosen = mlflow.MlflowClient().get_model_version_by_alias("leadtier-demo", "champion")
    run = mlflow.get_run(chosen.run_id)
    assert run.data.tags["leadtier.model_kind"] in {"average3", "catboost"}
    model = load_model("models:/leadtier-demo@champion").unwrap_python_model().scorer.classifier
    inside = getattr(model, "members_", [model])  # the pickled scorer holds a fitted CatBoost
    assert any(isinstance(m, CatBoostTiers) for m in inside)
    scored = pd.read_parquet(tmp_path / "out" / "predictions.parquet")
    proba = scored.filter(like="proba_")
    assert len(scored) > 500 and proba.shape[1] == 5
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


def _weak_world(n: int, seed: int):
    """Five tiers, one of them 85 % of the rows, and features that only hint at the others."""
    rng = np.random.default_rng(seed)
    tiers = np.array(["A", "B", "C", "D", "E"])
    y = rng.choice(tiers, n, p=[0.06, 0.04, 0.03, 0.02, 0.85])
    signal = pd.Series(y).map({"A": 1.0, "B": 0.7, "C": 0.5, "D": 0.3, "E": 0.0}).to_numpy()
    X = pd.DataFrame({"x0": signal * 0.6 + rng.normal(size=n), "x1": rng.normal(size=n)})
    return X, y


def test_the_decision_balance_moves_the_decision_from_rare_tiers_to_the_most_probable_tier():
    X, y = _weak_world(3000, 5)
    model = LogisticBaseline(levels=list("ABCDE")).fit(X, y)
    proba = model.predict_proba(X)
    np.testing.assert_array_equal(model.tier_index(proba, 0.0), proba.argmax(axis=1))
    rare = [(model.tier_index(proba, s) != 4).mean() for s in (0.0, 0.5, 1.0)]
    assert rare[0] < rare[1] < rare[2]  # balanced weights call more rows a rare tier
    weak = LogisticBaseline(levels=list("ABCDE"), decision_balance=0.0).fit(X, y)
    np.testing.assert_array_equal(weak.predict(X), model.classes_[proba.argmax(axis=1)])
    with pytest.raises(ValueError, match=r"decision_balance must lie in \[0, 1\]. Got 1.5 instead"):
        model.tier_index(proba, 1.5)
    unweighted = LogisticBaseline(levels=list("ABCDE"), class_weight=None).fit(X, y)
    assert unweighted.balance() == 0.0 and model.balance() == 1.0  # None: as the class weights ask
    p = unweighted.predict_proba(X)
    balanced = LogisticBaseline(levels=list("ABCDE"), class_weight=None, decision_balance=1.0).fit(X, y)
    assert (balanced.tier_index(p) != 4).mean() > (unweighted.tier_index(p) != 4).mean()


def test_the_decision_balance_is_chosen_on_validation_rows_and_decides_better_on_new_rows():
    X, y = _weak_world(6000, 6)
    fit, new = np.arange(4000), np.arange(4000, 6000)
    make = {"logreg": lambda: LogisticBaseline(levels=list("ABCDE"))}
    splits = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X.iloc[fit], y[fit]))
    validation = validation_predictions(make, X.iloc[fit], y[fit], splits, ["logreg"])
    balance, scores, why = choose_balance(validation, "logreg", list("ABCDE"), "macro_f1")
    assert set(scores) == set(BALANCES) and balance < 1.0
    assert scores[balance] == max(scores.values())
    assert why.startswith(f"{balance:g} chosen on 4000 validation rows") and "gain over 1 [95 % interval]" in why
    chosen = LogisticBaseline(levels=list("ABCDE"), decision_balance=balance).fit(X.iloc[fit], y[fit])
    full = LogisticBaseline(levels=list("ABCDE")).fit(X.iloc[fit], y[fit])
    f1 = {
        name: tier_metrics(
            list(y[new]), m.predict_proba(X.iloc[new]), list("ABCDE"), y_pred=list(m.predict(X.iloc[new]))
        )["macro_f1"]
        for name, m in (("chosen", chosen), ("full", full))
    }
    assert f1["chosen"] > f1["full"] + 0.01, f1
    assert AveragedTiers([chosen, full]).fit(X.iloc[fit], y[fit]).decision_balance == balance  # the first member's


def test_candidates_are_judged_each_at_its_own_decision_balance_not_at_one_that_suits_another():
    """Two equal models, one held at balance 1 (every tier as if equally frequent), one at its best on the
    validation rows: judged each at the balance given, the second wins; judged at their own, they tie."""
    X, y = _weak_world(4000, 7)
    make = {"a": lambda: LogisticBaseline(levels=list("ABCDE")), "b": lambda: LogisticBaseline(levels=list("ABCDE"))}
    splits = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
    tie, _ = choose(make, X, y, splits, list("ABCDE"), "macro_f1", rule="best")
    assert tie.name == "a" and tie.scores["a"] == tie.scores["b"]

    def balance_of(validation, candidate):
        return 1.0 if candidate == "a" else choose_balance(validation, candidate, list("ABCDE"), "macro_f1")[0]

    judged, _ = choose(make, X, y, splits, list("ABCDE"), "macro_f1", rule="best", balance_of=balance_of)
    assert judged.name == "b" and judged.scores["b"] > judged.scores["a"]
    assert judged.reasons[-1].startswith("each candidate judged at its own decision balance on these rows: a 1, b ")


def test_an_average_pickled_before_the_balance_existed_decides_as_its_first_member():
    X, y = _weak_world(1500, 8)
    avg = AveragedTiers([LogisticBaseline(levels=list("ABCDE")), LogisticBaseline(levels=list("ABCDE"), C=0.1)])
    avg.fit(X, y)
    proba = avg.predict_proba(X)
    expected = avg.tier_index(proba)
    del avg.decision_balance  # as unpickled from an earlier version
    assert avg.balance() == 1.0  # the first member's class weights: balanced
    np.testing.assert_array_equal(avg.tier_index(proba), expected)
