"""Benchmarks: ``python -m leadtier.pipelines.bench`` (``make bench``) prints one JSON object per line.

Every line has ``name``, ``value`` and ``unit`` plus context: ``n_customers``, ``rows``, ``bar`` (the
target, e.g. ``"<= 10"``), ``ok`` (the value against the bar, ``null`` without one) and ``command`` (how
to rerun just that figure). A benchmark that cannot run says so: ``{"name": ..., "skipped": "reason"}``;
one that fails: ``{"name": ..., "error": "..."}`` (and the exit status is 1). Logs go to stderr.

Each measurement runs in a fresh child process (``python -m leadtier.pipelines.bench --child TASK``, working
directory ``--workdir``) that reports its own wall time for the measured call only (not interpreter start
or imports) and its own peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``), so figures are not polluted by
earlier work. Generated data, MLflow stores and outputs live under ``--workdir`` (default: a new folder
under /tmp, removed afterwards unless ``--keep``), never in the repository.

Adding a benchmark: write a function ``ctx -> iterator of result lines`` (build them with ``metric``) and
decorate it with ``@benchmark("metric_a", "metric_b")``, the metric names it yields (``--only`` selects by
these names; bars go in ``BARS``). Work that needs a fresh process is a ``@child_task("name")`` function
``params -> dict``, run with ``ctx.child("name", **params)``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import math
import os
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from leadtier.features.queries import slug

log = logging.getLogger("leadtier.bench")

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
DEMO_CONFIG = CONFIGS / "demo.yaml"
DEFAULT_N = 1_000_000
TRAIN_N = 20_000  # the demo world the benchmark model is trained on (configs/demo.yaml's demo.n_customers)
# features_speedup_vs_pandas times both engines on at most this many customers (--pandas-max-customers).
# Plain pandas on the 1M world takes ~1.5 min and ~7 GB here, so the default is the whole world; lower it
# (e.g. 200000) on a small machine: both engines then run on the first N customers and the line says so.
PANDAS_MAX_N = DEFAULT_N
CHILD_TIMEOUT_S = 3600
GB = 1e9

# demo.yaml's customer attributes: the defaults of pandas_features
DEMO_CATEGORICAL = ("lead_source", "industry", "company_size", "region")
DEMO_NUMERIC = ("annual_revenue_musd",)


# =========================================================================== pandas reference features


def pandas_features(
    customers: pd.DataFrame,
    transactions: pd.DataFrame,
    interactions: pd.DataFrame,
    as_of: dt.date,
    windows: Sequence[int],
    types: Sequence[str],
    *,
    categorical: Sequence[str] = DEMO_CATEGORICAL,
    numeric: Sequence[str] = DEMO_NUMERIC,
) -> pd.DataFrame:
    """The feature table of ``features/sql/{customers,rfm,interactions}.sql``, written with plain pandas.

    A readable reference (and the baseline of ``features_speedup_vs_pandas``): the same columns, in the same
    order, with the same values as ``pipelines.features.build`` on canonical tables (customer ids unique).
    Day ages are whole calendar days between an event's date and ``as_of``; only events before ``as_of``
    count.
    """
    as_of_ts = pd.Timestamp(as_of)
    cust = customers[customers["customer_id"].notna()]
    ids = pd.Index(cust["customer_id"], name="customer_id")  # every customer, existing at as_of or not

    # ---- customers family: attributes and tenure, for customers created before as_of
    created = pd.to_datetime(cust["created_at"]).dt.normalize()
    alive = (created.isna() | (created < as_of_ts)).to_numpy()
    out = pd.DataFrame(
        {
            "customer_id": cust["customer_id"].to_numpy(),
            "cust_tenure_days": (as_of_ts - created).dt.days.to_numpy(),
        }
    )
    for col in categorical:
        text = cust[col].astype("str").str.strip()
        out[f"cust_{slug(col)}"] = text.where(text != "").to_numpy()
    for col in numeric:
        out[f"cust_{slug(col)}"] = pd.to_numeric(cust[col], errors="coerce").astype("float64").to_numpy()
    out = out[alive]

    # ---- rfm family: purchases are invoices with a positive total, returns are negative lines,
    # monetary is the net spend over every line (returns included)
    tx = transactions[(transactions["ts"] < as_of_ts) & transactions["customer_id"].notna()]
    tx = tx.assign(age_days=(as_of_ts - tx["ts"].dt.normalize()).dt.days)
    purchases = (
        tx.groupby(["customer_id", "invoice_id"], dropna=False, sort=False)
        .agg(age_days=("age_days", "max"), amount=("amount", "sum"))
        .reset_index()
    )
    purchases = purchases[purchases["amount"] > 0]
    by_customer = purchases.groupby("customer_id")
    rfm = pd.DataFrame(index=ids)
    rfm["rfm_recency_days"] = by_customer["age_days"].min()
    rfm["rfm_first_purchase_days"] = by_customer["age_days"].max()
    rfm["rfm_frequency"] = by_customer.size().reindex(ids, fill_value=0)
    rfm["rfm_lines"] = tx.groupby("customer_id").size().reindex(ids, fill_value=0)
    rfm["rfm_monetary"] = tx.groupby("customer_id")["amount"].sum().reindex(ids, fill_value=0.0)
    rfm["rfm_monetary_div_frequency"] = by_customer["amount"].sum() / rfm["rfm_frequency"]
    returns = tx[tx["amount"] < 0].groupby("customer_id")["amount"]
    rfm["rfm_return_lines"] = returns.size().reindex(ids, fill_value=0)
    rfm["rfm_return_amount"] = -returns.sum().reindex(ids, fill_value=0.0)

    # purchase rhythm: gaps between consecutive distinct purchase days
    days = (
        purchases[["customer_id", "age_days"]]
        .drop_duplicates()
        .sort_values(["customer_id", "age_days"], ascending=[True, False])
    )
    gaps = days.groupby("customer_id")["age_days"].shift(1) - days["age_days"]
    rhythm = gaps.groupby(days["customer_id"]).agg(["mean", "std"])
    rfm["rfm_gap_mean_days"] = rhythm["mean"]
    rfm["rfm_gap_std_days"] = rhythm["std"]

    bought_lines = tx[tx["amount"] > 0].groupby("customer_id")
    rfm["rfm_distinct_products"] = bought_lines["product_id"].nunique()
    rfm["rfm_distinct_channels"] = bought_lines["channel"].nunique()
    rfm[["rfm_distinct_products", "rfm_distinct_channels"]] = rfm[
        ["rfm_distinct_products", "rfm_distinct_channels"]
    ].fillna(0)

    def purchases_in(lo: int, hi: int):  # purchases with lo < age_days <= hi, grouped by customer
        p = purchases[(purchases["age_days"] > lo) & (purchases["age_days"] <= hi)]
        return p.groupby("customer_id")

    for w in windows:
        g = purchases_in(-1, w)
        rfm[f"rfm_frequency_{w}d"] = g.size().reindex(ids, fill_value=0)
        rfm[f"rfm_amount_{w}d"] = g["amount"].sum().reindex(ids, fill_value=0.0)
    frequency_30d = purchases_in(-1, 30).size().reindex(ids, fill_value=0)
    frequency_prev_30d = purchases_in(30, 60).size().reindex(ids, fill_value=0)
    rfm["rfm_frequency_trend_30d"] = frequency_30d - frequency_prev_30d

    # quintile scores among buyers (percent_rank, ties share the lowest rank); 0 without a purchase
    buyer = rfm["rfm_frequency"] > 0
    n_buyers = int(buyer.sum())
    for col, source, ascending in (
        ("rfm_r_score", "rfm_recency_days", False),
        ("rfm_f_score", "rfm_frequency", True),
        ("rfm_m_score", "rfm_monetary", True),
    ):
        rank = rfm.loc[buyer, source].rank(method="min", ascending=ascending)
        pct = (rank - 1) / (n_buyers - 1) if n_buyers > 1 else rank * 0.0
        rfm[col] = np.minimum(5.0, 1.0 + np.floor(5 * pct)).reindex(ids, fill_value=0.0)
    rfm["rfm_score"] = rfm["rfm_r_score"] + rfm["rfm_f_score"] + rfm["rfm_m_score"]
    r, f = rfm["rfm_r_score"], rfm["rfm_f_score"]
    rfm["rfm_segment"] = np.select(
        [
            rfm["rfm_frequency"] == 0,
            (r >= 4) & (f >= 4),
            (r >= 3) & (f >= 3),
            (r >= 4) & (f >= 2),
            (r == 5) & (f == 1),
            (r == 4) & (f == 1),
            r == 3,
            (r <= 2) & (f == 5),
            (r <= 2) & (f >= 3),
            r == 2,
        ],
        [
            "no_purchase",
            "champions",
            "loyal",
            "potential_loyalist",
            "new_customers",
            "promising",
            "about_to_sleep",
            "cannot_lose_them",
            "at_risk",
            "hibernating",
        ],
        default="lost",
    )

    # ---- interactions family: counts per window and type, recency, 30-day duration and trend
    ix = interactions[(interactions["ts"] < as_of_ts) & interactions["customer_id"].notna()]
    ix = ix.assign(age_days=(as_of_ts - ix["ts"].dt.normalize()).dt.days)
    by_customer = ix.groupby("customer_id")
    eng = pd.DataFrame(index=ids)
    eng["ix_recency_days"] = by_customer["age_days"].min()
    eng["ix_count"] = by_customer.size().reindex(ids, fill_value=0)
    for w in windows:
        recent = ix[ix["age_days"] <= w]
        eng[f"ix_count_{w}d"] = recent.groupby("customer_id").size().reindex(ids, fill_value=0)
        per_type = recent.groupby(["customer_id", "type"]).size().unstack(fill_value=0)
        for t in types:
            counts = per_type[t] if t in per_type.columns else pd.Series(dtype="int64")
            eng[f"ix_{t}_{w}d"] = counts.reindex(ids, fill_value=0)
    if types:  # how many of the configured types were seen in the longest window
        longest = windows[-1]
        eng[f"ix_distinct_types_{longest}d"] = sum((eng[f"ix_{t}_{longest}d"] > 0).astype("int64") for t in types)
    last_30 = ix[ix["age_days"] <= 30].groupby("customer_id")
    prev_30 = ix[(ix["age_days"] > 30) & (ix["age_days"] <= 60)].groupby("customer_id")
    eng["ix_duration_s_30d"] = last_30["duration_s"].sum().reindex(ids, fill_value=0.0)
    eng["ix_count_trend_30d"] = last_30.size().reindex(ids, fill_value=0) - prev_30.size().reindex(ids, fill_value=0)

    feats = out.join(rfm, on="customer_id").join(eng, on="customer_id")
    feats = feats.sort_values("customer_id", kind="stable").reset_index(drop=True)
    numbers = [c for c in feats.columns if c != "customer_id" and pd.api.types.is_numeric_dtype(feats[c])]
    feats[numbers] = feats[numbers].astype("float64")
    feats["rfm_segment"] = feats["rfm_segment"].astype("str")
    return feats


def frame_differences(left: pd.DataFrame, right: pd.DataFrame, rtol: float = 1e-9) -> list[str]:
    """Why two feature tables differ (empty: same columns in the same order and equal values).

    Numbers are compared with relative tolerance ``rtol`` (sums may add in another order), missing equals
    missing; everything else is compared as text.
    """
    if list(left.columns) != list(right.columns):
        return [
            f"columns differ: only left {sorted(set(left.columns) - set(right.columns))}, only right "
            f"{sorted(set(right.columns) - set(left.columns))}, or order"
        ]
    if len(left) != len(right):
        return [f"row counts differ: {len(left)} != {len(right)}"]
    diffs = []
    for col in left.columns:
        a, b = left[col], right[col]
        if pd.api.types.is_numeric_dtype(a) and pd.api.types.is_numeric_dtype(b):
            x, y = a.to_numpy(dtype="float64"), b.to_numpy(dtype="float64")
            same = np.isclose(x, y, rtol=rtol, atol=0.0, equal_nan=True)
        else:
            x, y = a.astype("object").to_numpy(), b.astype("object").to_numpy()
            same = (pd.isna(x) & pd.isna(y)) | (x == y)
        if not same.all():
            i = int(np.flatnonzero(~same)[0])
            diffs.append(f"{col}: {int((~same).sum())} row(s) differ, e.g. row {i}: {x[i]!r} != {y[i]!r}")
    return diffs


# =========================================================================== child processes


CHILD_TASKS: dict[str, Callable[[dict], dict]] = {}


def child_task(name: str):
    def register(fn: Callable[[dict], dict]) -> Callable[[dict], dict]:
        CHILD_TASKS[name] = fn
        return fn

    return register


class Stopwatch:
    """Wall seconds and CPU seconds (user + system, all threads of this process) of a ``with`` block.

    On a busy machine wall time grows with the load; CPU time much less: both are reported."""

    def __enter__(self) -> Stopwatch:
        self._wall, self._cpu = time.perf_counter(), _cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self._wall
        self.cpu_seconds = _cpu_seconds() - self._cpu

    def figures(self) -> dict[str, float]:
        return {"seconds": self.seconds, "cpu_seconds": self.cpu_seconds}


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_gb() -> float:
    """This process's peak resident set size so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / GB


