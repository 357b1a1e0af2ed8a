"""Estimators: scheme-ordered probabilities, decision rules, no mutation of inputs, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from leadtier.models.baselines import LogisticBaseline, MajorityBaseline, StageNowBaseline
from leadtier.models.classifier import TierClassifier, decide
from leadtier.models.metrics import _Resampler, _scores, compare, confusion, paired_bootstrap, tier_metrics
from leadtier.models.schemes import TierLevel, TierScheme
from leadtier.models.segments import Segmenter

LEVELS = ["A", "B", "C"]


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    tier = np.where(x > 0.6, "A", np.where(x > -0.4, "B", "C"))
    X = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(n)],
            "signal": x + rng.normal(scale=0.3, size=n),
            "noise": rng.normal(size=n),
            "industry": pd.array(rng.choice(["retail", "software", None], size=n), dtype="str"),
        }
    )
    return X, tier.tolist()


def test_probabilities_follow_level_order_and_sum_to_one():
    X, y = _data()
    clf = TierClassifier(levels=LEVELS, n_estimators=50).fit(X, y)
    p = clf.predict_proba(X)
    assert p.shape == (len(X), 3)
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-9)
    # the A column is highest for the customers with the largest signal
    top = X["signal"].nlargest(20).index
    assert (p[top].argmax(axis=1) == 0).mean() > 0.8
    assert list(clf.classes_) == LEVELS


def test_fit_does_not_mutate_callers_frame():
    X, y = _data()
    before = X.copy()
    TierClassifier(levels=LEVELS, n_estimators=20).fit(X, y)
    LogisticBaseline(levels=LEVELS).fit(X, y)
    pd.testing.assert_frame_equal(X, before)


def test_unseen_category_and_missing_values_score():
    X, y = _data()
    clf = TierClassifier(levels=LEVELS, n_estimators=20).fit(X, y)
    new = X.head(3).copy()
    new["industry"] = ["aerospace", None, "retail"]
    new.loc[0, "signal"] = np.nan
    assert clf.predict_proba(new).shape == (3, 3)


def test_training_is_reproducible():
    X, y = _data()
    a = TierClassifier(levels=LEVELS, n_estimators=60, subsample=0.8, random_state=3).fit(X, y).predict_proba(X)
    b = TierClassifier(levels=LEVELS, n_estimators=60, subsample=0.8, random_state=3).fit(X, y).predict_proba(X)
    np.testing.assert_array_equal(a, b)


def test_fit_rejects_unknown_and_single_tier():
    X, y = _data()
    with pytest.raises(ValueError, match=r"tiers \['Z'\] that are not in levels"):
        TierClassifier(levels=LEVELS).fit(X, ["Z"] + y[1:])
    with pytest.raises(ValueError, match="single tier"):
        TierClassifier(levels=LEVELS).fit(X, ["A"] * len(X))
    with pytest.raises(TypeError, match="pandas DataFrame"):
        TierClassifier(levels=LEVELS).fit(X.to_numpy(), y)


def test_decision_rules():
    p = np.array([[0.4, 0.0, 0.6], [0.45, 0.1, 0.45], [0.34, 0.33, 0.33]])
    assert decide(p, "argmax").tolist() == [2, 0, 0]
    # |i-j| cost: the median of the ordered distribution
    assert decide(p, "min_expected_cost").tolist() == [2, 1, 1]
    with pytest.raises(ValueError, match="cost_matrix must be 3x3"):
        decide(p, "min_expected_cost", np.ones((2, 2)))


def test_baselines_return_level_ordered_probabilities():
    X, y = _data()
    maj = MajorityBaseline(levels=LEVELS).fit(X, y)
    shares = pd.Series(y).value_counts(normalize=True).reindex(LEVELS).to_numpy()
    np.testing.assert_allclose(maj.predict_proba(X.head(2))[0], shares)
    lr = LogisticBaseline(levels=LEVELS).fit(X, y)
    m = tier_metrics(y, lr.predict_proba(X), LEVELS)
    assert m["macro_f1"] > 0.6


def test_metrics_known_values():
    y = ["A", "B", "C", "C"]
    perfect = np.eye(3)[[0, 1, 2, 2]]
    m = tier_metrics(y, perfect, LEVELS)
    assert m["macro_f1"] == 1 and m["qwk"] == 1 and m["ece"] == pytest.approx(0, abs=1e-9)
    reversed_ = np.eye(3)[[2, 1, 0, 0]]
    assert tier_metrics(y, reversed_, LEVELS)["qwk"] < 0
    cm = confusion(y, ["A", "C", "C", "C"], LEVELS)
    assert cm.loc["B", "C"] == 1 and cm.to_numpy().sum() == 4
    assert compare(
        {"macro_f1": 0.7, "log_loss": 0.9}, {"macro_f1": 0.6, "log_loss": 0.8}, ["macro_f1", "log_loss"]
    ) == {"macro_f1": True, "log_loss": False}
    with pytest.raises(ValueError, match=r"true tiers \['Q'\]"):
        tier_metrics(["Q"], np.ones((1, 3)) / 3, LEVELS)


def test_paired_bootstrap_gives_the_gain_over_each_baseline_with_an_interval():
    rng = np.random.default_rng(0)
    y = rng.choice(LEVELS, 600)
    truth = np.eye(3)[[LEVELS.index(v) for v in y]]
    sharp = 0.8 * truth + 0.2 / 3  # right on every row, confident
    noisy = rng.dirichlet(np.ones(3), len(y))  # guesses
    preds = {
        "model": (sharp, y),
        "guess": (noisy, list(np.asarray(LEVELS)[noisy.argmax(1)])),
        "same": (sharp.copy(), list(y)),
    }
    keys = ["macro_f1", "qwk", "log_loss", "ece"]
    out = paired_bootstrap(y, preds, "model", LEVELS, keys, n_resamples=50, seed=3)
    assert set(out) == {"guess", "same"} and set(out["guess"]) == set(keys)
    point = {k: tier_metrics(y, proba, LEVELS, y_pred=pred) for k, (proba, pred) in preds.items()}
    for m in keys:
        g = out["guess"][m]
        sign = 1 if m in ("macro_f1", "qwk") else -1  # log-loss and ECE: lower is better
        assert g["gain"] == pytest.approx(sign * (point["model"][m] - point["guess"][m]))
        assert g["low"] <= g["gain"] <= g["high"]
        assert out["same"][m] == {"gain": 0.0, "low": 0.0, "high": 0.0}  # paired: the same rows every draw
    # clearly better on the measures of fit; log-loss gain is positive although the model's is higher than 0
    assert out["guess"]["macro_f1"]["low"] > 0.5 and out["guess"]["log_loss"]["low"] > 0
    assert paired_bootstrap(y, preds, "model", LEVELS, keys, n_resamples=50, seed=3) == out  # seeded
    assert paired_bootstrap(y, preds, "model", LEVELS, keys, n_resamples=50, seed=4) != out
    with pytest.raises(ValueError, match=r"reference 'champ' is not among the predictions"):
        paired_bootstrap(y, preds, "champ", LEVELS, keys)
    with pytest.raises(ValueError, match=r"predicted tiers of 'guess' \['Z'\]"):
        paired_bootstrap(y, {**preds, "guess": (noisy, ["Z"] * len(y))}, "model", LEVELS, keys)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_bootstrap_draws_score_as_scikit_learn_does(k):
    """The bootstrap scores a draw from counts; every metric must equal scikit-learn's on the drawn rows."""
    rng = np.random.default_rng(k)
    for trial in range(12):
        n = int(rng.integers(30, 300))
        y = rng.integers(0, k, n)
        proba = rng.dirichlet(np.ones(k), n)
        tied = trial % 3 == 2  # scores shared by many rows: AUC and PR-AUC must group them as sklearn does
        if tied:
            proba = np.round(proba, 1) + 1e-9
            proba /= proba.sum(axis=1, keepdims=True)
        pred = proba.argmax(axis=1) if trial % 2 else rng.integers(0, k, n)
        rows = rng.integers(0, n, n)
        fast = _Resampler(y, pred, proba).scores(np.bincount(rows, minlength=n).astype(float))
        slow = _scores(y[rows], pred[rows], proba[rows])
        assert set(fast) == set(slow) - {"accuracy"}
        for m in fast:
            if not (tied and m == "lift_top_decile"):  # ties: proportional share, not row order
                assert fast[m] == pytest.approx(slow[m], rel=1e-9, abs=1e-12), (m, trial)


