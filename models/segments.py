"""Exploratory customer segments: K-means on log-scaled behaviour features, named by where each segment's
median customer stands among all customers."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import pandas as pd
from leadtier.features.meta import name_word
from leadtier.models.frame import float_matrix
from scipy.optimize import linear_sum_assignment
from sklearn.base import BaseEstimator, ClusterMixin
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.metrics import calinski_harabasz_score, silhouette_score
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

# Profile words: (feature column, word when the segment is high, word when low), in en and zh.
# Recency columns are "days since", so a low value means recent.
PROFILE_WORDS: list[tuple[str, tuple[str, str], tuple[str, str]]] = [
    ("rfm_recency_days", ("lapsed buyers", "久未购买"), ("recent buyers", "近期购买")),
    ("rfm_frequency", ("frequent", "高频"), ("infrequent", "低频")),
    ("rfm_monetary", ("high spend", "高消费"), ("low spend", "低消费")),
    ("ix_count_30d", ("highly engaged", "互动活跃"), ("quiet", "互动少")),
    ("ix_recency_days", ("gone silent", "久未互动"), ("recently in touch", "近期有互动")),
    ("cust_tenure_days", ("long-standing", "老客户"), ("new", "新客户")),
]

# A "days since" column is empty for a customer who never bought (never interacted): a segment made mostly
# of them is named so, and the low words these imply are left out of its name.
NEVER_WORDS: dict[str, tuple[tuple[str, str], tuple[str, ...]]] = {
    "rfm_recency_days": (("never bought", "从未购买"), ("rfm_frequency", "rfm_monetary")),
    "ix_recency_days": (("never in touch", "从未互动"), ("ix_count_30d",)),
}


def is_days_since(column: str) -> bool:
    """A column whose missing value means "never" (longer ago than anyone), not "unknown"."""
    return column.endswith("recency_days")


def segment_medians(X: pd.DataFrame, columns: Sequence[str], labels) -> pd.DataFrame:
    """Median of each column per segment ``labels``; in a "days since" column a missing value counts as
    longer ago than any (never), so a segment mostly of never-buyers gets NaN, not the days of its few buyers."""
    values = X[list(columns)].apply(pd.to_numeric, errors="coerce")
    days_since = [c for c in values.columns if is_days_since(c)]
    values[days_since] = values[days_since].fillna(np.inf)
    medians = values.groupby(np.asarray(labels)).median()
    return medians.replace([np.inf, -np.inf], np.nan)


NAMED_AT = 0.2  # a segment is named by a column when its median lies in the top or bottom 30 % of customers


def segment_positions(X: pd.DataFrame, columns: Sequence[str], labels) -> pd.DataFrame:
    """Where each segment's median customer stands among all customers, per column: its mid-rank share
    (the share below it plus half the share equal to it) minus one half, from -0.5 (below everyone) to +0.5
    (above everyone). Ranks, not means: a segment of modest spenders is not "high spend" because a mass of
    customers who never bought pulls the average down. In a "days since" column a missing value counts as
    longer ago than any (never); a segment without any value elsewhere stands at 0. The columns of
    :data:`NEVER_WORDS` and those they imply (spend and purchases for "never bought") rank a segment among
    the customers who did buy (were in touch): among buyers, one that bought twice long ago is a lapsed,
    infrequent buyer, whatever the share of customers who never bought."""
    values = X[list(columns)].apply(pd.to_numeric, errors="coerce")
    days_since = [c for c in values.columns if is_days_since(c)]
    ever = {c: values[c].notna() for c in days_since if c in NEVER_WORDS}
    among = {c: ever[d] for d, (_, implied) in NEVER_WORDS.items() if d in ever for c in (d, *implied)}
    values[days_since] = values[days_since].fillna(np.inf)
    medians = values.groupby(np.asarray(labels)).median()
    out = pd.DataFrame(0.0, index=medians.index, columns=medians.columns)
    for c in medians.columns:
        reference = values[c][among[c]] if c in among else values[c]
        v = np.sort(reference.dropna().to_numpy(dtype=float))
        m = medians[c].to_numpy(dtype=float)
        if not len(v):
            continue
        below = np.searchsorted(v, m, side="left")
        equal = np.searchsorted(v, m, side="right") - below
        out[c] = np.where(np.isnan(m), 0.0, (below + 0.5 * equal) / len(v) - 0.5)
    return out


_WINDOWED = re.compile(r"^(ix|rfm)_(.+)_(\d+)d$")


def _window_words(column: str, type_words: dict | None = None) -> tuple[tuple[str, str], tuple[str, str]] | None:
    """(en, zh) words, high and low, for a count or amount over the last days ('more meetings (90 d)',
    '近 90 天会议多'), used only to tell apart segments whose names would otherwise be alike; None for
    any other column. ``type_words``: ``features.type_words``, the interaction types' words."""
    m = _WINDOWED.match(column)
    if not m or m.group(2).endswith(("trend", "prev")):
        return None
    family, what, days = m.groups()
    if family == "rfm":
        if what not in ("frequency", "amount"):
            return None
        en, zh = ("purchases", "购买") if what == "frequency" else ("spend", "消费")
    elif what == "count":
        en, zh = "interactions", "互动"
    elif what.startswith(("duration", "distinct")):
        return None
    else:
        en, zh = name_word(what, "en", 2, type_words), name_word(what, "zh", None, type_words)
    less = "less" if en == "spend" else "fewer"
    return (f"more {en} ({days} d)", f"近 {days} 天{zh}多"), (f"{less} {en} ({days} d)", f"近 {days} 天{zh}少")


