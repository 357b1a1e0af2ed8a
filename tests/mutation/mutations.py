"""The curated mutations of ``make mutation``: deliberate bugs in the rules that matter, each with the
tests that must catch it. ``old`` must occur exactly once in ``file`` (else the mutation is reported as no
longer applying: update it with the code). Keep each test selection small: the whole check must stay well
under 15 minutes on 2 cores. A new rule (an open issue's) gets a mutation here with the test that guards it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]
    why: str  # what a surviving mutation means


B = "tests/test_as_of_boundaries.py::"
F = "tests/test_features.py::"
L = "tests/test_labels_and_sources.py::"
G = "tests/test_gate.py::"
M = "tests/test_models.py::"
C = "tests/test_readme_claims.py::"

MUTATIONS: list[Mutation] = [
    # ---------------------------------------------------------------- as-of filters (features/sql, predict)
    Mutation(
        "customers-created-on-as-of-exist",
        "features/sql/customers.sql",
        "WHERE c.created_at IS NULL OR CAST(c.created_at AS DATE) < :as_of",
        "WHERE c.created_at IS NULL OR CAST(c.created_at AS DATE) <= :as_of",
        (B + "test_customers_created_on_the_as_of_date_do_not_exist_yet_even_at_midnight",),
        "a customer created on the as-of date gets features",
    ),
    Mutation(
        "rfm-sees-the-as-of-midnight",
        "features/sql/rfm.sql",
        "    FROM transactions\n    WHERE ts < :as_of\n),\ninvoices",
        "    FROM transactions\n    WHERE ts <= :as_of\n),\ninvoices",
        (B + "test_transactions_at_the_as_of_midnight_are_the_future", F + "test_events_after_as_of_change_no_feature"),
        "a transaction at the as-of midnight counts in RFM",
    ),
    Mutation(
        "rfm-breadth-sees-the-as-of-midnight",
        "features/sql/rfm.sql",
        "WHERE ts < :as_of AND amount > 0",
        "WHERE ts <= :as_of AND amount > 0",
        (B + "test_transactions_at_the_as_of_midnight_are_the_future",),
        "distinct products / channels count a transaction at the as-of midnight",
    ),
    Mutation(
        "interactions-see-the-as-of-midnight",
        "features/sql/interactions.sql",
        "    FROM interactions\n    WHERE ts < :as_of",
        "    FROM interactions\n    WHERE ts <= :as_of",
        (B + "test_interactions_at_the_as_of_midnight_are_the_future",),
        "an interaction at the as-of midnight counts",
    ),
    Mutation(
        "rfm-window-edge",
        "features/sql/rfm.sql",
        "count_if(amount > 0 AND age_days <= {{ w }}) AS rfm_frequency_{{ w }}d",
        "count_if(amount > 0 AND age_days < {{ w }}) AS rfm_frequency_{{ w }}d",
        (B + "test_transactions_at_the_as_of_midnight_are_the_future",),
        "a purchase exactly w days before the snapshot falls out of the w-day window",
    ),
    Mutation(
        "interactions-window-edge",
        "features/sql/interactions.sql",
        "count_if(age_days <= {{ w }} AND type_code = {{ loop.index }})",
        "count_if(age_days < {{ w }} AND type_code = {{ loop.index }})",
        (B + "test_interactions_at_the_as_of_midnight_are_the_future",),
        "an interaction exactly w days before the snapshot falls out of the w-day window",
    ),
    Mutation(
        "predict-accepts-created-on-as-of",
        "pipelines/predict.py",
        "CAST(created_at AS DATE) >= $as_of",
        "CAST(created_at AS DATE) > $as_of",
        (B + "test_predict_rejects_prospects_created_on_the_as_of_date_and_scores_the_rest",),
        "a prospect created on the as-of date is neither scored nor rejected",
    ),
    # ---------------------------------------------------------------- outcome labels: horizons and censoring
    Mutation(
        "label-misses-purchase-at-snapshot-midnight",
        "features/sql/labels_days_to_next_purchase.sql",
        "WHERE ts >= :as_of AND ts < :observed_until",
        "WHERE ts > :as_of AND ts < :observed_until",
        (B + "test_days_to_next_purchase_counts_from_the_snapshot_midnight_to_before_observed_until",),
        "a purchase at the snapshot's midnight is not day 0",
    ),
    Mutation(
        "label-sees-observed-until",
        "features/sql/labels_days_to_next_purchase.sql",
        "WHERE ts >= :as_of AND ts < :observed_until",
        "WHERE ts >= :as_of AND ts <= :observed_until",
        (B + "test_days_to_next_purchase_counts_from_the_snapshot_midnight_to_before_observed_until",),
        "outcome labels read a purchase at the first unobserved moment",
    ),
    Mutation(
        "censoring-labels-E-one-day-early",
        "features/sql/labels_days_to_next_purchase.sql",
        "WHEN date_diff('day', :as_of, :observed_until) > {{ horizon }} THEN",
        "WHEN date_diff('day', :as_of, :observed_until) >= {{ horizon }} THEN",
        (B + "test_days_to_next_purchase_horizon_and_its_last_observed_day",),
        "no purchase is labelled E before the horizon's last day is observed",
    ),
    Mutation(
        "revenue-horizon-one-moment-long",
        "features/sql/labels_revenue_next_days.sql",
        "ts < :as_of + INTERVAL {{ horizon }} DAY",
        "ts <= :as_of + INTERVAL {{ horizon }} DAY",
        (B + "test_revenue_horizon_is_the_days_from_the_snapshot_midnight_to_before_its_end",),
        "revenue counts a purchase at the midnight after the horizon",
    ),
    Mutation(
        "revenue-censoring-one-day-early",
        "features/sql/labels_revenue_next_days.sql",
        "WHEN date_diff('day', :as_of, :observed_until) < {{ horizon }} THEN NULL",
        "WHEN date_diff('day', :as_of, :observed_until) < {{ horizon }} - 1 THEN NULL",
        (B + "test_revenue_horizon_is_the_days_from_the_snapshot_midnight_to_before_its_end",),
        "value tiers from a horizon missing its last day",
    ),
    # ---------------------------------------------------------------- calibration rows
    Mutation(
        "calibrate-on-the-boosters-own-fit-rows",
        "models/classifier.py",
        "cal_proba = self._corrected(self.booster_, Xm.iloc[cal_rows])\n"
        "            cal_y = np.searchsorted(present, y_idx[cal_rows])",
        "cal_proba = self._corrected(self.booster_, Xm.iloc[fit_rows])\n"
        "            cal_y = np.searchsorted(present, y_idx[fit_rows])",
        (M + "test_auto_calibration_takes_the_lowest_held_out_log_loss_and_never_sharpens_an_overfit_booster",),
        "the calibrator learns from rows the booster was fitted on",
    ),
    # ---------------------------------------------------------------- the champion gate
    Mutation(
        "gate-tie-promotes",
        "models/gate.py",
        "    elif gain <= 0:\n"
        '        why = f"kept champion v{version}: new {primary} {n:.4f} does not beat {o:.4f}"\n'
        "    elif gain <= policy.min_gain:",
        "    elif gain < 0:\n"
        '        why = f"kept champion v{version}: new {primary} {n:.4f} does not beat {o:.4f}"\n'
        "    elif gain < policy.min_gain:",
        (G + "test_the_gate_asks_as_much_of_a_gain_as_the_config_says",),
        "a new model that only ties the champion is promoted",
    ),
    Mutation(
        "gate-compares-on-fewer-than-30-rows",
        "models/gate.py",
        "    if left < MIN_UNSEEN_ROWS:",
        "    if left < MIN_UNSEEN_ROWS - 1:",
        (C + "test_thirty_rows_left_are_compared_on_and_twenty_nine_fall_back_to_all_rows",),
        "the gate compares on 29 rows instead of falling back to all rows",
    ),
    Mutation(
        "gate-falls-back-at-30-rows",
        "models/gate.py",
        "    if left < MIN_UNSEEN_ROWS:",
        "    if left <= MIN_UNSEEN_ROWS:",
        (C + "test_thirty_rows_left_are_compared_on_and_twenty_nine_fall_back_to_all_rows",),
        "30 rows left are not compared on",
    ),
    Mutation(
        "unloadable-champion-crashes-the-gate",
        "pipelines/tracking.py",
        "    except ModelLoadError as exc:  # artifacts gone",
        "    except ChampionCannotCompete as exc:  # artifacts gone",
        (C + "test_a_champion_that_cannot_be_loaded_is_replaced_and_the_run_says_why",),
        "a champion that cannot be loaded stops training instead of being replaced",
    ),
    Mutation(
        "undefined-metric-on-rows-left-is-compared",
        "pipelines/tracking.py",
        "        if all(np.isfinite(m.get(primary, np.nan)) for m in (old, new)):\n"
        "            return Comparison(old, note, new, paired)",
        "        if True:\n            return Comparison(old, note, new, paired)",
        (C + "test_an_undefined_metric_on_the_rows_left_falls_back_to_all_rows_and_says_so",),
        "an undefined metric on the rows left does not fall back to all rows",
    ),
    # ---------------------------------------------------------------- drift and migration
    Mutation(
        "psi-sign",
        "models/drift.py",
        "np.sum((a - e) * np.log(a / e))",
        "np.sum((a - e) * np.log(e / a))",
        (C + "test_psi_is_the_population_stability_index_and_warns_only_above_the_threshold",),
        "PSI is computed wrongly",
    ),
    Mutation(
        "psi-warns-at-the-threshold",
        "models/drift.py",
        'out["warning"] = (out["psi"] > threshold) & (out["psi"] > out["psi_noise"])',
        'out["warning"] = (out["psi"] >= threshold) & (out["psi"] > out["psi_noise"])',
        (C + "test_psi_is_the_population_stability_index_and_warns_only_above_the_threshold",),
        "a PSI equal to predict.psi_warning warns",
    ),
    Mutation(
        "psi-noise-ignored",
        "models/drift.py",
        'out["warning"] = (out["psi"] > threshold) & (out["psi"] > out["psi_noise"])',
        'out["warning"] = out["psi"] > threshold',
        (C + "test_a_small_batch_warns_of_drift_only_beyond_what_sampling_alone_gives",),
        "a batch of a few rows raises drift alarms from sampling noise alone",
    ),
    Mutation(
        "migration-upgrade-is-a-downgrade",
        "models/drift.py",
        '[m["previous_tier"].isna(), m["tier"].isna(), cr < pr, cr > pr]',
        '[m["previous_tier"].isna(), m["tier"].isna(), cr > pr, cr < pr]',
        (C + "test_migration_names_each_change_and_the_score_trend_at_five_points",),
        "a move to a better tier is called a downgrade",
    ),
    Mutation(
        "migration-trend-edge",
        "models/drift.py",
        "[delta >= 5, delta <= -5, delta.notna()]",
        "[delta > 5, delta < -5, delta.notna()]",
        (C + "test_migration_names_each_change_and_the_score_trend_at_five_points",),
        "a score change of exactly 5 points is steady",
    ),
    # ---------------------------------------------------------------- exact money
    Mutation(
        "money-not-rounded-to-ten-thousandths",
        "features/sql/rfm.sql",
        "SELECT customer_id, invoice_id, round(amount * 10000) AS amount,",
        "SELECT customer_id, invoice_id, amount * 10000 AS amount,",
        (B + "test_money_is_added_exactly_in_ten_thousandths",),
        "money is added as plain doubles: an invoice that nets to 0 becomes a purchase",
    ),
    # ---------------------------------------------------------------- training snapshots and evaluation rows
    Mutation(
        "horizon-check-one-day-short",
        "pipelines/train.py",
        'need = oc.horizon_days + 1 if oc.kind == "days_to_next_purchase" else oc.horizon_days',
        'need = oc.horizon_days if oc.kind == "days_to_next_purchase" else oc.horizon_days',
        (L + "test_an_evaluation_snapshot_whose_horizon_the_data_does_not_cover_is_refused",),
        "a snapshot whose horizon's last day is not observed is accepted",
    ),
    Mutation(
        "evaluation-rows-may-be-training-rows",
        "pipelines/train.py",
        "    if shared:\n        raise RuntimeError(",
        "    if shared < 0:\n        raise RuntimeError(",
        (C + "test_evaluation_rows_that_were_training_rows_stop_the_run",),
        "evaluation rows that training also used go unnoticed",
    ),
    Mutation(
        "backtest-evaluates-customers-training-used",
        "pipelines/train.py",
        "    return test.loc[~seen].reset_index(drop=True)",
        "    return test.reset_index(drop=True)",
        (
            "tests/test_honest_numbers.py::"
            "test_a_backtest_with_labels_from_people_evaluates_only_customers_training_did_not_use",
        ),
        "a backtest with labels from people scores customers whose label trained the model",
    ),
    Mutation(
        "class-weight-prior-shift-kept",
        "models/classifier.py",
        "        shifted = proba * (self.prior_[columns] / self.weighted_prior_[columns])",
        "        shifted = proba * 1.0",
        ("tests/test_models.py::test_probabilities_follow_the_observed_rate_whatever_the_class_weights",),
        "balanced class weights leave the probabilities off the observed tier frequencies",
    ),
    Mutation(
        "tied-scores-ordered-by-row",
        "models/metrics.py",
        "    _, group = np.unique(-score, return_inverse=True)  # groups from the highest score down",
        "    group = np.argsort(np.argsort(-score, kind='stable'))  # rows ordered, ties by row",
        ("tests/test_honest_numbers.py::test_lift_of_a_constant_score_is_one_and_ties_share_the_top_decile",),
        "the top-decile lift depends on the order of tied rows",
    ),
    Mutation(
        "self-training-always-kept",
        "pipelines/train.py",
        "kept = bool(b > a if HIGHER_IS_BETTER[primary] else b < a)",
        "kept = bool(True or (b > a if HIGHER_IS_BETTER[primary] else b < a))",
        (
            "tests/test_self_training.py::test_self_training_that_learns_noise_is_discarded_and_the_supervised_model_registered",
        ),
        "self-training is kept although it is worse than supervised-only training",
    ),
    # ---------------------------------------------------------------- user-facing behaviour
    Mutation(
        "config-errors-on-one-line",
        "pipelines/config.py",
        '        lines.append(f"  {key}: {msg}")\n    return "\\n".join(lines)',
        '        lines.append(f"  {key}: {msg}")\n    return "; ".join(lines)',
        (C + "test_a_config_with_several_wrong_keys_lists_one_per_line",),
        "several wrong config keys are not listed one per line",
    ),
    Mutation(
        "outputs-written-in-place",
        "pipelines/outputs.py",
        "    tmp = stage(path, write)\n    try:\n        os.replace(tmp, path)",
        "    write(path)\n    return path\n    tmp = stage(path, write)\n    try:\n        os.replace(tmp, path)",
        (C + "test_a_failed_features_run_leaves_the_earlier_output_as_it_was",),
        "a features run that fails while writing destroys the earlier output",
    ),
]