def test_bootstrap_skips_draws_that_leave_a_metric_undefined():
    # 12 rows, one of them 'no': many draws hold no 'no' at all, so AUC is undefined there
    y = ["yes"] * 11 + ["no"]
    p = np.linspace(0.95, 0.05, 12)
    proba = np.c_[p, 1 - p]
    preds = {"model": (proba, ["yes"] * 12), "majority": (np.tile([11 / 12, 1 / 12], (12, 1)), ["yes"] * 12)}
    out = paired_bootstrap(y, preds, "model", ["yes", "no"], ["macro_f1", "qwk", "roc_auc"], n_resamples=200)
    for g in out["majority"].values():
        assert np.isfinite([g["gain"], g["low"], g["high"]]).all() and g["low"] <= g["high"]
    # both models say 'yes' to everyone: QWK is 0 on every draw that has a 'no' and undefined on the rest
    assert out["majority"]["qwk"] == {"gain": 0.0, "low": 0.0, "high": 0.0}


def test_two_class_metrics_include_auc_and_lift():
    y = ["yes", "no"] * 50
    p1 = np.array([0.9 if v == "yes" else 0.2 for v in y])
    m = tier_metrics(y, np.c_[p1, 1 - p1], ["yes", "no"])
    assert m["roc_auc"] == 1 and m["lift_top_decile"] == pytest.approx(2.0)


def test_scheme_score_runs_from_best_to_worst():
    s = TierScheme(title_en="t", title_zh="t", levels=[TierLevel(code=c, en=c, zh=c) for c in "ABC"])
    np.testing.assert_allclose(s.score(np.eye(3)), [100, 50, 0])
    with pytest.raises(ValueError, match="distinct"):
        TierScheme(title_en="t", title_zh="t", levels=[TierLevel(code="A", en="", zh="")] * 2)


