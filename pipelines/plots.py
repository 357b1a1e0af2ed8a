"""Figures of a training run, logged to MLflow as PNGs: confusion, reliability, importance, K selection."""

from __future__ import annotations

import contextlib
import functools
import logging
import warnings

import numpy as np
import pandas as pd
from matplotlib import font_manager, rc_context
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve

# fonts with Chinese glyphs, the first installed one used where DejaVu Sans has no glyph
CJK_FONTS = (
    "Noto Sans CJK SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "Heiti SC",
)


def any_script(make):
    """``make`` builds its figure with text in any script: DejaVu Sans, then (glyph by glyph) the first
    installed font of ``CJK_FONTS``. Without one, matplotlib warns and draws Chinese names as boxes."""

    @functools.wraps(make)
    def wrapped(*args, **kwargs) -> Figure:
        with rc_context({"font.family": ["DejaVu Sans", *_cjk_font()]}):
            return make(*args, **kwargs)

    return wrapped


@contextlib.contextmanager
def glyphs_missing_said_once(log: logging.Logger):
    """Matplotlib warns once per character a label has that no installed font draws (16 warnings for a
    few Chinese feature names); within this block they become one warning saying what to install. Other
    warnings pass through unchanged."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    missing = [w for w in caught if "missing from font" in str(w.message)]
    for w in caught:
        if w not in missing:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if missing:
        log.warning(
            "plots: %d character(s) of the labels are in no installed font and are drawn as boxes; install a "
            "font with Chinese glyphs (Debian: fonts-wqy-microhei, as make browser does)",
            len({str(w.message) for w in missing}),
        )


@functools.cache
def _cjk_font() -> list[str]:
    """[the first installed font of ``CJK_FONTS``], or []; fonts installed after matplotlib cached its font
    list (``make browser`` installs one) are added first."""
    known = {f.fname for f in font_manager.fontManager.ttflist}
    for path in font_manager.findSystemFonts():
        if path not in known:
            with contextlib.suppress(Exception):  # a file FreeType cannot read: matplotlib skips it too
                font_manager.fontManager.addfont(path)
    installed = {f.name for f in font_manager.fontManager.ttflist}
    return [n for n in CJK_FONTS if n in installed][:1]


@any_script
def confusion(cm: pd.DataFrame, title: str) -> Figure:
    """A confusion matrix (true tier by row, predicted by column) with the counts written in."""
    fig = Figure(figsize=(5.5, 4.5))
    ax = fig.subplots()
    ax.imshow(cm.to_numpy(), cmap="Blues")
    ax.set_xticks(range(len(cm.columns)), cm.columns)
    ax.set_yticks(range(len(cm.index)), cm.index)
    ax.set_xlabel("predicted tier")
    ax.set_ylabel("true tier")
    ax.set_title(title)
    vmax = cm.to_numpy().max() or 1
    for i in range(cm.shape[0]):
        for j in range(cm.shape[1]):
            v = cm.iat[i, j]
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > vmax / 2 else "black")
    fig.tight_layout()
    return fig


@any_script
def reliability(y_true: list[str], proba: np.ndarray, levels: list[str]) -> Figure:
    """Reliability diagram: top-label confidence vs accuracy, and one curve per tier (one-vs-rest)."""
    fig = Figure(figsize=(10, 4))
    axes = fig.subplots(1, 2)
    y = np.asarray(y_true, dtype=object)
    correct = (np.asarray(levels, dtype=object)[proba.argmax(axis=1)] == y).astype(int)
    frac, mean = calibration_curve(correct, proba.max(axis=1), n_bins=10, strategy="quantile")
    axes[0].plot(mean, frac, marker="o", label="model")
    axes[0].set_title("top-label reliability")
    for i, code in enumerate(levels):
        if (y == code).any() and (y != code).any():
            f, m = calibration_curve((y == code).astype(int), proba[:, i], n_bins=8, strategy="quantile")
            axes[1].plot(m, f, marker=".", label=str(code))
    axes[1].set_title("per tier (one vs rest)")
    for ax in axes:
        ax.plot([0, 1], [0, 1], ls="--", color="grey")
        ax.set_xlabel("predicted probability")
        ax.set_ylabel("observed frequency")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@any_script
def importance(imp: pd.Series, top: int = 20) -> Figure:
    """The ``top`` features by LightGBM gain, largest at the top."""
    fig = Figure(figsize=(6.5, 5.5))
    ax = fig.subplots()
    s = imp.head(top)[::-1]
    ax.barh(s.index, s.to_numpy(), color="#3b6ea5")
    ax.set_xlabel("total gain")
    ax.set_title(f"Top {min(top, len(imp))} features (LightGBM gain)")
    fig.tight_layout()
    return fig


@any_script
def k_selection(scores: list[dict]) -> Figure:
    """Silhouette, Calinski-Harabasz and inertia for each K tried."""
    df = pd.DataFrame(scores)
    fig = Figure(figsize=(11, 3.2))
    axes = fig.subplots(1, 3)
    for ax, col in zip(axes, ["silhouette", "calinski_harabasz", "inertia"], strict=True):
        ax.plot(df["k"], df[col], marker="o")
        ax.set_xticks(df["k"])  # whole numbers of clusters only
        ax.set_xlabel("k")
        ax.set_title(col)
    fig.tight_layout()
    return fig