def _demo_config(data_root: str, n_customers: int | None = None):
    from leadtier.pipelines.config import load_config

    cfg = load_config(DEMO_CONFIG, data_root=data_root)
    if n_customers:
        cfg.demo.n_customers = n_customers
    cfg.train.n_jobs = 1  # LightGBM: 1 thread (more hangs on busy 2-core machines)
    return cfg


@child_task("demo_data")
def _task_demo_data(p: dict) -> dict:
    from leadtier.pipelines.demo_data import write_demo

    cfg = _demo_config(p["data_root"])
    with Stopwatch() as sw:
        counts = write_demo(cfg, p["data_root"], n_customers=p["n_customers"])
    Path(p["data_root"], ".complete").write_text(json.dumps(counts))
    return {**sw.figures(), "counts": counts}


@child_task("features")
def _task_features(p: dict) -> dict:
    from leadtier.pipelines import features

    cfg = _demo_config(p["data_root"])
    with Stopwatch() as sw:
        build = features.build(cfg, with_labels=False)
    return {
        **sw.figures(),
        "rows": len(build.features),
        "columns": build.features.shape[1] - 1,
        "input_rows": {k: s.rows for k, s in build.stats.items()},
    }


def _read_demo(data_root: str, n_customers: int | None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The demo tables as pandas frames; with ``n_customers`` only the first that many customers."""
    root = Path(data_root)
    if n_customers is None:
        return tuple(pd.read_parquet(root / f"{t}.parquet") for t in ("customers", "transactions", "interactions"))
    customers = pd.read_parquet(root / "customers.parquet").head(n_customers)
    last = customers["customer_id"].max()
    filt = [("customer_id", "<=", last)]
    return (
        customers,
        pd.read_parquet(root / "transactions.parquet", filters=filt),
        pd.read_parquet(root / "interactions.parquet", filters=filt),
    )


@child_task("speedup")
def _task_speedup(p: dict) -> dict:
    """DuckDB build vs the pandas reference on the same data, in one process; outputs compared."""
    from leadtier.pipelines import features

    root = Path(p["data_root"])
    subset = p.get("subset")
    if subset:  # write the first ``subset`` customers' rows once, outside the timings, for both engines
        root = Path(p["subset_root"])
        root.mkdir(parents=True, exist_ok=True)
        for name, frame in zip(
            ("customers", "transactions", "interactions"), _read_demo(p["data_root"], subset), strict=True
        ):
            frame.to_parquet(root / f"{name}.parquet", index=False)
        del frame
    cfg = _demo_config(str(root))
    with Stopwatch() as duck_sw:
        duck = features.build(cfg, with_labels=False).features
    rss_after_duckdb = peak_rss_gb()

    with Stopwatch() as pandas_sw:  # reading the files counts, as it does for DuckDB
        with Stopwatch() as read_sw:
            customers, transactions, interactions = _read_demo(str(root), None)
        ref = pandas_features(
            customers,
            transactions,
            interactions,
            cfg.data.as_of,
            cfg.features.windows_days,
            cfg.features.interaction_types,
        )
    diffs = frame_differences(duck, ref)
    return {
        "duckdb_seconds": duck_sw.seconds,
        "duckdb_cpu_seconds": duck_sw.cpu_seconds,
        "pandas_seconds": pandas_sw.seconds,
        "pandas_cpu_seconds": pandas_sw.cpu_seconds,
        "pandas_read_seconds": read_sw.seconds,
        "rows": len(duck),
        "columns": duck.shape[1] - 1,
        "outputs_match": not diffs,
        "differences": diffs[:5],
        "transactions": len(transactions),
        "interactions": len(interactions),
        "peak_rss_gb_after_duckdb": rss_after_duckdb,
    }


@child_task("train_demo")
def _task_train_demo(p: dict) -> dict:
    from leadtier.pipelines import train

    cfg = _demo_config(p["data_root"], p["n_customers"])
    if p.get("n_trials"):
        cfg.train.tuning.n_trials = p["n_trials"]
        cfg.train.tuning.timeout_s = p["timeout_s"]
    with Stopwatch() as sw:
        res = train.run(cfg)
    return {
        **sw.figures(),
        "model_name": cfg.mlflow.model_name,
        "version": res.model_version,
        "alias": res.alias,
        "n_train": res.n_train,
        "n_test": res.n_test,
        "n_trials": res.extra["n_trials"],
        "tuning": cfg.train.tuning.model_dump(exclude={"search_space"}),
        "macro_f1": res.metrics["model"]["macro_f1"],
    }


@child_task("predict")
def _task_predict(p: dict) -> dict:
    from leadtier.pipelines import predict

    cfg = _demo_config(p["data_root"])
    cfg.predict.input = None  # every customer of the world
    # a first scoring run: no previous output, so no tier migration (a repeat run also compares with it)
    out = Path(p["output"])
    for path in (out, predict.side_file(out, "migration"), predict.side_file(out, "drift")):
        path.unlink(missing_ok=True)
    with Stopwatch() as sw:
        res = predict.run(
            cfg,
            model_uri=p["model_uri"],
            input_path=None,
            output=p["output"],
            progress=False,
            reasons=bool(p.get("reasons")),
        )
    return {
        **sw.figures(),
        "scored": res.scored,
        "input_rows": res.input_rows,
        "rejected": res.rejected,
        "model_version": res.model_version,
    }


@child_task("report")
def _task_report(p: dict) -> dict:
    from leadtier.pipelines import report

    cfg = _demo_config(p["data_root"])
    with Stopwatch() as sw:
        path = report.run(cfg, predictions=p["predictions"], output=p["output"])
    return {**sw.figures(), "megabytes": path.stat().st_size / 1e6}


@child_task("spark")
def _task_spark(p: dict) -> dict:
    from leadtier.pipelines import spark as sp

    cfg = _demo_config(p["data_root"])
    cfg.predict.input = None
    session = sp.spark_session("local[2]", "leadtier-bench")
    try:
        with Stopwatch() as sw_features:
            _, rows, _ = sp.features_spark(session, cfg, output=p["features_output"])
        with Stopwatch() as sw_predict:
            res = sp.predict_spark(session, cfg, model_uri=p["model_uri"], output=p["predict_output"])
    finally:
        session.stop()
    return {
        **sw_predict.figures(),
        "features_seconds": sw_features.figures()["seconds"],
        "predict_seconds": sw_predict.figures()["seconds"],
        "rows": rows,
        "scored": getattr(res, "scored", None),
    }


def _real_config(p: dict):
    from leadtier.pipelines.config import load_config

    cfg = load_config(p["config"], data_root=p["shared"])
    cfg.train.n_jobs = 1
    return cfg


@child_task("prepare")
def _task_prepare(p: dict) -> dict:
    from leadtier.pipelines import train

    cfg = _real_config(p)
    with Stopwatch() as sw:
        prep = train.prepare(cfg)
    return {
        **sw.figures(),
        "train_rows": len(prep.train),
        "eval_rows": len(prep.test) if prep.test is not None else 0,
        "customers": len(prep.features),
        "columns": prep.features.shape[1] - 1,
        "input_rows": {k: v["rows_read"] for k, v in prep.stats.items()},
    }


@child_task("train_real")
def _task_train_real(p: dict) -> dict:
    from leadtier.pipelines import train

    cfg = _real_config(p)
    with Stopwatch() as sw:
        res = train.run(cfg)
    return {
        **sw.figures(),
        "metrics": res.metrics,
        "gains": res.gains,
        "n_train": res.n_train,
        "n_test": res.n_test,
        "n_trials": res.extra["n_trials"],
        "evaluation": res.extra["protocol"]["evaluation"],
    }


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
    cfg = _real_config(p)
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
            models = train.fit_models(cfg, tr[cols], tr["tier"].tolist(), params)
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


def run_child(task: str, params: dict, result_path: Path) -> int:
    """Inside the child: run ``task``, write its result (plus peak RSS) as JSON to ``result_path``."""
    result = CHILD_TASKS[task](params)
    result["peak_rss_gb"] = peak_rss_gb()
    result["load_avg_1m"] = os.getloadavg()[0]  # other work on the machine inflates wall times
    result_path.write_text(json.dumps(result, default=_json_default))
    return 0


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (dt.date, Path)):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


# =========================================================================== orchestration


class ChildError(RuntimeError):
    """A child process failed."""


@dataclass
class Ctx:
    n_customers: int
    workdir: Path
    shared: Path
    train_customers: int = TRAIN_N
    pandas_max_customers: int = PANDAS_MAX_N
    model_uri: str | None = None  # predict with this model (workdir's MLflow store) instead of training one
    selected: set[str] = field(default_factory=set)
    cache: dict[str, Any] = field(default_factory=dict)

    def child(self, task: str, **params: Any) -> dict:
        """Run ``task`` in a fresh interpreter (cwd = workdir, its own MLflow store) and return its result."""
        fd, name = tempfile.mkstemp(prefix=f"{task}-", suffix=".json", dir=self.workdir)
        os.close(fd)
        result_path = Path(name)
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": f"sqlite:///{self.workdir / 'mlflow.db'}",
            "PYTHONUNBUFFERED": "1",
        }
        env.pop("LEADTIER_DATA_ROOT", None)
        cmd = [
            sys.executable,
            "-m",
            "leadtier.pipelines.bench",
            "--child",
            task,
            "--params",
            json.dumps(params),
            "--result",
            str(result_path),
        ]
        log.info("child %s: %s", task, json.dumps(params))
        try:
            # the child's stdout goes to our stderr: our stdout carries only the JSON lines
            proc = subprocess.run(
                cmd, cwd=self.workdir, env=env, stdout=sys.stderr, timeout=CHILD_TIMEOUT_S, check=False
            )
            if proc.returncode != 0:
                raise ChildError(f"child {task} exited with status {proc.returncode} (its log is above on stderr)")
            return json.loads(result_path.read_text())
        except subprocess.TimeoutExpired:
            raise ChildError(f"child {task} ran past {CHILD_TIMEOUT_S} s") from None
        finally:
            result_path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ shared inputs, made once per run
    def data_root(self, n: int) -> Path:
        return self.workdir / f"data{size_label(n)}"

    def demo_world(self, n: int) -> tuple[Path, dict | None]:
        """The demo world of ``n`` customers under workdir, generated unless already complete there.

        Returns its folder and, when generated now, the generator's result (seconds, counts)."""
        root = self.data_root(n)
        if (root / ".complete").is_file():
            return root, None
        return root, self.child("demo_data", data_root=str(root), n_customers=n)

    def demo_counts(self, n: int) -> dict:
        return json.loads((self.data_root(n) / ".complete").read_text())

    def trained_model(self, full_budget: bool) -> dict:
        """Train on the training world once per run: with demo.yaml's budget or a quick one (3 trials)."""
        if "model" in self.cache and (self.cache["model"]["full_budget"] or not full_budget):
            return self.cache["model"]
        root, _ = self.demo_world(self.train_customers)
        quick = {} if full_budget else {"n_trials": 3, "timeout_s": 60}
        res = self.child("train_demo", data_root=str(root), n_customers=self.train_customers, **quick)
        res["full_budget"] = full_budget
        self.cache["model"] = res
        return res


def size_label(n: int) -> str:
    """1000000 -> '1m', 20000 -> '20k', 2500 -> '2500'."""
    for div, suffix in ((1_000_000, "m"), (1_000, "k")):
        if n >= div and n % div == 0:
            return f"{n // div}{suffix}"
    return str(n)


BENCHMARKS: dict[str, Callable[[Ctx], Iterator[dict]]] = {}


def benchmark(*names: str):
    """Register a benchmark function under the metric names it yields (in that order)."""

    def register(fn: Callable[[Ctx], Iterator[dict]]) -> Callable[[Ctx], Iterator[dict]]:
        for n in names:
            if n in BENCHMARKS:
                raise ValueError(f"benchmark {n!r} registered twice")
            BENCHMARKS[n] = fn
        fn.metric_names = names  # type: ignore[attr-defined]
        return fn

    return register


BARS: dict[str, tuple[str, float]] = {
    "features_1m_seconds": ("<=", 10),
    "features_1m_peak_rss_gb": ("<=", 4),
    "features_speedup_vs_pandas": (">=", 5),
    "online_retail_dataset_seconds": ("<=", 30),
    "predict_1m_seconds": ("<=", 30),
    "predict_1m_peak_rss_gb": ("<=", 4),
    "train_demo_seconds": ("<", 300),
    "predict_1m_reasons_seconds": ("<=", 120),
    "report_1m_seconds": ("<=", 30),
    "report_1m_megabytes": ("<=", 5),
    "leads_tier_macro_f1": (">=", 0.56),
    "leads_tier_qwk": (">=", 0.54),
    "leads_converted_auc": (">=", 0.94),
}
_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda v, b: v <= b,
    "<": lambda v, b: v < b,
    ">=": lambda v, b: v >= b,
    ">": lambda v, b: v > b,
}