def test_segmenter_is_seeded_names_segments_and_keeps_names_on_retrain():
    rng = np.random.default_rng(1)
    n = 900
    grp = rng.integers(0, 3, n)
    X = pd.DataFrame(
        {
            "rfm_recency_days": np.choose(grp, [5.0, 200.0, 400.0]) * rng.uniform(0.9, 1.1, n),
            "rfm_frequency": np.choose(grp, [30.0, 8.0, 2.0]) * rng.uniform(0.9, 1.1, n),
            "rfm_monetary": np.choose(grp, [5000.0, 500.0, 50.0]) * rng.uniform(0.9, 1.1, n),
        }
    )
    a = Segmenter(k_range=(2, 5), random_state=0).fit(X)
    b = Segmenter(k_range=(2, 5), random_state=0).fit(X)
    assert a.n_clusters_ == 3
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    names = {a.name(i) for i in range(3)}
    assert any("recent" in n for n in names) and len(names) == 3
    assert all(a.name(i, "zh") for i in range(3))
    # retrain on shuffled rows: matched to the previous clusters, names stay with the same customers
    shuffled = X.sample(frac=1, random_state=5).reset_index(drop=True)
    c = Segmenter(k_range=(2, 5), random_state=7).fit(shuffled, previous=a)
    same = X.head(50)
    assert [c.name(s) for s in c.predict(same)] == [a.name(s) for s in a.predict(same)]


def test_segments_of_data_without_events_are_named_and_profiled_by_the_columns_that_part_them():
    from leadtier.pipelines.report import profile_columns

    rng = np.random.default_rng(2)
    n = 900
    grp = rng.integers(0, 3, n)
    X = pd.DataFrame(
        {
            "cust_tenure_days": rng.uniform(150, 170, n),  # a known word, but the same in every group
            "cust_age": np.choose(grp, [25.0, 45.0, 65.0]) * rng.uniform(0.95, 1.05, n),
            "cust_balance": np.choose(grp, [100.0, 3000.0, 800.0]) * rng.uniform(0.9, 1.1, n),
        }
    )
    seg = Segmenter(k=3, random_state=0).fit(X)
    names = [seg.name(i) for i in range(3)]
    assert len(set(names)) == 3 and not any("(" in n or n == "typical" for n in names), names
    young = int(pd.Series(seg.predict(X)).groupby(grp).agg(lambda s: s.mode()[0])[0])
    assert seg.name(young) == "low age, low balance" and seg.name(young, "zh") == "age低、balance低"
    assert len({seg.name(i, "zh") for i in range(3)}) == 3
    assert profile_columns(seg.profile_)[:1] == ["cust_tenure_days"]  # the known feature, then what differs
    assert set(profile_columns(seg.profile_)[1:]) == {"cust_age", "cust_balance"}


def test_segments_described_by_the_same_words_in_another_order_read_alike_and_are_numbered():
    columns = ["ix_count_30d", "ix_recency_days", "rfm_monetary"]
    at = [[0.4, -0.27, 0.0], [0.25, -0.3, 0.03], [-0.33, 0.33, 0.0]]  # two engaged and in touch, in two orders
    names = Segmenter(k=3)._names(pd.DataFrame(at, columns=columns))
    assert names[0]["en"] == "highly engaged, recently in touch" and names[1]["en"] == names[0]["en"] + " (2)"
    assert names[1]["zh"] == "互动活跃、近期有互动 (2)" and names[2]["en"] == "quiet, gone silent"


def test_segments_alike_in_their_three_main_words_are_told_apart_by_the_next_column_that_parts_them():
    columns = ["rfm_frequency", "rfm_monetary", "rfm_recency_days", "cust_tenure_days", "ix_count_30d"]
    at = [
        [0.45, 0.42, -0.36, 0.27, 0.03],  # frequent, high spend, recent, and long-standing
        [0.39, 0.45, -0.33, -0.24, 0.0],  # the same three, and new
        [0.36, 0.39, -0.3, 0.03, 0.0],  # the same three, nothing else: keeps its three words
        [-0.3, -0.3, 0.3, 0.0, -0.15],
    ]
    names = Segmenter(k=4)._names(pd.DataFrame(at, columns=columns))
    assert names[0]["en"] == "frequent, high spend, recent buyers, long-standing", names
    assert names[1]["en"] == "frequent, high spend, recent buyers, new" and names[1]["zh"].endswith("新客户")
    assert names[2]["en"] == "frequent, high spend, recent buyers"
    assert len({n["en"] for n in names.values()}) == 4 and not any("(" in n["en"] for n in names.values())


