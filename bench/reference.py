"""The feature table of ``features/sql/{customers,rfm,interactions}.sql``, written again with plain pandas.

A readable reference and the baseline of ``features_speedup_vs_pandas``; ``frame_differences`` says how
two feature tables differ. Not shipped: the package's features are the SQL.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pandas as pd
from leadtier.features.queries import slug

# demo.yaml's customer attributes: the defaults of pandas_features
DEMO_CATEGORICAL = ("lead_source", "industry", "company_size", "region")
DEMO_NUMERIC = ("annual_revenue_musd",)


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
    # a line without an invoice id is an invoice of its own, one per customer and timestamp
    invoice = tx["invoice_id"].astype("object").where(tx["invoice_id"].notna(), "no invoice " + tx["ts"].astype(str))
    purchases = (
        tx.assign(invoice_id=invoice)
        .groupby(["customer_id", "invoice_id"], dropna=False, sort=False)
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