def metric(name: str, value: float, unit: str, ctx: Ctx, **extra: Any) -> dict:
    """One result line: value rounded, the bar and whether it is met, how to rerun it."""
    bar = BARS.get(name)
    value = float(value)
    line: dict[str, Any] = {
        "name": name,
        "value": round(value, 4) if math.isfinite(value) else None,
        "unit": unit,
    }
    line.update(extra)
    line["bar"] = f"{bar[0]} {bar[1]}" if bar else None
    line["ok"] = _OPS[bar[0]](value, bar[1]) if bar else None
    line["command"] = rerun_command(name, ctx)
    return line


def rerun_command(name: str, ctx: Ctx) -> str:
    cmd = ["python", "-m", "leadtier.pipelines.bench", "--only", name]
    if ctx.n_customers != DEFAULT_N:
        cmd += ["--n-customers", str(ctx.n_customers)]
    if ctx.shared != default_shared():
        cmd += ["--shared", str(ctx.shared)]
    if name.startswith("predict_") and ctx.model_uri:
        cmd += ["--model", ctx.model_uri, "--workdir", str(ctx.workdir)]
    elif name.startswith(("predict_", "train_demo")) and ctx.train_customers != TRAIN_N:
        cmd += ["--train-customers", str(ctx.train_customers)]
    if name == "features_speedup_vs_pandas" and ctx.pandas_max_customers < ctx.n_customers:
        cmd += ["--pandas-max-customers", str(ctx.pandas_max_customers)]
    return shlex.join(cmd)


