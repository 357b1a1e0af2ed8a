"""What ``leadtier train`` writes to MLflow: its inputs, each tuning trial, the evaluation, the segments,
and the registered scorer with the champion gate's decision. Computation stays in ``train``."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

import mlflow
import numpy as np
import pandas as pd
import yaml
from leadtier.models.frame import ID_COLUMN, OPEN_DAYS
from leadtier.models.gate import GateDecision
from leadtier.models.metrics import confusion
from leadtier.models.scorer import TierScorer
from leadtier.models.segments import Segmenter
from leadtier.pipelines import plots, tracking
from leadtier.pipelines.config import Config

if TYPE_CHECKING:
    import optuna
    from leadtier.pipelines.train import Evaluation, Prepared
    from mlflow import MlflowClient

ENTITY_COUNTS = ("labelled", "censored", "unlabelled")


def refits(cfg: Config) -> bool:
    """Whether the registered model is fitted again on the evaluation rows too once they are scored
    (``train.refit``; not k-fold, which always does, nor a survival model, fitted on the training window)."""
    return cfg.train.refit and cfg.train.evaluation != "kfold" and cfg.train.model == "classifier"


def model_as_of(cfg: Config) -> dt.date:
    """The date of the newest data the registered model learnt from: the last training snapshot of a
    backtest (its evaluation snapshots are later) unless it is refitted on them, else ``data.as_of``."""
    if cfg.train.evaluation == "backtest":
        return max(cfg.snapshots.eval_as_of if refits(cfg) else cfg.snapshots.train_as_of)
    return cfg.data.as_of


def flat(prefix: str, d: dict) -> dict[str, object]:
    """Nested dict -> one level with dotted keys (``a.b.c``), as MLflow params want."""
    out: dict[str, object] = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        if isinstance(v, dict):
            out.update(flat(key, v))
        else:
            out[key] = v
    return out


def log_inputs(cfg: Config, prep: Prepared, feature_cols: list[str]) -> None:
    """Tags, parameters, the config, the input tables' statistics and validation, and the label counts."""
    train = prep.train
    rows = prep.test if prep.test is not None else train
    mlflow.set_tags(
        {
            "leadtier.stage": "train",
            "leadtier.config": cfg.name,
            "leadtier.scheme": cfg.labels.scheme,
            "leadtier.evaluation": cfg.train.evaluation,
        }
    )
    tuning = flat("", cfg.train.tuning.model_dump(exclude={"search_space"}))
    mlflow.log_params(
        {
            "as_of": model_as_of(cfg).isoformat(),
            "seed": cfg.seed,
            "scheme": cfg.labels.scheme,
            "label_source": cfg.labels.source,
            "evaluation": cfg.train.evaluation,
            "n_features": len(feature_cols),
            "n_customers": len(prep.features),
            "n_train": len(train),
            "n_eval": len(rows),
            "primary_metric": cfg.train.primary_metric,
            **{f"tuning.{k}": v for k, v in tuning.items()},
        }
    )
    mlflow.log_dict(yaml.safe_load(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)), "config.yaml")
    mlflow.log_dict({"protocol": prep.protocol, "tables": prep.stats}, "inputs/table_stats.json")
    mlflow.log_dict({"problems": prep.problems}, "inputs/validation.json")
    levels = cfg.scheme.codes
    counts = {
        "train": {t: int(n) for t, n in train["tier"].value_counts().reindex(levels, fill_value=0).items()},
        "eval": {t: int(n) for t, n in rows["tier"].value_counts().reindex(levels, fill_value=0).items()},
    }
    mlflow.log_dict(counts, "inputs/label_counts.json")


def trial_logger(cfg: Config, prefix: str):
    """An Optuna callback logging each trial as a nested MLflow run named ``<prefix>trial-NNN``."""

    def log_trial(study, trial) -> None:
        with mlflow.start_run(run_name=f"{prefix}trial-{trial.number:03d}", nested=True):
            mlflow.log_params(trial.params)
            mlflow.set_tags({"state": trial.state.name, "leadtier.study": prefix.rstrip("-") or "final"})
            if trial.value is not None:
                mlflow.log_metric(f"cv_{cfg.train.primary_metric}", trial.value)

    return log_trial


def log_study(cfg: Config, study: optuna.Study, outer_folds: list[dict]) -> None:
    """The registered model's tuned hyper-parameters, its best CV score, every trial, and the outer folds'
    studies (k-fold evaluation)."""
    mlflow.log_params({f"best.{k}": v for k, v in study.best_params.items()})
    mlflow.log_metric(f"cv_best_{cfg.train.primary_metric}", study.best_value)
    trials = study.trials_dataframe(attrs=("number", "value", "state", "params", "duration"))
    mlflow.log_table(trials.astype({c: str for c in trials.columns if trials[c].dtype == object}), "tuning/trials.json")
    if outer_folds:
        mlflow.log_table(pd.DataFrame(outer_folds), "tuning/outer_folds.json")


