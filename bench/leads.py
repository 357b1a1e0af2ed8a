"""Experiments on the X Education leads (``configs/x_education_*.yaml``): the leads-tier and Converted
figures under k-fold, and how they hold on the newest leads."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bench.harness import CONFIGS, Ctx, Stopwatch, benchmark, child_task, machine, metric, skipped
from bench.real_data import gain_ci, missing_inputs, real_config, train_context, trained_real


@child_task("leads_order")
def _task_leads_order(p: dict) -> dict:
    """A leads model (tiers or Converted) on the newest leads: the earliest share by `Lead Number` trains,
    the latest is held out.

    `Lead Number` is sequential, the file's only trace of time; here it orders the rows. The same tuning
    budget and model as ``train`` (baselines included), and for contrast a random stratified split of the
    same sizes (``splits``). The gap between the two is what k-fold cannot show: how far labelling
    practice drifted between older and newer leads. ``without`` (feature columns) adds the model tuned
    and fitted without them, as ``model_without``: whether a feature's k-fold gain holds on new leads.
    """
    import optuna
    from leadtier.models.metrics import tier_metrics
    from leadtier.pipelines import train
    from sklearn.model_selection import train_test_split

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = real_config(p)
    (spec,) = cfg.data.tables.customers.files
    path = cfg.data_path(spec.path)
    id_col = spec.columns["customer_id"]
    order = pd.read_csv(path, usecols=[id_col, p["order_by"]], dtype={id_col: str})[[id_col, p["order_by"]]]
    order.columns = ["customer_id", "order"]
    with Stopwatch() as sw:
        data = train.prepare(cfg).train
        data = data.merge(order, on="customer_id", how="left", validate="one_to_one")
        if data["order"].isna().any():
            raise ValueError(f"{path}: column {p['order_by']!r} is missing for {int(data['order'].isna().sum())} rows")
        data = data.sort_values("order", kind="stable").reset_index(drop=True)
        cut = int(round(len(data) * (1 - p["test_share"])))
        feature_cols = [c for c in data.columns if c not in {"customer_id", "snapshot", "tier", "order", "labelled_at"}]
        without = list(p.get("without", []))
        if isinstance(p.get("without"), str) or set(without) - set(feature_cols):
            raise ValueError(f"without must list feature columns of {p['config']}. Got {p.get('without')!r} instead")
        splits = {
            "ordered": lambda: (data.iloc[:cut], data.iloc[cut:]),
            "random": lambda: train_test_split(
                data, test_size=len(data) - cut, stratify=data["tier"], random_state=cfg.seed
            ),
        }

        def evaluate(tr: pd.DataFrame, te: pd.DataFrame, cols: list[str], keep: set[str]) -> dict:
            study = train.tune_with(cfg, tr[cols], tr["tier"].tolist())  # tuned and fitted as train.run does
            params = {**train.fixed_params(cfg), **study.best_params}
            models, _ = train.fit_models(cfg, tr.reset_index(drop=True), cols, params)
            return {
                k: tier_metrics(
                    te["tier"].tolist(), m.predict_proba(te[cols]), cfg.scheme.codes, y_pred=list(m.predict(te[cols]))
                )
                for k, m in models.items()
                if k in keep
            }

        chosen = p.get("splits", list(splits))
        if isinstance(chosen, str) or not set(chosen) <= set(splits):
            raise ValueError(f"splits must be a list drawn from {list(splits)}. Got {chosen!r} instead")
        out: dict[str, dict] = {}
        for split in chosen:
            tr, te = splits[split]()
            out[split] = evaluate(tr, te, feature_cols, {"model", "logreg"})
            if without:
                reduced = [c for c in feature_cols if c not in set(without)]
                out[split]["model_without"] = evaluate(tr, te, reduced, {"model"})["model"]
    return {**sw.figures(), "metrics": out, "n_train": cut, "n_test": len(data) - cut}


LEADS_TIER = ("leads_tier_macro_f1", "leads_tier_qwk", "leads_tier_logreg_macro_f1", "leads_tier_logreg_qwk")


@benchmark(*LEADS_TIER)
def bench_leads_tier(ctx: Ctx) -> Iterator[dict]:
    config = CONFIGS / "x_education_leads.yaml"
    missing = missing_inputs(config, ctx.shared)
    if missing:
        yield from skipped(LEADS_TIER, f"input files absent: {missing}")
        return
    res = trained_real(ctx, config)
    common = train_context(res)
    for name, key, m in zip(
        LEADS_TIER,
        ("model", "model", "logreg", "logreg"),
        ("macro_f1", "qwk", "macro_f1", "qwk"),
        strict=True,
    ):
        # the bar asks for a win over the same-run logistic regression: say how sure that win is
        extra = gain_ci(res, "logreg", m, "gain_over_logreg_95ci") if key == "model" else {}
        yield metric(name, res["metrics"][key][m], "", ctx, **common, **extra)


LEADS_NEWEST = ("leads_tier_newest_macro_f1", "leads_tier_newest_qwk")
# the newest 20 % of leads by `Lead Number` held out: train's own ordered_holdout protocol
NEWEST = (("train.order_by", "Lead Number"), ("train.test_size", 0.2), ("train.evaluation", "ordered_holdout"))


@benchmark(*LEADS_NEWEST)
def bench_leads_newest(ctx: Ctx) -> Iterator[dict]:
    config = CONFIGS / "x_education_leads.yaml"
    missing = missing_inputs(config, ctx.shared)
    if missing:
        yield from skipped(LEADS_NEWEST, f"input files absent: {missing}")
        return
    res = trained_real(ctx, config, NEWEST)
    common = train_context(res)
    for name, m in zip(LEADS_NEWEST, ("macro_f1", "qwk"), strict=True):
        extra = gain_ci(res, "logreg", m, "gain_over_logreg_95ci")
        yield metric(name, res["metrics"]["model"][m], "", ctx, **common, **extra, chosen_model=res.get("model"))


LEADS_NEWEST_SEEDS = ("leads_tier_newest_macro_f1_seed_mean", "leads_tier_newest_qwk_seed_mean")
# the config's seed and six others: seeds move tuning, model and calibration folds, not the split
OTHER_SEEDS = (1, 2, 3, 4, 5, 6)


@benchmark(*LEADS_NEWEST_SEEDS)
def bench_leads_newest_seeds(ctx: Ctx) -> Iterator[dict]:
    """No bar: how far the single-seed ``leads_tier_newest_*`` figures move with the seed alone (the
    evaluation rows stay the same), as the mean, range and per-seed values over seven seeds."""
    config = CONFIGS / "x_education_leads.yaml"
    missing = missing_inputs(config, ctx.shared)
    if missing:
        yield from skipped(LEADS_NEWEST_SEEDS, f"input files absent: {missing}")
        return
    seeds = (real_config({"config": str(config), "shared": str(ctx.shared)}).seed, *OTHER_SEEDS)
    runs = [trained_real(ctx, config, NEWEST if s == seeds[0] else (*NEWEST, ("seed", s))) for s in seeds]
    for name, m in zip(LEADS_NEWEST_SEEDS, ("macro_f1", "qwk"), strict=True):
        values = [r["metrics"]["model"][m] for r in runs]
        yield metric(
            name,
            float(np.mean(values)),
            "",
            ctx,
            rows=runs[0]["n_test"],
            n_train=runs[0]["n_train"],
            evaluation=runs[0]["evaluation"],
            seeds=list(seeds),
            per_seed=[round(v, 4) for v in values],
            min=round(min(values), 4),
            max=round(max(values), 4),
            chosen_models=[r.get("model") for r in runs],
            train_seconds=round(sum(r["seconds"] for r in runs), 1),
            peak_rss_gb=round(max(r["peak_rss_gb"] for r in runs), 3),
            cpu_seconds=round(sum(r["cpu_seconds"] for r in runs), 1),
            load_avg_1m=round(max(r["load_avg_1m"] for r in runs), 2),
        )


def _newest_leads(ctx: Ctx, config: Path, table: dict[str, tuple[str, str, str]], **params: Any) -> Iterator[dict]:
    """The figures of ``table`` (name: (split, model, metric)) from one ``leads_order`` child run."""
    missing = missing_inputs(config, ctx.shared)
    if missing:
        yield from skipped(list(table), f"input files absent: {missing}")
        return
    res = ctx.child(
        "leads_order", config=str(config), shared=str(ctx.shared), order_by="Lead Number", test_share=0.2, **params
    )
    for name, (split, key, m) in table.items():
        yield metric(
            name,
            res["metrics"][split][key][m],
            "",
            ctx,
            rows=res["n_test"],
            n_train=res["n_train"],
            evaluation="newest 20 % by Lead Number" if split == "ordered" else "random stratified 20 %",
            peak_rss_gb=round(res["peak_rss_gb"], 3),
            **machine(res),
        )


LEADS_CONVERTED_ORDER = {
    # name: (split, model, metric)
    "leads_converted_newest_auc": ("ordered", "model", "roc_auc"),
    "leads_converted_newest_auc_without_lead_number": ("ordered", "model_without", "roc_auc"),
    "leads_converted_newest_logreg_auc": ("ordered", "logreg", "roc_auc"),
}


@benchmark(*LEADS_CONVERTED_ORDER)
def bench_leads_converted_order(ctx: Ctx) -> Iterator[dict]:
    """No bar: whether `Lead Number`'s k-fold gain for `Converted` holds on the newest 20 % of leads."""
    yield from _newest_leads(
        ctx,
        CONFIGS / "x_education_converted.yaml",
        LEADS_CONVERTED_ORDER,
        splits=["ordered"],
        without=["cust_lead_number"],
    )


