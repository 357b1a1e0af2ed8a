"""Everything needed to tier a customer feature table, bundled as one object."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from leadtier.features.meta import on_day
from leadtier.models.classifier import TierClassifier
from leadtier.models.explain import top_reasons
from leadtier.models.frame import ID_COLUMN, OPEN_DAYS, check_columns
from leadtier.models.schemes import TierScheme
from leadtier.models.segments import Segmenter


def grade(score: np.ndarray, bands: dict[str, float]) -> np.ndarray:
    """Letter per 0-100 score: the band with the highest lower bound the score reaches."""
    ordered = sorted(bands.items(), key=lambda kv: -kv[1])
    out = np.full(len(score), ordered[-1][0], dtype=object)
    for name, low in reversed(ordered):
        out[np.asarray(score) >= low] = name
    return out


def proba_column(code: str) -> str:
    return f"proba_{code}"


def given_open(
    proba: np.ndarray, codes: list[str], latest: dict[str, float], open_days, still_open: dict | None = None
) -> np.ndarray:
    """The tier probabilities of entities neither won nor lost after ``open_days`` days (Bayes' rule:
    each tier's probability times the share of that tier's entities still open that long, then scaled to
    sum to 1). ``still_open``: per tier, that share after 0, 1, 2, ... days (:func:`open_shares`; the last
    day stands for all later ones); without it every tier's entities are taken to stay open until their
    window ends. A tier ``code`` with ``latest[code]`` (the most days from the start within which a win
    counts for it) below an entity's days is out of reach and gets 0 either way; all out of reach by the
    model's own figures: equal shares. Missing days change nothing."""
    days = pd.to_numeric(pd.Series(np.asarray(open_days, dtype=object)), errors="coerce")
    days = days.to_numpy("float64", na_value=np.nan)
    if proba.shape != (len(days), len(codes)):
        raise ValueError(f"proba must have one row per entity and one column per tier. Got {proba.shape} instead")
    reachable = np.ones(proba.shape, dtype=bool)
    weight = np.ones(proba.shape)
    known = np.isfinite(days) & (days >= 0)
    for j, code in enumerate(codes):
        if code in latest:
            reachable[:, j] = ~(days > latest[code])  # NaN compares False: reachable
        shares = np.asarray((still_open or {}).get(code, []), dtype="float64")
        if shares.size:
            day = np.minimum(np.where(known, days, 0), shares.size - 1).astype(int)
            weight[:, j] = np.where(known, shares[day], 1.0)
    kept = np.where(reachable, proba * weight, 0.0)
    total = kept.sum(axis=1, keepdims=True)
    even = reachable / reachable.sum(axis=1, keepdims=True)
    return np.where(total > 0, kept / np.where(total > 0, total, 1.0), even)


def open_shares(tiers, closed_after, codes, days: int, prior: float = 2.0) -> dict[str, list[float]]:
    """Per tier of ``codes``, for each day 0 .. ``days`` + 1: the share of the entities of that tier (``tiers``)
    still open after that many days, i.e. neither won nor lost before it (``closed_after``: the days from
    the start to the first win or loss, NaN for neither; a close dated before the start counts as day 0).
    A tier of few entities is drawn towards the share of all entities still open that day, with the weight
    of ``prior`` entities: ``(open + prior * pooled) / (entities + prior)``, so no tier is ruled out by
    chance and every tier weighs 1 while no entity has closed. The scorer weighs each tier by it
    (:func:`given_open`): an open deal of 90 days is less likely lost than a new one, as many losses come
    early."""
    tier = pd.Series(np.asarray(tiers, dtype=object)).astype(str).to_numpy()
    after = pd.to_numeric(pd.Series(np.asarray(closed_after, dtype=object)), errors="coerce").to_numpy("float64")
    after = np.where(np.isnan(after), np.inf, np.maximum(after, 0.0))
    day = np.arange(days + 2)

    def still(values: np.ndarray) -> np.ndarray:  # how many are open on each day (closed on it or later)
        ordered = np.sort(values)
        return len(ordered) - np.searchsorted(ordered, day, side="left")

    pooled = still(after) / max(len(after), 1)
    out = {}
    for code in codes:
        mine = after[tier == code]
        out[code] = [round(float(v), 6) for v in (still(mine) + prior * pooled) / (len(mine) + prior)]
    return out


DAYS_LEFT = "tier_days_left"  # entities on their own clock: days until the chosen tier's window closes


def days_left(tiers, latest: dict[str, float], open_days) -> np.ndarray:
    """Per entity, the days from the as-of date to the last day a win still counts for its ``tiers`` entry
    (``latest[tier]`` - days open: 0 on that day itself); NaN for a tier without such a day (lost, or not won
    within the horizon) or without days open."""
    days = pd.to_numeric(pd.Series(np.asarray(open_days, dtype=object)), errors="coerce").to_numpy("float64")
    last = pd.Series(np.asarray(tiers, dtype=object)).map(latest).to_numpy("float64", na_value=np.nan)
    return last - days


