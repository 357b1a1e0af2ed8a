"""Deals on their own clock: the generated B2B demo (configs/demo_b2b.yaml: its training time and its
labelled, censored and unlabelled opportunities) and the Olist marketing funnel (configs/olist_funnel.yaml:
how well the tiers tell won leads from the others on the evaluation rows, and the tier metrics, each next
to the same run's baselines)."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd

from bench.harness import CONFIGS, Ctx, Stopwatch, benchmark, child_task, machine, metric, skipped
from bench.honesty import honest_figures
from bench.honesty import names as honesty_names
from bench.real_data import gain_ci, missing_inputs, real_config

B2B_CONFIG = CONFIGS / "demo_b2b.yaml"
COUNTS = ("labelled", "censored", "unlabelled")
TIER_METRICS = ("macro_f1", "qwk", "balanced_accuracy", "log_loss")
OLIST_TRIALS = 5  # tuning trials for the Olist figures (the config's own budget is 10)


def _run_facts(res) -> tuple[dict, int]:
    """The run's protocol and tuning trials, whether ``train.run`` returns them as fields or in ``extra``."""
    extra = getattr(res, "extra", None) or {}
    protocol = getattr(res, "protocol", None) or extra.get("protocol", {})
    return protocol, getattr(res, "n_trials", None) or extra.get("n_trials", 0)


@child_task("train_b2b")
def _task_train_b2b(p: dict) -> dict:
    from leadtier.pipelines import train
    from leadtier.pipelines.config import load_config
    from leadtier.pipelines.demo_data import write_demo

    cfg = load_config(B2B_CONFIG, data_root=p["data_root"])
    cfg.train.n_jobs = 1  # LightGBM: 1 thread, as the other benchmarks
    with Stopwatch() as data_sw:
        tables = write_demo(cfg)
    with Stopwatch() as sw:
        res = train.run(cfg)
    protocol, n_trials = _run_facts(res)
    return {
        **sw.figures(),
        "data_seconds": data_sw.seconds,
        "tables": tables,
        "entities": protocol.get("entities", {}),
        "n_train": res.n_train,
        "n_test": res.n_test,
        "n_trials": n_trials,
        "tuning": cfg.train.tuning.model_dump(exclude={"search_space"}),
        "macro_f1": res.metrics["model"]["macro_f1"],
        "metrics": res.metrics,
        "gains": res.gains,
        "evaluation": protocol["evaluation"],
        "rows": protocol.get("rows", {}),
        "model": protocol.get("model"),
        "primary_metric": cfg.train.primary_metric,
    }


NAMES_B2B = ("b2b_demo_train_seconds", *(f"b2b_demo_{c}" for c in COUNTS), *honesty_names("demo_b2b"))


@benchmark(*NAMES_B2B)
def bench_b2b_demo(ctx: Ctx) -> Iterator[dict]:
    key = "train_b2b"
    if key not in ctx.cache:
        ctx.cache[key] = ctx.child("train_b2b", data_root=str(ctx.workdir / "data_b2b"))
    res = ctx.cache[key]
    counts = {c: res["entities"].get(c) for c in COUNTS}
    common = {"n_customers": res["entities"].get("entities"), "rows": res["n_train"] + res["n_test"], **counts}
    yield metric(
        "b2b_demo_train_seconds",
        res["seconds"],
        "s",
        ctx,
        **common,
        n_train=res["n_train"],
        n_test=res["n_test"],
        n_trials=res["n_trials"],
        tuning=res["tuning"],
        macro_f1=round(res["macro_f1"], 4),
        data_seconds=round(res["data_seconds"], 2),
        tables=res["tables"],
        peak_rss_gb=round(res["peak_rss_gb"], 3),
        **machine(res),
    )
    for c in COUNTS:
        yield metric(f"b2b_demo_{c}", counts[c], "entities", ctx, **common)
    context = {"rows": res["n_test"], "n_train": res["n_train"], "evaluation": res["evaluation"]}
    yield from honest_figures("demo_b2b", res, ctx, context)