def _words(column: str, words: dict) -> tuple[tuple[str, str], tuple[str, str]]:
    """(en, zh) for a segment far above and far below the average in ``column``."""
    if column in words:
        return words[column]
    name = column.removeprefix("cust_").replace("_", " ")
    return (f"high {name}", f"{name}高"), (f"low {name}", f"{name}低")


def _told_apart(
    parts: dict[int, list[tuple[str, str]]], spare: dict[int, list[tuple[str, str]]]
) -> dict[int, list[tuple[str, str]]]:
    """``parts`` (each segment's words) where segments said alike get, each, the first of their ``spare``
    words (the next columns where they are far from the average customer) that no other of them has:
    'frequent, high spend, recent buyers' twice becomes '..., long-standing' and '..., new'."""
    groups: dict[frozenset, list[int]] = {}
    for sid, said in parts.items():
        groups.setdefault(frozenset(said), []).append(sid)
    out = dict(parts)
    for sids in (g for g in groups.values() if len(g) > 1):
        for sid in sids:
            others = {w for o in sids if o != sid for w in spare[o]}
            extra = next((w for w in spare[sid] if w not in others), None)
            out[sid] = parts[sids[0]] + ([extra] if extra else [])  # the first one's wording, as below
    return out


def _transform_columns(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Signed log1p of every column: money and counts are heavily skewed."""
    x = float_matrix(frame, list(columns))
    return pd.DataFrame(np.sign(x) * np.log1p(np.abs(x)), columns=list(columns), index=frame.index)


class Segmenter(ClusterMixin, BaseEstimator):
    """K-means with k fixed or chosen by silhouette within ``k_range``.

    Rule for k: the highest silhouette (on a seeded sample of at most ``silhouette_sample``
    rows); Calinski-Harabasz and inertia are recorded in ``k_scores_`` for the elbow plot.
    ``type_words`` (``features.type_words``) names interaction types in segment names.
    """

    def __init__(
        self,
        columns: Sequence[str] | None = None,
        k: int | None = None,
        k_range: tuple[int, int] = (3, 8),
        minibatch_above: int = 200_000,
        silhouette_sample: int = 4_000,
        random_state: int = 0,
        type_words: dict | None = None,
    ):
        self.columns = columns
        self.k = k
        self.k_range = k_range
        self.minibatch_above = minibatch_above
        self.silhouette_sample = silhouette_sample
        self.random_state = random_state
        self.type_words = type_words

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns_ if c not in X.columns]
        if missing:
            raise ValueError(f"segmentation needs columns {missing}, absent from the feature table")
        t = _transform_columns(X, self.columns_).fillna(self.fill_)
        return self.scaler_.transform(t.to_numpy())

    def _kmeans(self, k: int, n: int):
        if n > self.minibatch_above:
            return MiniBatchKMeans(n_clusters=k, random_state=self.random_state, n_init=3, batch_size=4096)
        return KMeans(n_clusters=k, random_state=self.random_state, n_init=4)

    def fit(self, X: pd.DataFrame, y=None, previous: Segmenter | None = None) -> Segmenter:
        if not isinstance(X, pd.DataFrame):
            raise TypeError(f"X must be a pandas DataFrame. Got {type(X).__name__} instead")
        cols = (
            list(self.columns)
            if self.columns is not None
            else [c for c in X.columns if c != "customer_id" and pd.api.types.is_numeric_dtype(X[c])]
        )
        cols = [c for c in cols if X[c].notna().any() and X[c].nunique(dropna=True) > 1]
        if not cols:
            raise ValueError("segmentation found no numeric column with more than one distinct value")
        lo, hi = self.k_range
        if self.k is None and lo > hi:
            raise ValueError(f"k_range must be (low, high) with low <= high. Got {self.k_range} instead")
        self.columns_ = cols
        t = _transform_columns(X, cols)
        # Never-seen recency ("days since" is NULL) means "longer ago than anyone": fill with max.
        self.fill_ = pd.Series({c: (t[c].max() if is_days_since(c) else t[c].median()) for c in cols})
        self.scaler_ = StandardScaler().fit(t.fillna(self.fill_).to_numpy())
        Z = self.scaler_.transform(t.fillna(self.fill_).to_numpy())
        n = len(Z)
        candidates = [self.k] if self.k is not None else list(range(lo, hi + 1))
        candidates = [k for k in candidates if 2 <= k < n]
        if not candidates:
            raise ValueError(f"cannot make {self.k or self.k_range} segments from {n} customers")
        rng = np.random.default_rng(self.random_state)
        sample = rng.choice(n, size=min(n, self.silhouette_sample), replace=False)
        self.k_scores_ = []
        models = {}
        for k in candidates:
            km = self._kmeans(k, n).fit(Z)
            labels = km.labels_
            sil = silhouette_score(Z[sample], labels[sample]) if len(set(labels[sample])) > 1 else -1.0
            ch = calinski_harabasz_score(Z[sample], labels[sample]) if len(set(labels[sample])) > 1 else 0.0
            self.k_scores_.append(
                {"k": k, "silhouette": float(sil), "calinski_harabasz": float(ch), "inertia": float(km.inertia_)}
            )
            models[k] = km
        best = max(self.k_scores_, key=lambda r: (r["silhouette"], -r["k"]))
        self.n_clusters_ = best["k"]
        self.model_ = models[self.n_clusters_]
        labels = self.model_.labels_
        if previous is not None:
            labels = self._align_to(previous, labels)
        self.profile_ = self._profile(X, labels)
        never = X[[c for c in cols if c in NEVER_WORDS]].isna().groupby(labels).mean()
        ids = sorted(getattr(self, "relabel_", {i: i for i in range(self.n_clusters_)}).values())
        positions = segment_positions(X, cols, labels).reindex(ids, fill_value=0.0)  # an empty cluster: 'typical'
        self.names_ = self._names(positions, never)
        return self

    def _align_to(self, previous: Segmenter, labels: np.ndarray) -> np.ndarray:
        """Renumber clusters so each matches the nearest centroid of ``previous`` (stable names)."""
        shared = [c for c in self.columns_ if c in getattr(previous, "columns_", [])]
        if not shared:
            return labels
        mine = pd.DataFrame(self.model_.cluster_centers_, columns=self.columns_)[shared].to_numpy()
        theirs = pd.DataFrame(previous.model_.cluster_centers_, columns=previous.columns_)[shared].to_numpy()
        cost = ((mine[:, None, :] - theirs[None, :, :]) ** 2).sum(axis=2)
        rows, cols = linear_sum_assignment(cost)
        order = {int(r): int(c) for r, c in zip(rows, cols, strict=True)}
        nxt = max(order.values(), default=-1) + 1
        for r in range(len(mine)):
            if r not in order:
                order[r] = nxt
                nxt += 1
        self.relabel_ = order
        return np.array([order[int(v)] for v in labels])

    def _profile(self, X: pd.DataFrame, labels: np.ndarray) -> pd.DataFrame:
        prof = segment_medians(X, self.columns_, labels)
        prof.insert(0, "size", pd.Series(labels).value_counts().sort_index().to_numpy())
        prof.index.name = "segment_id"
        return prof

    def _names(self, positions: pd.DataFrame, never: pd.DataFrame | None = None) -> dict[int, dict[str, str]]:
        """Names from where each segment stands among all customers (``positions``: segment x column, from
        :func:`segment_positions`); ``never``: per segment, the share of its customers without a value in
        each column of :data:`NEVER_WORDS` (more than half: named "never ...")."""
        never = pd.DataFrame() if never is None else never
        words = {c: (hi, lo) for c, hi, lo in PROFILE_WORDS}
        events = any(c.startswith(("rfm_", "ix_")) for c in positions.columns)
        parts: dict[int, list[tuple[str, str]]] = {}
        spare: dict[int, list[tuple[str, str]]] = {}  # the words of the next columns that part it, in order
        for sid, row in positions.sort_index().iterrows():
            # the (at most three) columns where it stands furthest from the middle customer: with an event
            # log, those of the purchase and interaction features that have words; without one, any column
            far = [c for c in row.abs().sort_values(ascending=False, kind="stable").index if abs(row[c]) >= NAMED_AT]
            named = [c for c in far if c in words] if events else far
            nevers = [c for c in named[:3] if c in never.columns and row[c] > 0 and never[c].get(sid, 0.0) > 0.5]
            implied = {x for c in nevers for x in NEVER_WORDS[c][1]}  # 'never bought' says 'low spend' already
            said = [
                NEVER_WORDS[c][0] if c in nevers else _words(c, words)[0] if row[c] > 0 else _words(c, words)[1]
                for c in named
                if c not in implied
            ]
            # alike names are told apart by the next worded columns, then by the counts of recent days
            windowed = [(c, _window_words(c, self.type_words)) for c in far if c not in named]
            extra = [w[0] if row[c] > 0 else w[1] for c, w in windowed if w is not None]
            parts[int(sid)], spare[int(sid)] = said[:3] or [("typical", "普通")], said[3:] + extra
        parts = _told_apart(parts, spare)
        # Distinct names: segments described by the same words, in whatever order, share the first one's
        # wording and are numbered, so that a reader sees two segments alike rather than two orders.
        first: dict[frozenset, list[tuple[str, str]]] = {}
        seen: dict[frozenset, int] = {}
        names: dict[int, dict[str, str]] = {}
        for sid in sorted(parts):
            key = frozenset(parts[sid])
            words_of = first.setdefault(key, parts[sid])
            seen[key] = seen.get(key, 0) + 1
            suffix = f" ({seen[key]})" if seen[key] > 1 else ""
            names[sid] = {
                "en": ", ".join(p[0] for p in words_of) + suffix,
                "zh": "、".join(p[1] for p in words_of) + suffix,
            }
        return names

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "model_")
        labels = self.model_.predict(self._matrix(X))
        relabel = getattr(self, "relabel_", None)
        if relabel:
            labels = np.array([relabel[int(v)] for v in labels])
        return labels

    def name(self, segment_id: int, lang: str = "en") -> str:
        return self.names_[int(segment_id)]["zh" if lang == "zh" else "en"]