@benchmark("leads_converted_auc")
def bench_leads_converted(ctx: Ctx) -> Iterator[dict]:
    config = CONFIGS / "x_education_converted.yaml"
    missing = missing_inputs(config, ctx.shared)
    if missing:
        yield from skipped(["leads_converted_auc"], f"input files absent: {missing}")
        return
    res = trained_real(ctx, config)
    yield metric(
        "leads_converted_auc",
        res["metrics"]["model"]["roc_auc"],
        "",
        ctx,
        logreg_auc=round(res["metrics"]["logreg"]["roc_auc"], 4),
        **gain_ci(res, "logreg", "roc_auc", "gain_over_logreg_95ci"),
        **train_context(res),
    )


LEADS_REFIT = ("leads_tier_newest_refit_gain_macro_f1", "leads_tier_newest_refit_gain_qwk")


@child_task("leads_refit")
def _task_leads_refit(p: dict) -> dict:
    """What ``train.refit`` adds under drift. train's ``ordered_holdout`` rows (the newest 20 % of leads by
    `Lead Number` held out) are scored by the procedure fitted on the oldest 60 % (what a run evaluates when
    it holds out the next 20 %) and by the same procedure, same hyper-parameters (tuned on the 60 %),
    refitted on the oldest 80 % (what ``train.refit`` registers): the gain of the newer rows, with its
    paired 95 % interval."""
    import optuna
    from leadtier.models.metrics import paired_bootstrap, tier_metrics
    from leadtier.pipelines import train

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cfg = real_config(p)
    with Stopwatch() as sw:
        prep = train.prepare(cfg)
        cols = train.model_columns(cfg, prep)
        older, newest = prep.train, prep.test  # in time order
        fit_rows = older.iloc[: int(round(len(older) * 0.75))]
        study = train.tune_with(cfg, fit_rows[cols], fit_rows["tier"].tolist())
        params = {**train.fixed_params(cfg), **study.best_params}
        preds, metrics, chosen = {}, {}, {}
        choice = None  # made on the evaluated fit's rows, fitted again as it is (as train.refit does)
        for name, rows in (("evaluated", fit_rows), ("refitted", older)):
            models, choice = train.fit_models(cfg, rows.reset_index(drop=True), cols, params, chosen=choice)
            model = models["model"]
            preds[name] = (model.predict_proba(newest[cols]), list(model.predict(newest[cols])))
            proba, tiers = preds[name]
            metrics[name] = tier_metrics(newest["tier"].tolist(), proba, cfg.scheme.codes, y_pred=tiers)
            chosen[name] = choice.name
        gains = paired_bootstrap(
            newest["tier"].tolist(), preds, "refitted", cfg.scheme.codes, ["macro_f1", "qwk", "log_loss"],
            n_resamples=cfg.train.bootstrap_resamples, seed=cfg.seed,
        )  # fmt: skip
    return {
        **sw.figures(),
        "metrics": metrics,
        "gains": gains["evaluated"],
        "chosen": chosen,
        "rows": {"evaluated_fit": len(fit_rows), "refit": len(older), "newest": len(newest)},
    }