def won_auc(y_true: list[str], proba, classes: list[str], lost: str) -> float:
    """ROC AUC of P(won) = 1 - P(``lost``, the last level) against won (any other level) on these rows."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    won = np.array([t != lost for t in y_true])
    if won.all() or not won.any():
        return float("nan")
    return float(roc_auc_score(won, 1.0 - np.asarray(proba)[:, classes.index(lost)]))


@child_task("olist_won")
def _task_olist_won(p: dict) -> dict:
    from leadtier.pipelines import train

    cfg = real_config(p)
    seen: dict = {}
    tune_and_evaluate = train.tune_and_evaluate

    def keep(*args, **kwargs):  # the evaluation rows' probabilities, which the run does not return
        seen["study"], seen["ev"] = tune_and_evaluate(*args, **kwargs)
        return seen["study"], seen["ev"]

    train.tune_and_evaluate = keep
    try:
        with Stopwatch() as sw:
            res = train.run(cfg)
    finally:
        train.tune_and_evaluate = tune_and_evaluate
    ev, codes = seen["ev"], list(cfg.scheme.codes)
    protocol, n_trials = _run_facts(res)
    aucs = {}
    for key, (proba, _) in ev.preds.items():
        classes = [str(c) for c in getattr(ev.models.get(key), "classes_", codes)]
        aucs[key] = won_auc(ev.y_true, proba, classes if len(classes) == proba.shape[1] else codes, codes[-1])
    return {
        **sw.figures(),
        "won_auc": aucs,
        "won_rows": sum(t != codes[-1] for t in ev.y_true),
        "metrics": res.metrics,
        "gains": res.gains,
        "entities": protocol.get("entities", {}),
        "n_train": res.n_train,
        "n_test": res.n_test,
        "n_trials": n_trials,
        "levels": codes,
        "model": protocol.get("model"),
    }


NAMES_OLIST = ("olist_funnel_won_auc", *(f"olist_funnel_tier_{m}" for m in TIER_METRICS))


@benchmark(*NAMES_OLIST)
def bench_olist_won(ctx: Ctx) -> Iterator[dict]:
    config = CONFIGS / "olist_funnel.yaml"
    missing = missing_inputs(config, ctx.shared)
    if missing:
        yield from skipped(NAMES_OLIST, f"input files absent: {missing}")
        return
    overrides = [["train.tuning.n_trials", OLIST_TRIALS]]
    res = ctx.child("olist_won", config=str(config), shared=str(ctx.shared), overrides=overrides)
    entities = res["entities"]
    common = {
        "rows": res["n_test"],
        "n_train": res["n_train"],
        "n_trials": res["n_trials"],
        "chosen_model": res["model"],
        "levels": res["levels"],
        **{c: entities.get(c) for c in ("entities", *COUNTS)},
        "train_seconds": round(res["seconds"], 1),
        **machine(res),
    }
    baselines = {k: round(v, 4) for k, v in res["won_auc"].items() if k != "model"}
    yield metric(
        "olist_funnel_won_auc",
        res["won_auc"]["model"],
        "",
        ctx,
        won_rows=res["won_rows"],
        baselines=baselines,
        **common,
    )
    for m in TIER_METRICS:
        values = {k: round(v[m], 4) for k, v in res["metrics"].items() if k != "model" and m in v}
        gains = {
            f"gain_over_{b}_95ci": ci
            for b in values
            for ci in gain_ci(res, b, m, "ci").values()  # {} when the run computed none
        }
        yield metric(f"olist_funnel_tier_{m}", res["metrics"]["model"][m], "", ctx, baselines=values, **gains, **common)


@child_task("open_deals")
def _task_open_deals(p: dict) -> dict:
    """Train the B2B demo as of ``horizon + 30`` days before its end; score the deals open then whose whole
    horizon the data shows, with the scorer's open-deal weights and without them; compare with the tiers
    the deals went on to reach."""
    import copy
    import datetime as dt

    import numpy as np
    from leadtier.features.queries import entity_label_query
    from leadtier.pipelines import train
    from leadtier.pipelines.config import load_config
    from leadtier.pipelines.demo_data import write_demo
    from leadtier.pipelines.features import build, connect, entity_days, fetch_frame
    from leadtier.pipelines.predict import scorer_of
    from leadtier.pipelines.sources import register_all
    from leadtier.pipelines.tracking import load_model

    cfg = load_config(B2B_CONFIG, data_root=p["data_root"])
    cfg.train.n_jobs = 1
    write_demo(cfg)
    oc, codes, end = cfg.labels.outcome, list(cfg.scheme.codes), cfg.data.as_of
    cut = end - dt.timedelta(days=oc.horizon_days + 30)
    cfg.data.as_of = cut
    res = train.run(cfg)
    scorer = scorer_of(load_model(f"models:/{cfg.mlflow.model_name}/{res.model_version}"))
    feats = build(cfg, as_of=cut, with_labels=False).features
    con = connect(cfg)
    try:
        register_all(con, cfg, with_labels=False)
        sql = entity_label_query(end, codes, oc.thresholds_days, oc.horizon_days, oc.observed_from, entity_days(cfg))
        later = fetch_frame(con, sql)
    finally:
        con.close()
    started = pd.to_datetime(later["started_on"])
    closed = started + pd.to_timedelta(later[["days_to_win", "days_to_loss"]].min(axis=1), unit="D")
    alive = (started < pd.Timestamp(cut)) & ~(closed < pd.Timestamp(cut)) & later["tier"].notna()
    truth = later.loc[alive, ["customer_id", "tier"]]
    # open at least the days the features describe, and at most the horizon (after it only E is left, for
    # both variants alike)
    rows = feats.merge(truth, on="customer_id")
    rows = rows[rows["open_days"].between(entity_days(cfg), oc.horizon_days)].reset_index(drop=True)
    plain = copy.copy(scorer)
    plain.still_open = {}
    onehot = np.stack([(rows["tier"] == c).to_numpy(float) for c in codes], axis=1)
    out = {
        "rows": len(rows),
        "cut": cut.isoformat(),
        "observed": dict(zip(codes, onehot.mean(axis=0).round(4).tolist(), strict=True)),
    }
    for key, s in (("weighted", scorer), ("unweighted", plain)):
        proba = s.score(rows.drop(columns="tier"))[[f"proba_{c}" for c in codes]].to_numpy()
        picked = np.clip((proba * onehot).sum(axis=1), 1e-15, 1)
        out[key] = {
            "log_loss": float(-np.log(picked).mean()),
            "mean_proba": dict(zip(codes, proba.mean(axis=0).round(4).tolist(), strict=True)),
        }
    return out


NAMES_OPEN = ("b2b_demo_open_deals_log_loss",)


@benchmark(*NAMES_OPEN)
def bench_open_deals(ctx: Ctx) -> Iterator[dict]:
    """How well the tier probabilities of deals already open a while fit what became of them."""
    res = ctx.child("open_deals", data_root=str(ctx.workdir / "data_b2b_open"))
    yield metric(
        "b2b_demo_open_deals_log_loss",
        res["weighted"]["log_loss"],
        "",
        ctx,
        rows=res["rows"],
        trained_as_of=res["cut"],
        unweighted_log_loss=round(res["unweighted"]["log_loss"], 4),
        mean_proba=res["weighted"]["mean_proba"],
        unweighted_mean_proba=res["unweighted"]["mean_proba"],
        observed_share=res["observed"],
    )