def log_evaluation(cfg: Config, prep: Prepared, ev: Evaluation) -> None:
    """Row counts, the model choice, metrics per model, confusion and reliability plots, the verdicts and
    gains, and the tier model's feature importance."""
    levels, chosen = cfg.scheme.codes, ev.chosen
    mlflow.set_tag("leadtier.model_kind", chosen.name)
    if chosen.decision_balance is not None:
        mlflow.set_tag("leadtier.decision_balance", f"{chosen.decision_balance:g}")
    mlflow.log_metrics({"eval_train_overlap": ev.overlap, "eval_rows": len(ev.rows), "train_rows": len(prep.train)})
    if "entities" in prep.protocol:  # labels on each entity's own clock
        mlflow.log_metrics({f"entities_{k}": prep.protocol["entities"][k] for k in ENTITY_COUNTS})
    mlflow.log_dict(
        {"registered": vars(chosen), "per_evaluation_fit": [vars(c) for c in ev.choices[:-1]]}, "model/choice.json"
    )
    if chosen.self_training:  # decided inside the training rows (train.keep_self_training); both logged
        mlflow.set_tag("leadtier.semi_supervised", chosen.self_training)
    mlflow.log_figure(plots.reliability(ev.y_true, ev.preds["model"][0], levels), "plots/reliability_model.png")
    for key, (_, pred) in ev.preds.items():
        mlflow.log_metrics({(f"test_{k}" if key == "model" else f"{key}_{k}"): v for k, v in ev.metrics[key].items()})
        cm = confusion(ev.y_true, pred, levels)
        mlflow.log_figure(plots.confusion(cm, f"{key}: confusion on evaluation rows"), f"plots/confusion_{key}.png")
        mlflow.log_text(cm.to_csv(), f"eval/confusion_{key}.csv")
    summary = {
        "protocol": prep.protocol,
        "metrics": ev.metrics,
        "model_beats": ev.beats,
        "model_gain_95ci": ev.gains,
        "bootstrap_resamples": cfg.train.bootstrap_resamples,
    }
    mlflow.log_dict(summary, "eval/summary.json")
    imp = ev.models["model"].feature_importances_
    mlflow.log_text(imp.to_csv(header=True), "model/feature_importance.csv")
    mlflow.log_figure(plots.importance(imp), "plots/feature_importance.png")


def log_segments(cfg: Config, seg: Segmenter, ami: float, ev: Evaluation) -> None:
    """K, the segments' agreement with the tiers (AMI and a cross-table), the K selection and the
    profile with its names in every language."""
    mlflow.log_metric("segments_k", seg.n_clusters_)
    mlflow.log_metric("segments_tier_ami", ami)
    names = pd.Series(seg.predict(ev.rows), name="segment_id").map(lambda i: seg.name(i))
    crosstab = pd.crosstab(names, ev.rows["tier"].to_numpy()).reindex(columns=cfg.scheme.codes, fill_value=0)
    mlflow.log_text(crosstab.to_csv(), "segments/tier_by_segment.csv")
    mlflow.log_text(pd.DataFrame(seg.k_scores_).to_csv(index=False), "segments/k_scores.csv")
    mlflow.log_figure(plots.k_selection(seg.k_scores_), "plots/segments_k_selection.png")
    profile = seg.profile_.copy()
    profile.insert(0, "name_en", [seg.name(i, "en") for i in profile.index])
    profile.insert(1, "name_zh", [seg.name(i, "zh") for i in profile.index])
    mlflow.log_text(profile.to_csv(), "segments/profile.csv")


NOT_FEATURES = (ID_COLUMN, "tier", "snapshot", "labelled_at", "started_on", "closed_after")  # train.ENTITY_CLOCK


def register_and_gate(
    client: MlflowClient, cfg: Config, scorer: TierScorer, train: pd.DataFrame, ev: Evaluation
) -> tuple[str, GateDecision]:
    """Log the scorer with the keys a later gate needs, register it last (a killed run registers
    nothing), then let the champion gate decide its alias (``train``: the rows the model that scored the
    evaluation rows was fitted on; the registered one's are ``ev.fitted``)."""
    # every feature column (the champion may read one this model leaves out), the entities' days open
    # unknown: scored as the metrics were, as of each entity's feature date
    X_eval = ev.rows.drop(columns=[c for c in NOT_FEATURES if c in ev.rows.columns])
    if OPEN_DAYS in X_eval.columns:
        X_eval = X_eval.assign(**{OPEN_DAYS: np.nan})
    tracking.log_train_keys(ev.fitted)  # what a later gate must not re-score this model on
    tracking.log_eval_predictions(ev.rows, *ev.preds["model"], cfg.scheme.codes)  # what a k-fold gate pairs with
    info = tracking.log_scorer(scorer, X_eval)
    version = tracking.register(info.model_uri, cfg.mlflow.model_name)
    decision = tracking.champion_gate(
        client,
        cfg,
        version,
        ev.metrics["model"],
        X_eval,
        ev.y_true,
        refit_on_eval=ev.refitted,
        eval_keys=ev.rows[[ID_COLUMN, "snapshot"]],
        new_scores=ev.preds["model"],
        new_train_keys=train[[ID_COLUMN, "snapshot"]],
    )
    mlflow.set_tags({"leadtier.model_version": version, "leadtier.alias": decision.alias})
    mlflow.log_text("\n".join(decision.reasons), "registry/gate.txt")
    return version, decision