def skipped(names: Sequence[str], reason: str) -> Iterator[dict]:
    for n in names:
        yield {"name": n, "skipped": reason}


def missing_inputs(config: Path, shared: Path) -> list[str]:
    """Input files of a real-data config that are absent under ``shared``."""
    from leadtier.pipelines.config import load_config

    cfg = load_config(config, data_root=str(shared))
    specs = [
        s
        for s in (
            cfg.data.tables.customers,
            cfg.data.tables.transactions,
            cfg.data.tables.interactions,
            cfg.data.tables.labels,
        )
        if s is not None
    ]
    paths = dict.fromkeys(str(cfg.data_path(f.path)) for s in specs for f in s.files)  # once each, in order
    return [p for p in paths if not Path(p).is_file()]


# --------------------------------------------------------------------------- the benchmarks


@benchmark("demo_data_1m_seconds")
def bench_demo_data(ctx: Ctx) -> Iterator[dict]:
    root = ctx.data_root(ctx.n_customers)
    (root / ".complete").unlink(missing_ok=True)  # always generate: this is the figure
    _, res = ctx.demo_world(ctx.n_customers)
    c = res["counts"]
    yield metric(
        "demo_data_1m_seconds",
        res["seconds"],
        "s",
        ctx,
        n_customers=ctx.n_customers,
        rows=c["customers"] + c["transactions"] + c["interactions"],
        tables=c,
        peak_rss_gb=round(res["peak_rss_gb"], 3),
        **machine(res),
    )


