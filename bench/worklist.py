"""Does the worklist beat plain sorting? A backtest on real data, and the worklist's speed.

The backtest trains the tier model and its baselines on an earlier snapshot with the shipped training
code (:func:`leadtier.pipelines.train.prepare`, ``tune_with``, ``fit_models``), scores the customers of
a later snapshot, and asks how much of the wins and of the revenue the first 5, 10 and 20 % of four
orderings capture: the worklist's (expected value = probability of closing x value, ordered by
:func:`leadtier.models.worklist.plan`), the same probability alone (score-only), the logistic
regression's probability of closing, and the RFM scorecard (R + F + M quintile sum). Gains carry a 95 %
paired bootstrap interval over customers (:func:`leadtier.models.worklist.capture_gains`).

Online Retail (``configs/online_retail.yaml``'s backtest): a win is a purchase within 30 days of the
2011-03-01 snapshot (tier A), revenue the purchases in those days, value past revenue (what ``leadtier
worklist`` uses when no value column is configured). Leads (``configs/x_education_converted.yaml``): a
win is ``Converted`` on the newest 20 % of leads by ``Lead Number`` (disjoint from training); the
leads carry no deal value, so the worklist's value is 1 and its order is the score's.

``LEADTIER_BENCH_TRIALS`` lowers the tuning budget (default: the config's); the lines say what was used.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator

import numpy as np
import pandas as pd

from bench.harness import CONFIGS, DEMO_CONFIG, Ctx, Stopwatch, benchmark, child_task, machine, metric, skipped
from bench.real_data import missing_inputs, real_config

SHARES = (0.05, 0.10, 0.20)
BASELINES = ("score_only", "logreg", "rfm_scorecard")
HORIZON_DAYS = 30  # Online Retail: a purchase within 30 days of the snapshot is a win (tier A)
RESAMPLES = 1000
LEADS_NEWEST = [["train.order_by", "Lead Number"], ["train.test_size", 0.2], ["train.evaluation", "ordered_holdout"]]


def names(prefix: str, weights: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"worklist_{prefix}{w}_captured_top{round(s * 100)}pct" for w in weights for s in SHARES)


ONLINE_RETAIL = names("", ("wins", "revenue"))
LEADS = names("leads_", ("wins",))


def _fit(cfg, prep) -> tuple[dict, list[str], dict]:
    """The tier model and the baselines fitted on the training rows as ``leadtier train`` fits them."""
    import optuna
    from leadtier.models.frame import ID_COLUMN
    from leadtier.pipelines import train

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cols = train.model_columns(cfg, prep)
    rows = prep.train.reset_index(drop=True)
    groups = rows[ID_COLUMN].to_numpy() if rows["snapshot"].nunique() > 1 else None
    study = train.tune_with(cfg, rows[cols], rows["tier"].tolist(), groups=groups)
    models, choice = train.fit_models(cfg, rows, cols, {**train.fixed_params(cfg), **study.best_params})
    return models, cols, {"n_trials": len(study.trials), "chosen_model": choice.name}


def _p_close(cfg, model, X: pd.DataFrame) -> np.ndarray:
    """Probability of the close tiers (``worklist.close_tiers``, else the best tier), summed."""
    close = cfg.worklist.close_tiers or cfg.scheme.codes[:1]
    proba = model.predict_proba(X)
    return proba[:, [cfg.scheme.codes.index(t) for t in close]].sum(axis=1)


def list_order(test: pd.DataFrame, tiers, p_close: np.ndarray, value, start: dt.date) -> np.ndarray:
    """Each row's score in the worklist's order (higher = earlier slot): every tier given a service
    level, one owner, no capacity limit, so the plan's rank is the expected-value order."""
    from leadtier.models.worklist import plan

    frame = pd.DataFrame(
        {"customer_id": test["customer_id"].astype(str).to_numpy(), "tier": tiers, "p_close": p_close, "value": value}
    )
    planned = plan(frame, start, dict.fromkeys(pd.unique(frame["tier"]), 0))
    rank = planned.set_index("customer_id")["rank"]
    return -rank.reindex(frame["customer_id"]).to_numpy(dtype=float)