def test_deals_alike_in_engagement_are_told_apart_by_which_interactions_they_had_of_late():
    """A B2B log has two worded columns (30-day count, days since the last touch): without more words, three
    segments would all be 'highly engaged, recently in touch' and numbered (2), (3)."""
    columns = ["ix_count_30d", "ix_recency_days", "ix_meeting_90d", "ix_tender_document_90d", "ix_count_trend_30d"]
    at = [
        [0.4, -0.4, 0.35, -0.1, 0.3],  # meetings
        [0.4, -0.4, -0.1, 0.3, 0.3],  # tender documents
        [0.4, -0.4, 0.0, 0.0, 0.3],  # neither: keeps the two words
        [-0.4, 0.4, -0.3, -0.3, 0.0],
    ]
    names = Segmenter(k=4)._names(pd.DataFrame(at, columns=columns))
    assert names[0]["en"] == "highly engaged, recently in touch, more meetings (90 d)", names
    assert names[1]["en"] == "highly engaged, recently in touch, more tender documents (90 d)"
    assert names[1]["zh"] == "互动活跃、近期有互动、近 90 天tender document多"
    assert names[2]["en"] == "highly engaged, recently in touch"
    assert not any("(2)" in n["en"] for n in names.values())
    words = {"tender_document": {"en": "tender document", "zh": "招标文件"}}  # features.type_words
    assert (
        Segmenter(k=4, type_words=words)
        ._names(pd.DataFrame(at, columns=columns))[1]["zh"]
        .endswith("近 90 天招标文件多")
    )