@benchmark("features_1m_seconds", "features_1m_peak_rss_gb")
def bench_features(ctx: Ctx) -> Iterator[dict]:
    root, _ = ctx.demo_world(ctx.n_customers)
    res = ctx.child("features", data_root=str(root))
    common = {
        "n_customers": ctx.n_customers,
        "rows": res["rows"],
        "columns": res["columns"],
        "input_rows": res["input_rows"],
        "engine": "duckdb",
        **machine(res),
    }
    yield metric("features_1m_seconds", res["seconds"], "s", ctx, **common)
    yield metric("features_1m_peak_rss_gb", res["peak_rss_gb"], "GB", ctx, **common)


@benchmark("features_speedup_vs_pandas")
def bench_speedup(ctx: Ctx) -> Iterator[dict]:
    root, _ = ctx.demo_world(ctx.n_customers)
    n = min(ctx.n_customers, ctx.pandas_max_customers)
    params: dict[str, Any] = {"data_root": str(root)}
    if n < ctx.n_customers:
        params.update(subset=n, subset_root=str(ctx.workdir / f"data{size_label(ctx.n_customers)}_first{n}"))
    res = ctx.child("speedup", **params)
    extra: dict[str, Any] = {}
    if n < ctx.n_customers:
        extra["note"] = (
            f"both engines timed on the first {n} of the {ctx.n_customers} customers (and their "
            f"rows) (--pandas-max-customers {ctx.pandas_max_customers})"
        )
    yield metric(
        "features_speedup_vs_pandas",
        res["pandas_seconds"] / res["duckdb_seconds"],
        "x",
        ctx,
        n_customers=n,
        rows=res["rows"],
        columns=res["columns"],
        duckdb_seconds=round(res["duckdb_seconds"], 3),
        pandas_seconds=round(res["pandas_seconds"], 3),
        pandas_read_seconds=round(res["pandas_read_seconds"], 3),
        duckdb_cpu_seconds=round(res["duckdb_cpu_seconds"], 1),
        pandas_cpu_seconds=round(res["pandas_cpu_seconds"], 1),
        load_avg_1m=round(res["load_avg_1m"], 2),
        input_rows={"transactions": res["transactions"], "interactions": res["interactions"]},
        outputs_match=res["outputs_match"],
        differences=res["differences"],
        **extra,
    )


