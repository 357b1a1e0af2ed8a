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
            edges = _edges(finite, bins)
            counts = bin_counts(frame[c], edges=edges)
            ref[c] = {"edges": edges.tolist(), "share": (counts / max(counts.sum(), 1)).tolist()}
    return ref


def _edges(finite: np.ndarray, bins: int) -> np.ndarray:
    """Decile edges of ``finite`` (bins ``[e_i, e_i+1)``); a value that holds a bin's share or more on its own
    (0 in a mostly-zero count) gets a bin of its own (up to a relative 1e-9 above it), else a move from it to
    any value above the next edge would stay in its bin and go unseen."""
    if not len(finite):
        return np.array([])
    edges = np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1)[1:-1]))
    values, counts = np.unique(finite, return_counts=True)
    heavy = values[counts >= len(finite) / bins]
    # the bin closes a little above the value, so that the same value computed another way (0.1 + 0.2) stays in it
    return np.unique(np.concatenate([edges, heavy, heavy + np.maximum(np.abs(heavy), 1.0) * 1e-9]))


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
    return float(_psi_rows(expected_share, np.asarray(actual_counts, dtype=float)[None, :])[0])


def _psi_rows(expected_share, counts: np.ndarray) -> np.ndarray:
    """PSI of each row of bin ``counts`` against ``expected_share`` (empty bins floored at :data:`EPS`)."""
    e = np.clip(np.asarray(expected_share, dtype=float), EPS, None)
    a = np.clip(counts / np.maximum(counts.sum(axis=1, keepdims=True), 1), EPS, None)
    return np.sum((a - e) * np.log(a / e), axis=1)


NOISE_DRAWS, NOISE_QUANTILE = 2000, 0.999  # one false alarm in a thousand batches per feature
NOISE_CELLS = 2_000_000  # draws x bins at a time: a text feature of 20,000 categories stays in memory