def test_a_segment_mostly_of_customers_who_never_bought_is_named_and_profiled_so():
    from leadtier.models.segments import segment_medians

    rng = np.random.default_rng(0)
    n = 300  # a third bought often and recently, a third long ago, a third never (no recency, no revenue)
    grp = np.repeat([0, 1, 2], n // 3)
    recency = np.where(grp == 0, rng.uniform(5, 30, n), rng.uniform(600, 900, n))
    recency[(grp == 2) & (np.arange(n) % 50 != 0)] = np.nan  # two buyers among the never-buyers
    X = pd.DataFrame(
        {
            "rfm_recency_days": recency,
            "rfm_frequency": np.choose(grp, [12.0, 2.0, 0.0]) + rng.uniform(0, 1, n) * (grp < 2),
            "rfm_monetary": np.choose(grp, [900.0, 120.0, 0.0]) * rng.uniform(0.8, 1.2, n),
        }
    )
    seg = Segmenter(k=3, random_state=0).fit(X)
    by_group = pd.Series(seg.predict(X)).groupby(grp).agg(lambda s: s.mode()[0])
    never, lapsed = int(by_group[2]), int(by_group[1])
    assert seg.name(never).startswith("never bought") and seg.name(never, "zh").startswith("从未购买"), seg.names_
    assert "low spend" not in seg.name(never) and "infrequent" not in seg.name(never)  # implied by never bought
    assert "lapsed buyers" in seg.name(lapsed) and "never" not in seg.name(lapsed)
    # the median days of the never-buyers' segment are not the days of its two buyers
    assert np.isnan(seg.profile_.loc[never, "rfm_recency_days"])
    assert seg.profile_.loc[lapsed, "rfm_recency_days"] > 500 and seg.profile_.loc[never, "rfm_monetary"] == 0
    med = segment_medians(X, ["rfm_recency_days", "rfm_monetary"], grp)
    assert np.isnan(med.loc[2, "rfm_recency_days"]) and med.loc[0, "rfm_recency_days"] == np.median(recency[grp == 0])


def test_a_never_word_replaces_only_words_it_implies_when_it_is_itself_in_the_name():
    seg = Segmenter(k=2)
    columns = ["ix_count_30d", "rfm_recency_days", "rfm_frequency", "rfm_monetary"]
    # segment 0: mostly never-buyers, but its recency is near the middle (not among the words that part it)
    at = pd.DataFrame([[0.45, 0.03, -0.22, -0.21], [-0.45, -0.03, 0.22, 0.21]], columns=columns)
    never = pd.DataFrame({"rfm_recency_days": [0.8, 0.1]}, index=[0, 1])
    names = seg._names(at, never)
    assert names[0]["en"] == "highly engaged, infrequent, low spend"  # no 'never bought': nothing dropped
    at = pd.DataFrame([[0.45, 0.36, -0.22, -0.21], [-0.45, -0.36, 0.22, 0.21]], columns=columns)
    assert seg._names(at, never)[0]["en"] == "highly engaged, never bought"


def test_segments_are_named_by_where_their_median_customer_stands_not_by_a_mean_pulled_by_non_buyers():
    """A quarter of the customers never bought (spend 0): the mean of log spend sits far below the typical
    buyer, and every buyer segment looked 'high spend'. Named by rank, modest spenders are not."""
    from leadtier.models.segments import segment_positions

    rng = np.random.default_rng(3)
    n = 1200
    grp = np.repeat([0, 1, 2, 3], n // 4)  # never bought; modest; typical; big spenders
    spend = np.choose(grp, [0.0, 150.0, 400.0, 3000.0]) * rng.uniform(0.8, 1.2, n)
    X = pd.DataFrame({"rfm_monetary": spend, "rfm_frequency": np.choose(grp, [0.0, 2.0, 3.0, 9.0]) + 0.0})
    pos = segment_positions(X, ["rfm_monetary"], grp)["rfm_monetary"]
    assert pos[0] < -0.3 and abs(pos[2]) < 0.2 and pos[3] > 0.3  # the middle of the buyers is no extreme
    seg = Segmenter(k=4, random_state=0).fit(X)
    by_group = pd.Series(seg.predict(X)).groupby(grp).agg(lambda s: s.mode()[0])
    typical = seg.name(int(by_group[2]))
    assert "high spend" not in typical and "low spend" not in typical, seg.names_
    assert "high spend" in seg.name(int(by_group[3])) and "never bought" not in seg.name(int(by_group[3]))


def test_every_segment_has_a_name_even_a_cluster_k_means_left_empty():
    X = pd.DataFrame({"rfm_frequency": [1.0] * 6 + [9.0] * 6, "rfm_monetary": [10.0] * 6 + [900.0] * 6})
    with pytest.warns(Warning):  # two distinct points for three clusters
        seg = Segmenter(k=3, random_state=0).fit(X)
    assert set(seg.names_) == set(range(seg.n_clusters_)) and all(seg.name(i) for i in range(seg.n_clusters_))


def test_temperature_calibration_keeps_the_most_probable_tier():
    X, y = _data(900)
    cal = TierClassifier(levels=LEVELS, n_estimators=80, calibration="temperature", random_state=1).fit(X, y)
    # the same booster with and without the calibrator on top
    p_raw, p_cal = cal._corrected(cal.booster_, cal._input(X)), cal.predict_proba(X)
    np.testing.assert_array_equal(p_raw.argmax(axis=1), p_cal.argmax(axis=1))
    assert not np.allclose(p_raw, p_cal)
    np.testing.assert_allclose(p_cal.sum(axis=1), 1, atol=1e-9)
    with pytest.raises(ValueError, match="calibration must be one of"):
        TierClassifier(levels=LEVELS, calibration="platt").fit(X, y)


def test_shap_contributions_add_up_to_the_raw_score_and_give_reasons():
    from leadtier.models.explain import top_reasons

    X, y = _data(400)
    clf = TierClassifier(levels=LEVELS, n_estimators=30).fit(X, y)
    contrib = clf.contributions(X.head(5))
    raw = clf.booster_.predict(clf._input(X.head(5)), raw_score=True)
    np.testing.assert_allclose(contrib.sum(axis=2), raw, rtol=1e-6, atol=1e-6)
    tiers = clf.predict(X.head(5))
    tier_idx = np.array([LEVELS.index(t) for t in tiers])
    own = clf.contributions_for(X.head(5), tier_idx)
    np.testing.assert_allclose(own, contrib[np.arange(5), tier_idx], rtol=1e-9, atol=1e-12)
    words = top_reasons(own, X.head(5), list(clf.feature_names_in_))
    assert len(words) == 5 and any("signal" in w for w in words)
    first = words[0].split("; ")
    assert first[0].endswith(" (↑)") and all(p.endswith((" (↑)", " (↓)")) for p in first) and len(first) <= 6


def test_binary_contributions_are_mirrored():
    X, y = _data(400)
    y2 = ["yes" if t == "A" else "no" for t in y]
    clf = TierClassifier(levels=["yes", "no"], n_estimators=20).fit(X, y2)
    c = clf.contributions(X.head(3))
    assert c.shape == (3, 2, X.shape[1])  # features (incl. bias) minus the id column
    np.testing.assert_allclose(c[:, 0], -c[:, 1])


def test_self_training_adds_only_confident_unlabelled_rows():
    from leadtier.models.semi import self_train

    X, y = _data(600)
    lab, unlab = X.iloc[:300], X.iloc[300:]

    def make():
        return TierClassifier(levels=LEVELS, n_estimators=40)

    clf, added = self_train(make, lab, y[:300], unlab, threshold=0.9, max_rounds=2)
    assert added and 0 < added[0] <= 300 and sum(added) <= 300
    _, none_added = self_train(make, lab, y[:300], unlab, threshold=1.0, max_rounds=2)
    assert none_added == [] or none_added[0] < added[0]
    with pytest.raises(ValueError, match="threshold"):
        self_train(make, lab, y[:300], unlab, threshold=0)


def test_grade_bands_cover_every_score():
    from leadtier.models.scorer import grade

    bands = {"A": 75, "B": 50, "C": 25, "D": 0}
    assert grade(np.array([100, 75, 74.9, 50, 25, 24.99, 0]), bands).tolist() == ["A", "A", "B", "B", "C", "D", "D"]


def test_scorer_grades_each_customer_from_its_score():
    from leadtier.models.scorer import TierScorer, grade

    X, y = _data(300)
    clf = TierClassifier(levels=LEVELS, n_estimators=10).fit(X, y)
    seg = Segmenter(columns=["signal", "noise"], k=2).fit(X)
    scheme = TierScheme(title_en="t", title_zh="t", levels=[TierLevel(code=c, en=c, zh=c) for c in LEVELS])
    bands = {"A": 75, "B": 50, "C": 25, "D": 0}
    scorer = TierScorer(
        scheme=scheme, classifier=clf, segmenter=seg, feature_columns=["signal", "noise", "industry"], grade_bands=bands
    )
    out = scorer.score(X)
    assert out["grade"].tolist() == grade(out["score"].to_numpy(), bands).tolist()
    assert set(out["grade"]) <= set(bands) and out["grade"].notna().all()
    assert "grade" not in TierScorer(scheme, clf, seg, ["signal", "noise", "industry"]).score(X).columns


def test_reasons_about_an_entity_on_its_own_clock_say_which_day_they_describe():
    from leadtier.models.scorer import TierScorer

    X, y = _data(300)
    clf = TierClassifier(levels=LEVELS, n_estimators=10).fit(X, y)
    seg = Segmenter(columns=["signal", "noise"], k=2).fit(X)
    scheme = TierScheme(title_en="t", title_zh="t", levels=[TierLevel(code=c, en=c, zh=c) for c in LEVELS])
    cols = ["signal", "noise", "industry"]
    today = TierScorer(scheme=scheme, classifier=clf, segmenter=seg, feature_columns=cols)
    clocked = TierScorer(scheme, clf, seg, cols, metadata={"entity_days": 14})
    tiers = clf.predict(X.head(20))
    for lang, head in (("en", "at day 14 after its start: "), ("zh", "开始后第 14 天时：")):
        plain, dated = today.reasons(X.head(20), tiers, lang), clocked.reasons(X.head(20), tiers, lang)
        assert any(plain) and not any(r.startswith(head) for r in plain)
        assert dated == [head + r if r else "" for r in plain]


def test_scorer_scores_zero_rows_with_the_usual_columns():
    from leadtier.models.scorer import TierScorer

    X, y = _data(300)
    clf = TierClassifier(levels=LEVELS, n_estimators=10).fit(X, y)
    seg = Segmenter(columns=["signal", "noise"], k=2).fit(X)
    scheme = TierScheme(title_en="t", title_zh="t", levels=[TierLevel(code=c, en=c, zh=c) for c in LEVELS])
    scorer = TierScorer(scheme=scheme, classifier=clf, segmenter=seg, feature_columns=["signal", "noise", "industry"])
    full = scorer.score(X.head(4), reasons=True)
    empty = scorer.score(X.head(0), reasons=True)
    assert len(empty) == 0 and set(full.columns) - {"reasons"} <= set(empty.columns)
    np.testing.assert_array_equal(full["tier"], clf.predict(X.head(4)))


def test_scoring_threads_change_nothing_but_speed():
    X, y = _data(400)
    clf = TierClassifier(levels=LEVELS, n_estimators=20, calibration="temperature").fit(X, y)
    one = clf.predict_proba(X, n_jobs=1)
    np.testing.assert_allclose(clf.predict_proba(X, n_jobs=2), one, rtol=1e-12)
    assert all(e.n_jobs == clf.n_jobs for e in clf._lgbm_estimators())  # restored after the call


def test_cross_fitted_calibration_keeps_one_booster_on_every_row():
    X, y = _data(400)
    clf = TierClassifier(levels=LEVELS, n_estimators=20, calibration="temperature", calibration_cv=3).fit(X, y)
    plain = TierClassifier(levels=LEVELS, n_estimators=20, calibration="none").fit(X, y)  # same rows
    np.testing.assert_allclose(clf.booster_.predict_proba(clf._input(X)), plain.booster_.predict_proba(plain._input(X)))
    p = clf.predict_proba(X)
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-9)
    np.testing.assert_array_equal(p.argmax(axis=1), plain.predict_proba(X).argmax(axis=1))  # temperature keeps ranks


def _rare_world(n: int, seed: int):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"signal": rng.normal(size=n), "noise": rng.normal(size=n)})
    rare = rng.random(n) < 1 / (1 + np.exp(-(2 * X["signal"] - 3)))  # about 10 %
    return X, np.where(rare, "rare", "common")