@benchmark("online_retail_dataset_seconds")
def bench_online_retail_dataset(ctx: Ctx) -> Iterator[dict]:
    config = CONFIGS / "online_retail.yaml"
    missing = missing_inputs(config, ctx.shared)
    if missing:
        yield from skipped(["online_retail_dataset_seconds"], f"input files absent: {missing}")
        return
    res = ctx.child("prepare", config=str(config), shared=str(ctx.shared))
    yield metric(
        "online_retail_dataset_seconds",
        res["seconds"],
        "s",
        ctx,
        n_customers=res["customers"],
        rows=sum(res["input_rows"].values()),
        input_rows=res["input_rows"],
        train_rows=res["train_rows"],
        eval_rows=res["eval_rows"],
        columns=res["columns"],
        peak_rss_gb=round(res["peak_rss_gb"], 3),
        **machine(res),
    )


@benchmark("train_demo_seconds")
def bench_train_demo(ctx: Ctx) -> Iterator[dict]:
    res = ctx.trained_model(full_budget=True)
    yield metric(
        "train_demo_seconds",
        res["seconds"],
        "s",
        ctx,
        n_customers=ctx.train_customers,
        rows=res["n_train"] + res["n_test"],
        n_train=res["n_train"],
        n_test=res["n_test"],
        n_trials=res["n_trials"],
        tuning=res["tuning"],
        macro_f1=round(res["macro_f1"], 4),
        peak_rss_gb=round(res["peak_rss_gb"], 3),
        **machine(res),
    )


@benchmark("predict_1m_seconds", "predict_1m_peak_rss_gb")
def bench_predict(ctx: Ctx) -> Iterator[dict]:
    root, _ = ctx.demo_world(ctx.n_customers)
    if ctx.model_uri:
        uri, tuning = ctx.model_uri, "given with --model"
    else:
        model = ctx.trained_model(full_budget="train_demo_seconds" in ctx.selected)
        tuning = "demo.yaml budget" if model["full_budget"] else "quick (3 trials, 60 s)"
        uri = (
            f"models:/{model['model_name']}@champion"
            if model["alias"] == "champion"
            else f"models:/{model['model_name']}/{model['version']}"
        )
    res = ctx.child("predict", data_root=str(root), model_uri=uri, output=str(ctx.workdir / "pred1m.parquet"))
    common = {
        "n_customers": ctx.n_customers,
        "rows": res["scored"],
        "input_rows": res["input_rows"],
        "rejected": res["rejected"],
        "model_uri": uri,
        "model_version": res["model_version"],
        "model_trained_on": None if ctx.model_uri else ctx.train_customers,
        "model_tuning": tuning,
        **machine(res),
    }
    yield metric("predict_1m_seconds", res["seconds"], "s", ctx, **common)
    yield metric("predict_1m_peak_rss_gb", res["peak_rss_gb"], "GB", ctx, **common)


def _model_uri(ctx: Ctx) -> str:
    if ctx.model_uri:
        return ctx.model_uri
    model = ctx.trained_model(full_budget="train_demo_seconds" in ctx.selected)
    if model["alias"] == "champion":
        return f"models:/{model['model_name']}@champion"
    return f"models:/{model['model_name']}/{model['version']}"


