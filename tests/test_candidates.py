"""The tier model is chosen among LightGBM, the logistic regression and their average, on validation
rows inside the training rows, and a switch away from the first candidate needs more than noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from leadtier.models.baselines import LogisticBaseline
from leadtier.models.candidates import AveragedTiers, choose
from leadtier.models.classifier import TierClassifier
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
    choice = choose(_make(3), X, y, _splits(X, y), LEVELS, "roc_auc", averages={"average": ("lightgbm", "logreg")})
    assert choice.name in {"logreg", "average"}
    assert choice.scores["logreg"] > choice.scores["lightgbm"] + 0.05
    assert f"{choice.name} chosen on 3000 validation rows from the training rows" in choice.reasons[0]
    assert "gain over lightgbm [95 % interval]" in choice.reasons[0]


def test_the_first_candidate_stays_when_no_other_beats_it_beyond_noise():
    X, y = _linear_world(300, 1)
    make = {"lightgbm": _make(3)["logreg"], "logreg": _make(3)["logreg"]}  # the same model twice: a tie
    choice = choose(make, X, y, _splits(X, y), LEVELS, "roc_auc")
    assert choice.name == "lightgbm"
    assert "lightgbm kept: no candidate beats it beyond noise" in choice.reasons[0]
    best = choose(make, X, y, _splits(X, y), LEVELS, "roc_auc", rule="best")
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
    assert seen and all(rows and not rows & evaluated for rows in seen)
    assert res.protocol["model"] in {"lightgbm", "logreg", "average"}
