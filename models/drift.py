"""Population stability index (PSI) between the training snapshot and a scored batch.

The reference keeps, per feature, decile edges (numbers) or the category list (text) and the
training share of each bin, plus a bin for missing values. Scoring accumulates bin counts batch by
batch, so drift costs no second pass over the data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from leadtier.models.frame import as_float
from leadtier.models.text import clip

EPS = 1e-4


def reference_profile(
    frame: pd.DataFrame, columns: list[str], categories: dict[str, list[str]], bins: int = 10
) -> dict[str, dict]:
    ref: dict[str, dict] = {}
    for c in columns:
        if c in categories:
            counts = bin_counts(frame[c], cats=categories[c])
            ref[c] = {"cats": list(categories[c]), "share": (counts / max(counts.sum(), 1)).tolist()}
        else:
            x = pd.to_numeric(frame[c], errors="coerce").to_numpy(dtype=float)
            finite = x[np.isfinite(x)]
            edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1])) if len(finite) else np.array([])
            counts = bin_counts(frame[c], edges=edges)
            ref[c] = {"edges": edges.tolist(), "share": (counts / max(counts.sum(), 1)).tolist()}
    return ref


def bin_counts(values: pd.Series, edges=None, cats=None) -> np.ndarray:
    """Counts per bin; the last bin holds missing values (and, for text, unseen categories)."""
    if cats is not None:
        s = pd.Series(values).astype("object")
        pos = {v: i for i, v in enumerate(cats)}
        idx = s.map(pos).fillna(len(cats)).to_numpy(dtype=int)
        return np.bincount(idx, minlength=len(cats) + 1).astype(float)
    x = as_float(pd.Series(values)).to_numpy(dtype=float, na_value=np.nan)
    edges = np.asarray(edges, dtype=float)
    idx = np.where(np.isfinite(x), np.searchsorted(edges, x, side="right"), len(edges) + 1)
    return np.bincount(idx, minlength=len(edges) + 2).astype(float)


def psi(expected_share, actual_counts) -> float:
    e = np.clip(np.asarray(expected_share, dtype=float), EPS, None)
    a = np.asarray(actual_counts, dtype=float)
    a = np.clip(a / max(a.sum(), 1), EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


class DriftAccumulator:
    """Add scored batches; ``table(threshold)`` gives PSI per feature, largest first, and for text
    features how many values training never saw (the model scores them as missing), with examples."""

    def __init__(self, reference: dict[str, dict]):
        self.reference = reference
        self.counts = {c: np.zeros(len(r["share"])) for c, r in reference.items()}
        self.unseen = {c: 0 for c, r in reference.items() if "cats" in r}
        self.unseen_examples: dict[str, list[str]] = {c: [] for c in self.unseen}

    def add(self, frame: pd.DataFrame) -> None:
        for c, r in self.reference.items():
            if c not in frame.columns:
                continue
            counts = bin_counts(frame[c], edges=r.get("edges"), cats=r.get("cats"))
            self.counts[c] += counts
            if c in self.unseen:  # the last bin holds missing and unseen values
                unseen = int(counts[-1]) - int(frame[c].isna().sum())
                self.unseen[c] += unseen
                if unseen and len(self.unseen_examples[c]) < 3:
                    values = frame[c].dropna()
                    new = [clip(v) for v in values[~values.isin(r["cats"])].astype(str).unique()[:3]]
                    self.unseen_examples[c] = list(dict.fromkeys(self.unseen_examples[c] + new))[:3]

    def table(self, threshold: float) -> pd.DataFrame:
        rows = [
            {
                "feature": c,
                "psi": round(psi(r["share"], self.counts[c]), 6),
                "unseen_values": self.unseen.get(c, 0),
                "unseen_examples": ", ".join(self.unseen_examples.get(c, [])),
            }
            for c, r in self.reference.items()
            if self.counts[c].sum() > 0
        ]
        out = pd.DataFrame(rows, columns=["feature", "psi", "unseen_values", "unseen_examples"])
        out["warning"] = out["psi"] > threshold
        return out.sort_values(["psi", "feature"], ascending=[False, True], ignore_index=True)


def migration(previous: pd.DataFrame, current: pd.DataFrame, levels: list[str]) -> pd.DataFrame:
    """Tier and score changes per customer between two scoring runs (best level first).

    ``change``: upgraded / downgraded / unchanged / new / gone; ``trend`` from the score:
    improving (+5 or more), declining (-5 or more), steady.
    """
    rank = {c: i for i, c in enumerate(levels)}
    p = previous[["customer_id", "tier", "score"]].rename(columns={"tier": "previous_tier", "score": "previous_score"})
    m = p.merge(current[["customer_id", "tier", "score"]], on="customer_id", how="outer")
    pr = m["previous_tier"].map(rank)
    cr = m["tier"].map(rank)
    change = np.select(
        [m["previous_tier"].isna(), m["tier"].isna(), cr < pr, cr > pr],
        ["new", "gone", "upgraded", "downgraded"],
        default="unchanged",
    )
    delta = m["score"] - m["previous_score"]
    trend = np.select([delta >= 5, delta <= -5, delta.notna()], ["improving", "declining", "steady"], default="")
    return m.assign(change=change, score_change=delta.round(2), trend=trend).sort_values(
        "customer_id", ignore_index=True
    )