@benchmark("predict_1m_reasons_seconds")
def bench_predict_reasons(ctx: Ctx) -> Iterator[dict]:
    root, _ = ctx.demo_world(ctx.n_customers)
    uri = _model_uri(ctx)
    res = ctx.child(
        "predict", data_root=str(root), model_uri=uri, output=str(ctx.workdir / "pred1m_reasons.parquet"), reasons=True
    )
    yield metric(
        "predict_1m_reasons_seconds",
        res["seconds"],
        "s",
        ctx,
        n_customers=ctx.n_customers,
        rows=res["scored"],
        model_uri=uri,
        peak_rss_gb=res["peak_rss_gb"],
        **machine(res),
    )


@benchmark("report_1m_seconds", "report_1m_megabytes")
def bench_report(ctx: Ctx) -> Iterator[dict]:
    root, _ = ctx.demo_world(ctx.n_customers)
    preds = ctx.workdir / "pred1m.parquet"
    if not preds.is_file():
        ctx.child("predict", data_root=str(root), model_uri=_model_uri(ctx), output=str(preds))
    res = ctx.child("report", data_root=str(root), predictions=str(preds), output=str(ctx.workdir / "report1m.html"))
    common = {"n_customers": ctx.n_customers, "peak_rss_gb": res["peak_rss_gb"], **machine(res)}
    yield metric("report_1m_seconds", res["seconds"], "s", ctx, **common)
    yield metric("report_1m_megabytes", res["megabytes"], "MB", ctx, **common)


@benchmark("spark_features_1m_seconds", "spark_predict_1m_seconds")
def bench_spark(ctx: Ctx) -> Iterator[dict]:
    try:
        import pyspark  # noqa: F401
    except ImportError:
        yield from skipped(("spark_features_1m_seconds", "spark_predict_1m_seconds"), "pyspark is not installed")
        return
    root, _ = ctx.demo_world(ctx.n_customers)
    res = ctx.child(
        "spark",
        data_root=str(root),
        model_uri=_model_uri(ctx),
        features_output=str(ctx.workdir / "spark_features"),
        predict_output=str(ctx.workdir / "spark_pred"),
    )
    common = {"n_customers": ctx.n_customers, "master": "local[2]", "rows": res["rows"], **machine(res)}
    yield metric("spark_features_1m_seconds", res["features_seconds"], "s", ctx, **common)
    yield metric("spark_predict_1m_seconds", res["predict_seconds"], "s", ctx, **common)


LEADS_TIER = ("leads_tier_macro_f1", "leads_tier_qwk", "leads_tier_logreg_macro_f1", "leads_tier_logreg_qwk")


@benchmark(*LEADS_TIER)
def bench_leads_tier(ctx: Ctx) -> Iterator[dict]:
    config = CONFIGS / "x_education_leads.yaml"
    missing = missing_inputs(config, ctx.shared)
    if missing:
        yield from skipped(LEADS_TIER, f"input files absent: {missing}")
        return
    res = ctx.child("train_real", config=str(config), shared=str(ctx.shared))
    common = _train_context(res)
    for name, key, m in zip(
        LEADS_TIER,
        ("model", "model", "logreg", "logreg"),
        ("macro_f1", "qwk", "macro_f1", "qwk"),
        strict=True,
    ):
        # the bar asks for a win over the same-run logistic regression: say how sure that win is
        extra = _gain_ci(res, "logreg", m, "gain_over_logreg_95ci") if key == "model" else {}
        yield metric(name, res["metrics"][key][m], "", ctx, **common, **extra)


LEADS_ORDER = {
    # name: (split, model, metric)
    "leads_tier_newest_macro_f1": ("ordered", "model", "macro_f1"),
    "leads_tier_newest_qwk": ("ordered", "model", "qwk"),
    "leads_tier_newest_logreg_macro_f1": ("ordered", "logreg", "macro_f1"),
    "leads_tier_newest_logreg_qwk": ("ordered", "logreg", "qwk"),
    "leads_tier_random_holdout_macro_f1": ("random", "model", "macro_f1"),
    "leads_tier_random_holdout_qwk": ("random", "model", "qwk"),
}


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


@benchmark(*LEADS_ORDER)
def bench_leads_order(ctx: Ctx) -> Iterator[dict]:
    """No bar: how the k-fold figures above hold on the newest 20 % of leads (by `Lead Number`)."""
    yield from _newest_leads(ctx, CONFIGS / "x_education_leads.yaml", LEADS_ORDER)


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
    res = ctx.child("train_real", config=str(config), shared=str(ctx.shared))
    yield metric(
        "leads_converted_auc",
        res["metrics"]["model"]["roc_auc"],
        "",
        ctx,
        logreg_auc=round(res["metrics"]["logreg"]["roc_auc"], 4),
        **_gain_ci(res, "logreg", "roc_auc", "gain_over_logreg_95ci"),
        **_train_context(res),
    )


ONLINE_RETAIL_TIER = (
    "online_retail_tier_macro_f1",
    "online_retail_tier_qwk",
    "online_retail_tier_log_loss",
    "online_retail_best_baseline_macro_f1",
    "online_retail_best_baseline_qwk",
    "online_retail_best_baseline_log_loss",
)


@benchmark(*ONLINE_RETAIL_TIER)
def bench_online_retail_tier(ctx: Ctx) -> Iterator[dict]:
    from leadtier.models.metrics import HIGHER_IS_BETTER

    config = CONFIGS / "online_retail.yaml"
    missing = missing_inputs(config, ctx.shared)
    if missing:
        yield from skipped(ONLINE_RETAIL_TIER, f"input files absent: {missing}")
        return
    res = ctx.child("train_real", config=str(config), shared=str(ctx.shared))
    common = _train_context(res)
    metrics = res["metrics"]
    for m in ("macro_f1", "qwk", "log_loss"):
        pick = max if HIGHER_IS_BETTER[m] else min
        baselines = {k: v[m] for k, v in metrics.items() if k != "model"}
        best = pick(baselines, key=baselines.get)
        model_value = metrics["model"][m]
        beats = model_value > baselines[best] if HIGHER_IS_BETTER[m] else model_value < baselines[best]
        yield metric(
            f"online_retail_tier_{m}",
            model_value,
            "",
            ctx,
            best_baseline=best,
            best_baseline_value=round(baselines[best], 4),
            beats_best_baseline=beats,
            **_gain_ci(res, best, m, "gain_over_best_baseline_95ci"),
            **common,
        )
        yield metric(
            f"online_retail_best_baseline_{m}",
            baselines[best],
            "",
            ctx,
            baseline=best,
            higher_is_better=HIGHER_IS_BETTER[m],
            **common,
        )