def revenue_after(cfg, ids: pd.Series, as_of: dt.date, days: int) -> np.ndarray:
    """Each customer's purchases (invoices with a positive total) in the ``days`` days after ``as_of``
    (day 0 to day ``days``, the days of a tier-A label)."""
    from leadtier.pipelines.features import connect, fetch_frame
    from leadtier.pipelines.sources import register_all

    end = as_of + dt.timedelta(days=days + 1)
    sql = (
        "SELECT CAST(customer_id AS VARCHAR) AS customer_id, sum(total) AS revenue FROM ("
        "SELECT customer_id, invoice_id, sum(amount) AS total FROM transactions "
        f"WHERE ts >= DATE '{as_of}' AND ts < DATE '{end}' GROUP BY 1, 2 HAVING sum(amount) > 0) GROUP BY 1"
    )
    con = connect(cfg)
    try:
        register_all(con, cfg, with_labels=False)
        rev = fetch_frame(con, sql).set_index("customer_id")["revenue"]
    finally:
        con.close()
    return rev.reindex(ids.astype(str)).fillna(0.0).to_numpy(dtype=float)


@child_task("worklist_backtest")
def _task_worklist_backtest(p: dict) -> dict:
    from leadtier.models.baselines import RfmScorecard
    from leadtier.models.worklist import capture_gains, fill_values, revenue_values
    from leadtier.pipelines import train

    cfg = real_config(p)
    with Stopwatch() as sw:
        prep = train.prepare(cfg)
        models, cols, fit_info = _fit(cfg, prep)
        test = prep.test.reset_index(drop=True)
        p_close = _p_close(cfg, models["model"], test[cols])
        if p.get("value_column"):  # as the worklist values them: an unknown value is the median of the others
            given = pd.to_numeric(test[p["value_column"]], errors="coerce")
            filled = revenue_values(given) if p["value_column"] == "rfm_monetary" else fill_values(given, given.isna())
            value = filled[0].to_numpy(dtype=float)
        else:
            value = np.ones(len(test))
        start = pd.to_datetime(test["snapshot"]).max().date()
        orders = {
            "worklist": list_order(test, models["model"].predict(test[cols]), p_close, value, start),
            "score_only": p_close,
            "logreg": _p_close(cfg, models["logreg"], test[cols]),
        }
        if "rfm_r_score" in test.columns:
            orders["rfm_scorecard"] = RfmScorecard().score(test)
        close = cfg.worklist.close_tiers or cfg.scheme.codes[:1]
        weights = {"wins": test["tier"].isin(close).to_numpy(dtype=float)}
        if p.get("revenue_days"):
            weights["revenue"] = revenue_after(cfg, test["customer_id"], start, p["revenue_days"])
        gains = capture_gains(orders, weights, SHARES, "worklist", n_resamples=p["resamples"], seed=cfg.seed)
    return {
        **sw.figures(),
        **fit_info,
        "gains": {k: {str(s): v for s, v in by_share.items()} for k, by_share in gains.items()},
        "rows": len(test),
        "n_train": len(prep.train),
        "totals": {k: float(v.sum()) for k, v in weights.items()},
        "snapshot": start.isoformat(),
    }


def _verdict(g: dict) -> str:
    if not np.isfinite(g["low"]):
        return "no interval"
    return "better" if g["low"] > 0 else "worse" if g["high"] < 0 else "within noise"


def capture_lines(ctx: Ctx, prefix: str, res: dict, context: dict) -> Iterator[dict]:
    """One line per weight and share: the worklist's captured share, the other orderings', and the
    worklist's gain over each with its 95 % interval and a verdict (better / worse / within noise)."""
    for weight, by_share in res["gains"].items():
        for share, cell in by_share.items():
            extra: dict = {f"{o}_captured": round(v, 4) for o, v in cell["captured"].items() if o != "worklist"}
            for o, g in cell["gains"].items():
                extra[f"gain_over_{o}_95ci"] = [round(g[k], 4) if np.isfinite(g[k]) else None for k in g]
                extra[f"vs_{o}"] = _verdict(g)
            missing = [o for o in BASELINES if o not in cell["gains"]]
            if missing:
                extra["not_compared"] = missing
            name = f"worklist_{prefix}{weight}_captured_top{round(float(share) * 100)}pct"
            yield metric(name, cell["captured"]["worklist"], "share", ctx, **extra, **context)


