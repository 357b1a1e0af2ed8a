"""Tier schemes as data: ordered levels with bilingual names, meanings and follow-up playbook.

A scheme lists its levels best first (A before E, high intent before low). The order drives
quadratic weighted kappa, the ordered decision rule and the 0-100 score.
"""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator


class Checklist(BaseModel):
    """What must be true of one party (the project owner, the installer) for a level, in both languages."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    party_en: str
    party_zh: str
    en: list[str]
    zh: list[str]

    @model_validator(mode="after")
    def _same_items(self) -> Checklist:
        if not self.en or len(self.en) != len(self.zh):
            raise ValueError(
                f"a checklist needs the same items in en and zh, at least one. Got {len(self.en)} en and "
                f"{len(self.zh)} zh items instead"
            )
        return self


class TierLevel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    code: str = Field(description="the value stored in labels and predictions, e.g. 'A'")
    en: str
    zh: str
    meaning_en: str = ""
    meaning_zh: str = ""
    action_en: str = ""
    action_zh: str = ""
    within_days: int | None = Field(
        default=None,
        ge=0,
        description="the days this level's names promise (e.g. 30 for 'closes within 1 month'); an outcome "
        "label's windows must match",
    )
    checklists: dict[str, Checklist] = Field(
        default_factory=dict,
        description="party (e.g. owner, installer) -> what must be true of it at this level",
    )


class TierScheme(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    title_en: str
    title_zh: str
    levels: list[TierLevel]

    @model_validator(mode="after")
    def _distinct(self) -> TierScheme:
        codes = [lv.code for lv in self.levels]
        if len(codes) < 2:
            raise ValueError(f"a scheme needs at least two levels. Got {codes} instead")
        if len(set(codes)) != len(codes):
            raise ValueError(f"level codes must be distinct. Got {codes} instead")
        return self

    @property
    def codes(self) -> list[str]:
        return [lv.code for lv in self.levels]

    def window_mismatches(self, bounds: list[int]) -> list[tuple[int, TierLevel, int | None]]:
        """The levels whose names promise days (``within_days``) that an outcome label's upper bound for
        them (``bounds[i]`` for the i-th level, best first) does not give: (i, level, bound or None)."""
        found = [(i, lv, bounds[i] if i < len(bounds) else None) for i, lv in enumerate(self.levels)]
        return [(i, lv, b) for i, lv, b in found if lv.within_days is not None and b != lv.within_days]

    def level(self, code: str) -> TierLevel:
        for lv in self.levels:
            if lv.code == code:
                return lv
        raise KeyError(f"{code!r} is not a level of this scheme; levels are {self.codes}")

    def label(self, code: str, lang: str) -> str:
        return getattr(self.level(code), "zh" if lang == "zh" else "en")

    def score(self, proba: np.ndarray) -> np.ndarray:
        """0-100 score: expected position on the ordered scale, 100 = surely the best level.

        ``proba`` has one column per level, in scheme order.
        """
        k = len(self.levels)
        weights = np.linspace(1.0, 0.0, k)
        return np.round(100.0 * np.asarray(proba, dtype=float) @ weights, 2)