def _gain_ci(res: dict, baseline: str, m: str, field: str) -> dict:
    """``{field: [gain, low, high]}``: the model's gain over ``baseline`` on ``m`` with its 95 % bootstrap
    interval (positive = the model is better), or {} when the run computed none."""
    g = res.get("gains", {}).get(baseline, {}).get(m)
    return {field: [round(g[k], 4) for k in ("gain", "low", "high")]} if g else {}


def _train_context(res: dict) -> dict:
    """Context of a real-data training: evaluation rows (``rows``), protocol, budget used, wall time."""
    return {
        "rows": res["n_test"],
        "n_train": res["n_train"],
        "evaluation": res["evaluation"],
        "n_trials": res["n_trials"],
        "train_seconds": round(res["seconds"], 1),
        "peak_rss_gb": round(res["peak_rss_gb"], 3),
        **machine(res),
    }


def machine(res: dict) -> dict:
    """CPU seconds of the timed call and the load average: wall times on a shared machine need both."""
    return {"cpu_seconds": round(res["cpu_seconds"], 1), "load_avg_1m": round(res["load_avg_1m"], 2)}


# =========================================================================== command line


def default_shared() -> Path:
    return Path(os.environ.get("LEADTIER_DATA_ROOT") or REPO.parent / "shared" / "datasets").resolve()


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m leadtier.pipelines.bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="benchmarks: " + ", ".join(BENCHMARKS),
    )
    ap.add_argument("--only", help="comma-separated benchmark names to run (default: all)")
    ap.add_argument(
        "--n-customers",
        type=int,
        default=DEFAULT_N,
        help=f"size of the generated demo world (default {DEFAULT_N:,})",
    )
    ap.add_argument(
        "--train-customers",
        type=int,
        default=TRAIN_N,
        help=f"size of the demo world the benchmark model is trained on (default {TRAIN_N:,})",
    )
    ap.add_argument(
        "--pandas-max-customers",
        type=int,
        default=PANDAS_MAX_N,
        help="time the pandas-vs-DuckDB comparison on at most this many customers (default: all of them)",
    )
    ap.add_argument(
        "--model",
        help="predict_*: score with this model URI from the workdir's MLflow store (e.g. "
        "models:/leadtier-demo@champion of an earlier run with the same --workdir) instead of training one",
    )
    ap.add_argument(
        "--workdir",
        type=Path,
        help="folder for generated data, MLflow store and outputs (default: a new temp folder in /tmp; "
        "data already complete there is reused)",
    )
    ap.add_argument(
        "--shared",
        type=Path,
        default=None,
        help="real datasets folder (default $LEADTIER_DATA_ROOT or ../shared/datasets)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the default temp workdir (it is removed otherwise)")
    ap.add_argument("--list", action="store_true", help="list the benchmark names and exit")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--params", help=argparse.SUPPRESS)
    ap.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def select(only: str | None) -> list[str]:
    if not only:
        return list(BENCHMARKS)
    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise SystemExit(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")
    return names


def run(ctx: Ctx, names: Sequence[str], emit: Callable[[dict], None]) -> int:
    """Run the benchmark functions behind ``names`` once each; emit the selected lines. Returns failures."""
    ctx.selected = set(names)
    failures = 0
    done: set[Callable] = set()
    for name in BENCHMARKS:
        fn = BENCHMARKS[name]
        if name not in ctx.selected or fn in done:
            continue
        done.add(fn)
        wanted = [n for n in fn.metric_names if n in ctx.selected]  # type: ignore[attr-defined]
        log.info("benchmark %s", ", ".join(wanted))
        try:
            for line in fn(ctx):
                if line["name"] in ctx.selected:
                    emit(line)
        except Exception as exc:  # one failing benchmark must not hide the others
            failures += 1
            log.error("benchmark %s failed:\n%s", fn.__name__, traceback.format_exc())
            for n in wanted:
                emit(
                    {
                        "name": n,
                        "error": f"{type(exc).__name__}: {exc}",
                        "ok": False,
                        "command": rerun_command(n, ctx),
                    }
                )
    return failures


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.child:
        return run_child(args.child, json.loads(args.params or "{}"), args.result)
    if args.list:
        print("\n".join(BENCHMARKS))
        return 0
    names = select(args.only)
    shared = (args.shared or default_shared()).resolve()
    tmp = args.workdir is None
    if tmp:
        workdir = Path(tempfile.mkdtemp(prefix="leadtier-bench-", dir="/tmp"))
    else:
        workdir = args.workdir.resolve()
        workdir.mkdir(parents=True, exist_ok=True)
    if workdir.is_relative_to(REPO):
        raise SystemExit(f"--workdir {workdir} is inside the repository; generated data must not land there")
    ctx = Ctx(
        n_customers=args.n_customers,
        workdir=workdir,
        shared=shared,
        train_customers=args.train_customers,
        pandas_max_customers=args.pandas_max_customers,
        model_uri=args.model,
    )
    log.info("workdir %s, shared datasets %s", workdir, shared)

    def emit(line: dict) -> None:
        print(json.dumps(line, default=_json_default), flush=True)

    try:
        failures = run(ctx, names, emit)
    finally:
        if tmp and args.keep:
            log.info("kept workdir %s", workdir)
        elif tmp:
            shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