@pytest.mark.parametrize("calibration", ["auto", "none", "temperature", "sigmoid"])
@pytest.mark.parametrize("class_weight", ["balanced", None])
def test_probabilities_follow_the_observed_rate_whatever_the_class_weights(calibration, class_weight):
    """On customers it never saw, the mean probability of a 10 % tier is about 10 %, also when balanced
    weights made the booster treat the tier as a 50 % one; the decision still finds the rare tier."""
    X, y = _rare_world(4000, 0)
    X_new, y_new = _rare_world(20000, 1)
    clf = TierClassifier(
        levels=["rare", "common"], n_estimators=60, class_weight=class_weight, calibration=calibration
    ).fit(X, y)
    rate = (y_new == "rare").mean()
    assert abs(clf.predict_proba(X_new)[:, 0].mean() - rate) < 0.02
    if class_weight == "balanced":
        weighted = clf.booster_.predict_proba(clf._input(X_new))[:, 0].mean()
        assert weighted > rate + 0.15  # the booster itself over-predicts the rare tier ...
        # ... and the decision keeps that reach: more rare tiers than the most probable tier would give
        most_probable = (clf.predict_proba(X_new).argmax(axis=1) == 0).mean()
        assert (clf.predict(X_new) == "rare").mean() > max(rate, most_probable + 0.05)


