"""The champion gate's decision: whether a new model takes the place of the current champion.

Pure logic over two models' metrics and scores on the same evaluation rows; reading the champion
from the registry and setting the alias is :mod:`leadtier.pipelines.tracking`'s job. The wording of
the reasons names the config keys (``train.gate.min_gain``, ``train.gate.interval``, ``train.floors``)
that a :class:`GatePolicy` is built from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from leadtier.models.frame import ID_COLUMN
from leadtier.models.metrics import HIGHER_IS_BETTER, paired_bootstrap

CHAMPION, CHALLENGER = "champion", "challenger"
MIN_UNSEEN_ROWS = 30  # fewer evaluation rows unseen by the champion than this: compare on all rows


@dataclass(frozen=True)
class GatePolicy:
    """What a new model must show to become champion.

    ``primary``: the metric compared; ``codes``: the tier levels, best first; ``min_gain``: the margin
    the primary metric must improve by (in its own units); ``interval``: also require the whole 95 %
    paired-bootstrap interval of the gain above ``min_gain``; ``resamples`` and ``seed``: that bootstrap
    (0 resamples: no interval); ``floors``: metric -> the least a new model must reach at all.
    """

    primary: str
    codes: tuple[str, ...]
    min_gain: float = 0.0
    interval: bool = False
    resamples: int = 0
    seed: int = 0
    floors: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.primary not in HIGHER_IS_BETTER:
            raise ValueError(f"primary must be one of {sorted(HIGHER_IS_BETTER)}. Got {self.primary!r} instead")
        if self.min_gain < 0:
            raise ValueError(f"min_gain must be 0 or more. Got {self.min_gain} instead")
        if self.resamples < 0:
            raise ValueError(f"resamples must be 0 or more. Got {self.resamples} instead")


@dataclass
class Paired:
    """Evaluation rows both the new model and the champion scored: the true tiers and each one's
    (probabilities, predicted tiers), for a paired interval of the gain."""

    tiers: list[str]
    new: tuple[np.ndarray, list[str]]
    champion: tuple[np.ndarray, list[str]]


@dataclass
class Comparison:
    """The champion's metrics on the evaluation rows, and how they were obtained."""

    champion: dict[str, float]
    note: str = ""  # how they were obtained, when that needs saying
    new: dict[str, float] | None = None  # the new model's on the same rows, when fewer than all
    paired: Paired | None = None
    unpaired: str = ""  # why ``paired`` is None


@dataclass
class GateDecision:
    alias: str
    reasons: list[str] = field(default_factory=list)
    champion_version: str | None = None
    champion_metrics: dict[str, float] = field(default_factory=dict)


def below_floors(policy: GatePolicy, new_metrics: Mapping[str, float]) -> list[str]:
    """One line per floor of ``policy`` the new model's metrics do not reach (a metric it lacks does not reach it)."""
    return [
        f"{m} {new_metrics.get(m, float('nan')):.4f} is below the floor {floor}"
        for m, floor in policy.floors.items()
        if floor is not None and new_metrics.get(m, float("-inf")) < floor
    ]


def seen_rows(train_keys: pd.DataFrame, eval_keys: pd.DataFrame, by_customer: bool) -> np.ndarray:
    """Which ``eval_keys`` rows (customer id, snapshot) a model fitted on ``train_keys`` has seen.

    ``by_customer``: labels from people stay with the customer across snapshots, so any snapshot of a
    customer counts; otherwise (outcome labels, one per snapshot) only the same customer and snapshot.
    """
    ids = eval_keys[ID_COLUMN].astype(str)
    if by_customer:
        return ids.isin(set(train_keys["customer_id"].astype(str))).to_numpy()
    pairs = pd.MultiIndex.from_arrays([ids, pd.to_datetime(eval_keys["snapshot"])])
    known = pd.MultiIndex.from_arrays([train_keys["customer_id"].astype(str), pd.to_datetime(train_keys["snapshot"])])
    return np.asarray(pairs.isin(known))