@benchmark(*LEADS_REFIT)
def bench_leads_refit(ctx: Ctx) -> Iterator[dict]:
    """No bar: the gain of ``train.refit`` on the newest leads, macro-F1 and QWK (log-loss beside)."""
    config = CONFIGS / "x_education_leads.yaml"
    missing = missing_inputs(config, ctx.shared)
    if missing:
        yield from skipped(LEADS_REFIT, f"input files absent: {missing}")
        return
    res = ctx.child("leads_refit", config=str(config), shared=str(ctx.shared), overrides=[list(o) for o in NEWEST])
    for name, m in zip(LEADS_REFIT, ("macro_f1", "qwk"), strict=True):
        g = res["gains"][m]
        yield metric(
            name,
            g["gain"],
            "",
            ctx,
            rows=res["rows"]["newest"],
            evaluated_fit_rows=res["rows"]["evaluated_fit"],
            refit_rows=res["rows"]["refit"],
            gain_95ci=[round(g[k], 4) for k in ("gain", "low", "high")],
            evaluated=round(res["metrics"]["evaluated"][m], 4),
            refitted=round(res["metrics"]["refitted"][m], 4),
            log_loss_gain_95ci=[round(res["gains"]["log_loss"][k], 4) for k in ("gain", "low", "high")],
            chosen_models=res["chosen"],
            **machine(res),
        )