def test_auto_calibration_takes_the_lowest_held_out_log_loss_and_never_sharpens_an_overfit_booster():
    """An overfit booster is over-confident on the rows it was fitted on and under-confident nowhere:
    a calibrator fitted on the held-out rows flattens it, so new customers get a lower log-loss than
    without calibration (a calibrator fitted on the booster's own rows would sharpen it instead)."""
    from sklearn.metrics import log_loss

    X, y = _rare_world(3000, 2)
    X_new, y_new = _rare_world(20000, 3)
    kw = {"levels": ["rare", "common"], "n_estimators": 300, "num_leaves": 63, "min_child_samples": 2}
    kw |= {"learning_rate": 0.3, "random_state": 0}
    auto = TierClassifier(calibration="auto", **kw).fit(X, y)
    assert set(auto.calibration_log_loss_) == {"none", "temperature", "sigmoid", "isotonic"}
    assert auto.calibration_ == min(auto.calibration_log_loss_, key=auto.calibration_log_loss_.get)
    assert auto.calibration_ != "none"
    raw = auto._corrected(auto.booster_, auto._input(X_new))
    truth = (y_new == "common").astype(int)
    assert log_loss(truth, auto.predict_proba(X_new)[:, 1]) < log_loss(truth, raw[:, 1]) - 0.05


@pytest.mark.parametrize("calibration_cv", [0, 3])
def test_class_weights_do_not_leak_into_the_calibrator(calibration_cv):
    """Balanced weights help the booster find the rare tier; the calibrated probabilities must still
    match how often it really occurs (Platt scaling has an intercept to fix the shift)."""
    rng = np.random.default_rng(0)
    n = 3000
    X = pd.DataFrame({"signal": rng.normal(size=n), "noise": rng.normal(size=n)})
    rare = rng.random(n) < 1 / (1 + np.exp(-(2 * X["signal"] - 3)))  # about 10 %
    y = np.where(rare, "rare", "common")
    clf = TierClassifier(
        levels=["rare", "common"],
        n_estimators=30,
        class_weight="balanced",
        calibration="sigmoid",
        calibration_cv=calibration_cv,
    ).fit(X, y)
    uncalibrated = clf.booster_.predict_proba(clf._input(X))[:, 0].mean()
    assert uncalibrated > rare.mean() + 0.15  # the weighted booster over-predicts the rare tier ...
    assert abs(clf.predict_proba(X)[:, 0].mean() - rare.mean()) < 0.02  # ... the calibrated model does not


def test_a_tier_of_two_rows_neither_stops_calibration_nor_tuning():
    """Tuning folds and calibration rows of a rare tier can hold one row or none: the split is then
    not stratified, and a calibrator that would miss a tier is not fitted (probabilities stay whole)."""
    from leadtier.models.classifier import fit_calibrator
    from leadtier.models.tuning import tune

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300)})
    levels = ["A", "B", "C", "D", "E"]
    y = np.array(levels[:4], dtype=object)[rng.integers(0, 4, 300)]
    y[:2] = "E"
    clf = TierClassifier(levels=levels, n_estimators=10, calibration="auto").fit(X.iloc[1:], y[1:])
    np.testing.assert_allclose(clf.predict_proba(X).sum(axis=1), 1)
    study = tune(
        X,
        list(y),
        levels,
        {"n_estimators": {"type": "int", "low": 5, "high": 10}},
        n_trials=2,
        timeout_s=60,
        cv_folds=3,
        metric="macro_f1",
        seed=0,
        base_params={},
    )
    assert len(study.trials) == 2
    few = rng.dirichlet(np.ones(3), size=12)  # tiers of 8, 2 and 2 rows: below scikit-learn's default 5 folds
    calibrated = fit_calibrator(few, np.r_[np.zeros(8, int), [1, 1, 2, 2]], "sigmoid").predict_proba(few)
    np.testing.assert_allclose(calibrated.sum(axis=1), 1)


def test_an_entity_open_past_a_tiers_window_cannot_be_in_that_tier():
    from leadtier.models.scorer import given_open

    codes, latest = ["A", "B", "C", "E"], {"A": 30, "B": 90, "C": 180}
    proba = np.array([[0.4, 0.3, 0.2, 0.1]] * 4 + [[1.0, 0.0, 0.0, 0.0]])
    got = given_open(proba, codes, latest, [10, 31, 200, np.nan, 100])
    np.testing.assert_allclose(got[0], proba[0])  # young: every tier still reachable
    np.testing.assert_allclose(got[1], [0, 0.5, 1 / 3, 1 / 6])  # past A's 30 days: the rest scaled up
    np.testing.assert_allclose(got[2], [0, 0, 0, 1])  # past the last window: not won in time
    np.testing.assert_allclose(got[3], proba[3])  # days unknown: the model's own figures
    np.testing.assert_allclose(got[4], [0, 0, 0.5, 0.5])  # the model put all on a passed tier: equal shares
    with pytest.raises(ValueError, match="one row per entity"):
        given_open(proba, codes, latest, [10, 20])