def psi_noise(expected_share, rows: int, seed: int = 0) -> float:
    """The PSI that sampling alone exceeds once in a thousand batches of ``rows`` rows drawn from the
    training shares (no drift at all). Over ten equal bins: 2.5 at 26 rows (empty bins weigh heavily),
    0.33 at 100, 0.06 at 400, 0.026 at 1,000. A PSI below it says nothing about drift."""
    share = np.clip(np.asarray(expected_share, dtype=float), 0, None)
    if rows <= 0 or share.sum() <= 0:
        return 0.0
    rng, chunk = np.random.default_rng(seed), max(1, NOISE_CELLS // len(share))
    draws = min(NOISE_DRAWS, max(200, 20 * NOISE_CELLS // len(share)))  # fewer for thousands of categories
    psis = [
        _psi_rows(
            expected_share, rng.multinomial(int(rows), share / share.sum(), size=min(chunk, draws - i)).astype(float)
        )
        for i in range(0, draws, chunk)
    ]
    return float(np.quantile(np.concatenate(psis), NOISE_QUANTILE))


class DriftAccumulator:
    """Add scored batches; ``table(threshold)`` gives PSI per feature, largest first, and for text
    features how many values training never saw (the model learned nothing about them), with examples.

    The examples are the first three such values in customer id order (in row order without a
    ``customer_id`` column), whatever order the batches come in, so accumulators filled on parts of the
    data (Spark partitions) and combined with :meth:`merge` give the same table as one filled with all."""

    def __init__(self, reference: dict[str, dict]):
        self.reference = reference
        self.counts = {c: np.zeros(len(r["share"])) for c, r in reference.items()}
        self.unseen = {c: 0 for c, r in reference.items() if "cats" in r}
        self.examples: dict[str, dict[str, str]] = {c: {} for c in self.unseen}  # value -> its first customer
        self._rows = 0

    def add(self, frame: pd.DataFrame) -> None:
        if "customer_id" in frame.columns:
            keys = frame["customer_id"].astype(str)
        else:
            keys = pd.Series([f"{i:020d}" for i in range(self._rows, self._rows + len(frame))], index=frame.index)
        self._rows += len(frame)
        for c, r in self.reference.items():
            if c not in frame.columns:
                continue
            counts = bin_counts(frame[c], edges=r.get("edges"), cats=r.get("cats"))
            self.counts[c] += counts
            if c in self.unseen:  # the last bin holds missing and unseen values
                unseen = int(counts[-1]) - int(frame[c].isna().sum())
                self.unseen[c] += unseen
                if unseen:
                    self._note_examples(c, frame[c], keys)

    def _note_examples(self, c: str, values: pd.Series, keys: pd.Series) -> None:
        new = values.notna() & ~values.isin(self.reference[c]["cats"])
        if len(self.examples[c]) >= 3:  # only customers before the third example can change the choice
            new &= keys < max(self.examples[c].values())
        if new.any():
            first = keys[new].groupby(values[new].astype(str)).min()
            self._keep(c, {clip(v): k for v, k in first.items()})

    def _keep(self, c: str, found: dict[str, str]) -> None:
        both = dict(self.examples[c])
        for value, key in found.items():
            both[value] = min(key, both.get(value, key))
        self.examples[c] = dict(sorted(both.items(), key=lambda vk: (vk[1], vk[0]))[:3])

    def state(self) -> dict:
        """What :meth:`merge` needs (JSON-serialisable and bounded: bin counts and three examples per feature)."""
        counts = {c: v.tolist() for c, v in self.counts.items()}
        return {"counts": counts, "unseen": dict(self.unseen), "examples": self.examples}

    def merge(self, state: dict) -> None:
        """Add the counts and examples of another accumulator's :meth:`state` (over other rows)."""
        for c, counts in state["counts"].items():
            self.counts[c] += np.asarray(counts, dtype=float)
        for c, n in state["unseen"].items():
            self.unseen[c] += int(n)
        for c, found in state["examples"].items():
            self._keep(c, found)

    def table(self, threshold: float) -> pd.DataFrame:
        """PSI per feature with ``psi_noise`` (:func:`psi_noise` at this many rows) and ``warning``: above
        both ``threshold`` and the noise, so a small batch does not raise false alarms; ``missing_share``
        of the scored rows without a value beside ``training_missing_share``."""
        rows = [
            {
                "feature": c,
                "psi": round(psi(r["share"], self.counts[c]), 6),
                "psi_noise": round(psi_noise(r["share"], int(self.counts[c].sum())), 6),
                "missing_share": round((self.counts[c][-1] - self.unseen.get(c, 0)) / self.counts[c].sum(), 6),
                "training_missing_share": round(float(r["share"][-1]), 6),
                "unseen_values": self.unseen.get(c, 0),
                "unseen_examples": ", ".join(self.examples.get(c, {})),
            }
            for c, r in self.reference.items()
            if self.counts[c].sum() > 0
        ]
        columns = ["feature", "psi", "psi_noise", "missing_share", "training_missing_share"]
        out = pd.DataFrame(rows, columns=[*columns, "unseen_values", "unseen_examples"])
        out["warning"] = (out["psi"] > threshold) & (out["psi"] > out["psi_noise"])
        return out.sort_values(["psi", "feature"], ascending=[False, True], ignore_index=True)


def migration(previous: pd.DataFrame, current: pd.DataFrame, levels: list[str]) -> pd.DataFrame:
    """Tier and score changes per customer between two scoring runs (best level first), by customer id;
    see :func:`tier_changes`."""
    p = previous[["customer_id", "tier", "score"]].rename(columns={"tier": "previous_tier", "score": "previous_score"})
    m = p.merge(current[["customer_id", "tier", "score"]], on="customer_id", how="outer")
    return tier_changes(m, levels).sort_values("customer_id", ignore_index=True)


MIGRATION_COLUMNS = ["customer_id", "previous_tier", "previous_score", "tier", "score"]  # what tier_changes reads


def tier_changes(paired: pd.DataFrame, levels: list[str]) -> pd.DataFrame:
    """``paired`` (:data:`MIGRATION_COLUMNS`: each customer's previous tier and score beside the new ones,
    missing on the side where the customer is absent) with ``change``: upgraded / downgraded / unchanged /
    new / gone, ``score_change``, and ``trend`` from the score: improving (+5 or more), declining (-5 or
    more), steady. Row by row: any part of the pairs can be done on its own."""
    rank = {c: i for i, c in enumerate(levels)}
    m = paired
    pr = m["previous_tier"].map(rank)
    cr = m["tier"].map(rank)
    change = np.select(
        [m["previous_tier"].isna(), m["tier"].isna(), cr < pr, cr > pr],
        ["new", "gone", "upgraded", "downgraded"],
        default="unchanged",
    )
    delta = m["score"] - m["previous_score"]
    trend = np.select([delta >= 5, delta <= -5, delta.notna()], ["improving", "declining", "steady"], default="")
    return m.assign(change=change, score_change=delta.round(2), trend=trend)