def rows_to_compare(
    champion_keys: pd.DataFrame | None,
    eval_keys: pd.DataFrame,
    new_train_keys: pd.DataFrame | None,
    by_customer: bool,
) -> tuple[np.ndarray, str]:
    """Which evaluation rows to compare both models on, and a note when that is not simply all of them.

    Rows only the champion was fitted on are left out (rows both were fitted on favour neither), unless
    fewer than ``MIN_UNSEEN_ROWS`` would be left; ``champion_keys`` None: its training rows are unknown.
    """
    n = len(eval_keys)
    keep = np.ones(n, dtype=bool)
    if champion_keys is None:
        return keep, (
            "the champion's training rows were not logged: it may have trained on some evaluation rows, "
            "which favours it"
        )
    only_champion = seen_rows(champion_keys, eval_keys, by_customer)
    if new_train_keys is not None:
        only_champion = only_champion & ~seen_rows(new_train_keys, eval_keys, by_customer)
    left = n - int(only_champion.sum())
    if not only_champion.any():
        return keep, ""
    if left < MIN_UNSEEN_ROWS:
        return keep, (
            f"the champion trained on {n - left} of the {n} evaluation rows; fewer than {MIN_UNSEEN_ROWS} "
            "are left, so both are compared on all of them, which favours the champion"
        )
    return ~only_champion, f"compared on the {left} of {n} evaluation rows the champion did not train on"


def gain_interval(policy: GatePolicy, paired: Paired | None) -> dict[str, float] | None:
    """The new model's gain over the champion in the primary metric on the paired rows, with its 95 %
    interval; None without paired rows or resamples, or when too few draws define the metric."""
    if paired is None or not policy.resamples:
        return None
    gains = paired_bootstrap(
        paired.tiers,
        {"new": paired.new, "champion": paired.champion},
        "new",
        list(policy.codes),
        [policy.primary],
        n_resamples=policy.resamples,
        seed=policy.seed,
    )
    return gains.get("champion", {}).get(policy.primary)


def _metric_lines(primary: str, new: Mapping[str, float], old: Mapping[str, float], version) -> list[str]:
    candidates = dict.fromkeys([primary, "macro_f1", "qwk", "balanced_accuracy", "log_loss"])
    return [
        f"{m}: new {new[m]:.4f} vs champion v{version} {old[m]:.4f} ({'higher' if HIGHER_IS_BETTER[m] else 'lower'} "
        "is better)"
        for m in candidates
        if m in old and m in new
    ]


def _interval_line(policy: GatePolicy, comp: Comparison, interval: dict[str, float] | None) -> str | None:
    primary = policy.primary
    if interval is not None:
        return (
            f"gain in {primary} over the champion on the {len(comp.paired.tiers)} evaluation rows both scored: "
            f"{interval['gain']:+.4f} [95 % interval {interval['low']:+.4f}, {interval['high']:+.4f}]"
        )
    if not policy.interval:
        return None
    why = comp.unpaired or (
        f"{primary} is undefined on most bootstrap draws of the {len(comp.paired.tiers)} rows both scored"
        if comp.paired is not None
        else "no rows scored by both models"
    )
    return f"no interval for the gain ({why}), so train.gate.interval compares point estimates"


def verdict(
    policy: GatePolicy, comp: Comparison, new_metrics: Mapping[str, float], version, decision: GateDecision
) -> tuple[str, dict[str, float]]:
    """The alias the new model earns against champion ``version``, with the reasons added to ``decision``
    (the verdict first); returns (alias, the champion's metrics)."""
    old, primary = comp.champion, policy.primary
    new_metrics = comp.new or new_metrics
    decision.reasons.extend(_metric_lines(primary, new_metrics, old, version))
    if comp.note:
        decision.reasons.append(comp.note)
    n, o = new_metrics[primary], old[primary]
    gain = n - o if HIGHER_IS_BETTER[primary] else o - n
    interval = gain_interval(policy, comp.paired)
    line = _interval_line(policy, comp, interval)
    if line is not None:
        decision.reasons.append(line)
    margin = f" by more than train.gate.min_gain {policy.min_gain:g}" if policy.min_gain else ""
    if not np.isfinite(gain):
        why = f"kept champion v{version}: {primary} is undefined (new {n:.4f}, champion {o:.4f})"
    elif gain <= 0:
        why = f"kept champion v{version}: new {primary} {n:.4f} does not beat {o:.4f}"
    elif gain <= policy.min_gain:
        why = f"kept champion v{version}: new {primary} {n:.4f} beats {o:.4f} by {gain:.4f}, not{margin}"
    elif policy.interval and interval is not None and interval["low"] <= policy.min_gain:
        why = (
            f"kept champion v{version}: new {primary} {n:.4f} beats {o:.4f}, but the 95 % interval of the gain "
            f"[{interval['low']:+.4f}, {interval['high']:+.4f}] does not lie above {policy.min_gain:g}: it may be "
            "chance (train.gate.interval)"
        )
    else:
        sure = " with its whole 95 % interval" if policy.interval and interval is not None else ""
        decision.reasons.insert(0, f"promoted: new {primary} {n:.4f} beats {o:.4f}{margin}{sure}")
        return CHAMPION, old
    decision.reasons.insert(0, why)
    return CHALLENGER, old