@dataclass
class TierScorer:
    """Tier classifier + segmenter + scheme: feature table in, tiers out (one row per input row)."""

    scheme: TierScheme
    classifier: TierClassifier
    segmenter: Segmenter
    feature_columns: list[str]
    metadata: dict = field(default_factory=dict)
    drift_reference: dict = field(default_factory=dict)
    grade_bands: dict = field(default_factory=dict)
    # entities on their own clock: tier -> the most days from the start within which a win counts for it;
    # the scorer then reads OPEN_DAYS (when given) and rules out the tiers an entity open that long has passed
    latest_open_days: dict = field(default_factory=dict)
    # ... and tier -> the share of its training entities still open after 0, 1, 2, ... days (open_shares)
    still_open: dict = field(default_factory=dict)
    # near-duplicate features (explain.reason_groups): each group is one reason
    reason_groups: list = field(default_factory=list)

    @property
    def input_columns(self) -> list[str]:
        open_days = [OPEN_DAYS] if getattr(self, "latest_open_days", None) else []  # absent from older scorers
        return list(dict.fromkeys([*self.feature_columns, *self.segmenter.columns_, *open_days]))

    def output_columns(self) -> list[str]:
        return ["tier", "score", *[proba_column(c) for c in self.scheme.codes], "segment_id", "segment"]

    def score(
        self, features: pd.DataFrame, lang: str = "en", reasons: bool = False, n_jobs: int | None = None
    ) -> pd.DataFrame:
        """Tiers for every row; ``reasons`` adds the top 3 features for and against each tier in plain words
        in ``lang`` (slower).

        ``n_jobs``: LightGBM threads for this call (default: as trained).
        """
        check_columns(features, [c for c in self.input_columns if c != OPEN_DAYS])  # days open: optional
        empty = len(features) == 0
        k = len(self.scheme.codes)
        proba = np.zeros((0, k)) if empty else self.classifier.predict_proba(features, n_jobs=n_jobs)
        if getattr(self, "latest_open_days", None) and OPEN_DAYS in features.columns and not empty:
            still = getattr(self, "still_open", None)  # absent from older scorers
            proba = given_open(proba, list(self.scheme.codes), self.latest_open_days, features[OPEN_DAYS], still)
        out = pd.DataFrame(index=features.index)
        if ID_COLUMN in features.columns:
            out[ID_COLUMN] = features[ID_COLUMN].astype(str).to_numpy()
        clf = self.classifier
        tiers = np.asarray(clf.classes_)[clf.tier_index(proba)] if not empty else np.array([])
        out["tier"] = pd.array(tiers.astype(str), dtype="object")
        out["score"] = self.scheme.score(proba)
        bands = getattr(self, "grade_bands", None)  # absent from scorers pickled before grade bands existed
        if bands:
            out["grade"] = grade(out["score"].to_numpy(), bands)
        latest = getattr(self, "latest_open_days", None)
        if latest:  # every batch has the column (Spark's schema is the signature's), NaN without days open
            opened = features[OPEN_DAYS] if OPEN_DAYS in features.columns else np.full(len(features), np.nan)
            out[DAYS_LEFT] = days_left(tiers, latest, opened) if not empty else np.array([], dtype=float)
        for i, code in enumerate(self.scheme.codes):
            out[proba_column(code)] = proba[:, i]
        seg = self.segmenter.predict(features) if len(features) else np.array([], dtype=int)
        out["segment_id"] = seg.astype("int64")
        names = {sid: self.segmenter.name(sid, lang) for sid in self.segmenter.names_}
        out["segment"] = pd.array(pd.Series(seg, dtype="int64").map(names).to_numpy(), dtype="object")
        if reasons:  # the column exists even for an empty batch (Spark hands the model empty ones)
            out["reasons"] = pd.array([], dtype="object") if empty else self.reasons(features, tiers, lang, n_jobs)
        return out.reset_index(drop=True)

    def reasons(
        self,
        features: pd.DataFrame,
        tiers,
        lang: str = "en",
        n_jobs: int | None = None,
        currency: str | None = None,
    ) -> list[str]:
        """Per row, the top 3 features for (↑) and against (↓) its tier ``tiers[i]`` in plain words
        (:func:`~leadtier.models.explain.top_reasons`); money with ``currency``, else the one recorded in
        ``metadata["currency"]`` when there is one; attributes by their columns' names as written
        (``metadata["attribute_names"]``), interaction types in the words the config gave them
        (``metadata["type_words"]``), amounts of money (``metadata["money_attributes"]``) with it;
        near-duplicate features (``reason_groups``) as one reason. An entity
        described as of its start plus ``metadata["entity_days"]`` days gets reasons that say so
        (:func:`~leadtier.features.meta.on_day`)."""
        idx = {c: i for i, c in enumerate(self.classifier.classes_)}
        tier_idx = np.array([idx[t] for t in tiers], dtype=int)
        contrib = self.classifier.contributions_for(features, tier_idx, n_jobs=n_jobs)
        meta = self.metadata or {}
        currency = currency or meta.get("currency")
        out = top_reasons(
            contrib,
            features,
            list(self.classifier.feature_names_in_),
            lang=lang,
            currency=currency,
            names=meta.get("attribute_names"),
            words=meta.get("type_words"),
            known=getattr(self.classifier, "categories_", None),
            groups=getattr(self, "reason_groups", None),  # absent from scorers pickled before groups existed
            money=meta.get("money_attributes"),
        )
        return on_day(out, meta["entity_days"], lang) if meta.get("entity_days") else out