def test_an_open_entity_is_weighed_by_how_many_of_each_tier_are_still_open_that_long():
    """Most losses come early: a deal still open after 60 days is less likely lost than a new one. With
    the prior as the model's probabilities, the conditioned ones match the tier shares of the entities
    still open that long (Bayes' rule), where ruling out passed tiers alone overstated the loss."""
    from leadtier.models.scorer import given_open, open_shares

    rng = np.random.default_rng(3)
    codes, latest = ["A", "B", "C", "E"], {"A": 30, "B": 90, "C": 180}
    n = 40_000
    tiers = rng.choice(codes, size=n, p=[0.2, 0.2, 0.1, 0.5])
    won = {"A": (0, 31), "B": (31, 91), "C": (91, 181)}
    closed = np.array([rng.integers(*won[t]) if t in won else rng.exponential(40) for t in tiers], dtype=float)
    closed[(tiers == "E") & (rng.random(n) < 0.2)] = np.nan  # lost after the data ends: never closed here
    still = open_shares(tiers, closed, codes, 180)
    assert len(still["A"]) == 182 and still["E"][0] == pytest.approx(1, abs=1e-3) and still["A"][31] < 1e-3
    prior = np.array([[np.mean(tiers == c) for c in codes]] * 3)
    conditioned = given_open(prior, codes, latest, [10, 60, 150], still)
    for row, d in zip(conditioned, (10, 60, 150), strict=True):
        alive = ~(closed < d)
        np.testing.assert_allclose(row, [np.mean(tiers[alive] == c) for c in codes], atol=0.01)
    passed_only = given_open(prior[:1], codes, latest, [60])[0]
    assert passed_only[3] > np.mean(tiers[~(closed < 60)] == "E") + 0.1  # without the shares: loss overstated
    np.testing.assert_allclose(given_open(prior, codes, latest, [np.nan] * 3, still), prior)  # days unknown
    # a small tier is drawn towards the share of all still open, not towards one half: while no entity has
    # closed, every tier weighs 1 and the model's probabilities stand
    few = open_shares(["A"] * 10 + ["E"] * 1000, [20.0] * 10 + [np.nan] * 1000, ["A", "E"], 30)
    assert few["A"][14] == few["E"][14] == 1.0 and 0 < few["A"][21] < 0.2 and few["E"][21] > 0.9999
    half = np.array([[0.5, 0.5]])
    np.testing.assert_allclose(given_open(half, ["A", "E"], {"A": 30}, [14], few), half)


def test_the_days_left_in_a_tier_count_to_the_last_day_a_win_still_counts_for_it():
    from leadtier.models.scorer import days_left

    got = days_left(["A", "B", "E", "A", "C"], {"A": 30, "B": 90, "C": 180}, [25, 25, 25, np.nan, "180"])
    np.testing.assert_allclose(got, [5, 65, np.nan, np.nan, 0])  # E has no last day; unknown days: unknown


def test_lead_level_segments_leave_out_weekday_codes():
    """Without an event log the numeric attributes part the segments, but not a weekday (a code, 7 is not
    'more' than 1: a segment named 'high start weekday' tells a marketer nothing)."""
    from leadtier.pipelines.train import segment_columns

    feats = pd.DataFrame(
        {"customer_id": ["a", "b"], "cust_age": [30.0, 50.0], "cust_start_weekday": [1, 7], "cust_region": ["x", "y"]}
    )
    assert segment_columns(feats) == ["cust_age"]
    visits = feats.assign(cust_visits_weekday=[3.0, 9.0])  # an attribute of the user's, named so: a number
    assert segment_columns(visits) == ["cust_age", "cust_visits_weekday"]
    only = feats.drop(columns="cust_age")  # nothing else to part segments by: the weekday rather than none
    assert segment_columns(only) == ["cust_start_weekday"]


def test_the_stage_now_baseline_learns_how_customers_move_on_from_their_stage_at_the_snapshot():
    levels = ["loyal", "repeat", "first_time", "prospect"]
    X = pd.DataFrame(
        {
            "rfm_frequency": [0, 0, 0, 1, 1, 1, 5, 5, 6, np.nan],
            "rfm_frequency_90d": [0, 0, 0, 1, 1, 0, 4, 1, 3, np.nan],
        }
    )
    y = [
        "prospect",
        "prospect",
        "first_time",
        "repeat",
        "first_time",
        "first_time",
        "loyal",
        "repeat",
        "loyal",
        "prospect",
    ]
    frame = X.copy()
    base = StageNowBaseline(levels, loyal=3, window="rfm_frequency_90d").fit(X, y)
    pd.testing.assert_frame_equal(X, frame)  # the caller's frame is left as it was
    assert base.stage_now(X).tolist() == [3, 3, 3, 2, 2, 2, 0, 1, 0, 3]  # missing counts: no purchase
    proba = base.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    # the four prospects: 3 stayed, 1 bought once; with Laplace smoothing (+1 each of 4 levels): 4/8, 2/8
    np.testing.assert_allclose(proba[0], [1 / 8, 1 / 8, 2 / 8, 4 / 8])
    assert base.predict(X).tolist() == ["prospect"] * 3 + ["first_time"] * 3 + ["loyal", "repeat", "loyal", "prospect"]
    without_window = StageNowBaseline(levels, loyal=3).fit(X, y)  # loyal ones then count as repeat buyers
    assert without_window.stage_now(X).tolist() == [3, 3, 3, 2, 2, 2, 1, 1, 1, 3]
    with pytest.raises(ValueError, match=r"needs columns \['rfm_frequency_90d'\]"):
        base.predict(X.drop(columns="rfm_frequency_90d"))