def _backtest(ctx: Ctx, config: str, wanted: tuple[str, ...], prefix: str, **params) -> Iterator[dict]:
    path = CONFIGS / config
    missing = missing_inputs(path, ctx.shared)
    if missing:
        yield from skipped(wanted, f"input files absent: {missing}")
        return
    overrides = list(params.pop("overrides", []))
    trials = os.environ.get("LEADTIER_BENCH_TRIALS")
    if trials:
        overrides.append(["train.tuning.n_trials", int(trials)])
    res = ctx.child(
        "worklist_backtest",
        config=str(path),
        shared=str(ctx.shared),
        overrides=overrides,
        resamples=RESAMPLES,
        **params,
    )
    context = {
        "rows": res["rows"],
        "n_train": res["n_train"],
        "totals": res["totals"],
        "snapshot": res["snapshot"],
        "n_trials": res["n_trials"],
        "chosen_model": res["chosen_model"],
        "resamples": RESAMPLES,
        "seconds": round(res["seconds"], 1),
        **machine(res),
    }
    for line in capture_lines(ctx, prefix, res, context):
        if trials:  # the rerun command keeps the lowered budget
            line["command"] = f"LEADTIER_BENCH_TRIALS={int(trials)} {line['command']}"
        yield line


@benchmark(*ONLINE_RETAIL)
def bench_worklist_online_retail(ctx: Ctx) -> Iterator[dict]:
    """Online Retail's backtest: wins and revenue in the 30 days after 2011-03-01."""
    yield from _backtest(
        ctx, "online_retail.yaml", ONLINE_RETAIL, "", value_column="rfm_monetary", revenue_days=HORIZON_DAYS
    )


@benchmark(*LEADS)
def bench_worklist_leads(ctx: Ctx) -> Iterator[dict]:
    """X Education: Converted on the newest 20 % of leads; no value, no RFM features."""
    yield from _backtest(ctx, "x_education_converted.yaml", LEADS, "leads_", overrides=LEADS_NEWEST)


def generated_predictions(n: int, codes: list[str], owners: int, start: dt.date, seed: int = 0):
    """``n`` customers with predictions as ``leadtier predict`` writes them (tier, proba_*, past revenue),
    an owner each (``owners`` of them) and, for a third, a last contact within 60 days before ``start``."""
    rng = np.random.default_rng(seed)
    ids = pd.Series(np.arange(n)).map("c{:08d}".format)
    proba = rng.dirichlet(np.ones(len(codes)), n)
    pred = pd.DataFrame({"customer_id": ids, "tier": np.asarray(codes, dtype=object)[proba.argmax(axis=1)]})
    for i, c in enumerate(codes):
        pred[f"proba_{c}"] = proba[:, i]
    pred["score"] = np.round(100 * proba[:, 0], 1)
    pred["past_revenue"] = rng.gamma(2.0, 500.0, n)
    pred["as_of"] = start
    attrs = pd.DataFrame({"customer_id": ids, "owner": rng.integers(0, owners, n).astype(str)})
    contacted = rng.random(n) < 1 / 3
    days = pd.to_timedelta(rng.integers(1, 61, int(contacted.sum())), unit="D")
    contacts = pd.DataFrame({"customer_id": ids[contacted].to_numpy(), "last_contact": pd.Timestamp(start) - days})
    return pred, attrs, contacts


@child_task("worklist_plan")
def _task_worklist_plan(p: dict) -> dict:
    from leadtier.pipelines.config import load_config
    from leadtier.pipelines.worklist import build

    cfg = load_config(DEMO_CONFIG)
    start = cfg.data.as_of
    pred, attrs, contacts = generated_predictions(p["n_customers"], cfg.scheme.codes, p["owners"], start)
    with Stopwatch() as sw:
        out = build(cfg, pred, attrs, contacts, start, "en")
    return {**sw.figures(), "listed": len(out), "status": out["status"].value_counts().to_dict()}


@benchmark("worklist_1m_seconds")
def bench_worklist_speed(ctx: Ctx) -> Iterator[dict]:
    """The worklist planned for ``--n-customers`` generated customers with predictions (demo config:
    A/B/C listed, 50 contacts per owner per week, 4 weeks, recent contacts deferred), without reasons."""
    owners = 50
    res = ctx.child("worklist_plan", n_customers=ctx.n_customers, owners=owners)
    yield metric(
        "worklist_1m_seconds",
        res["seconds"],
        "s",
        ctx,
        n_customers=ctx.n_customers,
        rows=res["listed"],
        owners=owners,
        status=res["status"],
        reasons=False,
        note="leadtier.pipelines.worklist.build (models.worklist.plan plus tier names and actions) on "
        "generated predictions; the CLI's plain-word reasons for listed rows need a trained model and the "
        "raw tables and are not in this figure",
        peak_rss_gb=round(res["peak_rss_gb"], 3),
        **machine(res),
    )
