"""Open the rendered report in headless chromium: sections present, no script errors, screenshots.

Screenshots of both languages go to ``test-artifacts/`` at the repository root (git-ignored).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from leadtier.pipelines import report
from leadtier.pipelines.config import load_config

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SECTIONS = (
    "summary",
    "playbook",
    "segments",
    "tier-segment",
    "model-card",
    "top-customers",
    "migration",
    "drift",
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=5000",
]

if CHROMIUM is None:  # pragma: no cover - the project's setup installs chromium
    pytest.skip("headless chromium is not installed (`chromium` is not on PATH)", allow_module_level=True)


def _synthetic_context(lang: str) -> dict:
    cfg = load_config(ROOT / "configs" / "demo.yaml")
    scheme = cfg.scheme
    rng = np.random.default_rng(7)
    n = 500
    codes = np.array(scheme.codes)
    tiers = codes[rng.choice(len(codes), n, p=[0.1, 0.15, 0.25, 0.3, 0.2])]
    proba = rng.dirichlet(np.ones(len(codes)), n)
    frame = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(n)],
            "tier": tiers,
            "score": scheme.score(proba),
            "segment_id": rng.integers(0, 3, n),
            "model_version": "3",
            "as_of": pd.Timestamp("2026-06-30").date(),
            "email": "planted@example.com",
            "reasons": "+ many quote requests in 30 days; - no purchase in 180 days",
        }
    )
    for i, c in enumerate(codes):
        frame[f"proba_{c}"] = proba[:, i]
    names = {
        0: {"en": "recent buyers, frequent, high spend", "zh": "近期购买、高频、高消费"},
        1: {"en": "quiet, lapsed buyers", "zh": "互动少、久未购买"},
        2: {"en": "highly engaged, new", "zh": "互动活跃、新客户"},
    }
    profile = pd.DataFrame(
        {
            "size": [100, 250, 150],
            "rfm_recency_days": [14, 320, 60],
            "rfm_frequency": [11, 0, 1],
            "rfm_monetary": [10055.0, 0.0, 800.0],
            "ix_count_30d": [2, 0, 9],
            "cust_tenure_days": [900, 700, 40],
        }
    )
    metrics = {
        "model": {"macro_f1": 0.62, "balanced_accuracy": 0.62, "qwk": 0.75, "log_loss": 1.35},
        "logreg": {"macro_f1": 0.61, "balanced_accuracy": 0.62, "qwk": 0.72, "log_loss": 1.03},
        "majority": {"macro_f1": 0.08, "balanced_accuracy": 0.2, "qwk": 0.0, "log_loss": 1.59},
    }
    migration = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "previous_tier": ["B", "A", None, "C"],
            "tier": ["A", "C", "B", None],
            "change": ["upgraded", "downgraded", "new", "gone"],
        }
    )
    drift = pd.DataFrame({"feature": ["rfm_monetary", "ix_count_30d"], "psi": [0.04, 0.27], "warning": [False, True]})
    return report.build_context(
        frame,
        scheme,
        names,
        profile,
        metrics,
        {"name": "leadtier-demo", "version": "3", "train_as_of": "2026-06-30", "run_id": "r1"},
        revenue=pd.Series(rng.lognormal(6, 2, n) * (rng.uniform(size=n) < 0.4)),
        lang=lang,
        top_n=5,
        migration=migration,
        drift=drift,
    )


def _chromium(args: list[str], user_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={user_dir}", *args],
        capture_output=True,
        text=True,
        timeout=25,
        check=False,
    )


@pytest.fixture(scope="module", params=["en", "zh"])
def rendered(request, tmp_path_factory):
    lang = request.param
    tmp = tmp_path_factory.mktemp(f"report_{lang}")
    html_path = tmp / f"report_{lang}.html"
    html_path.write_text(report.render(_synthetic_context(lang), lang), encoding="utf-8")
    dom = _chromium(["--dump-dom", html_path.as_uri()], tmp / "profile-dom")
    return lang, html_path, dom, tmp


def test_dom_has_every_section_and_no_script_errors(rendered):
    lang, html_path, dom, _ = rendered
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert f'<html lang="{lang}"' in html
    for section in SECTIONS:
        assert re.search(rf'<section id="{section}"', html), f"section #{section} missing from the DOM"
    body = re.search(r"<body([^>]*)>", html).group(1)
    assert 'data-rendered="1"' in body, "the inline script did not run"
    assert f'data-sections="{len(SECTIONS)}"' in body
    root = re.search(r"<html([^>]*)>", html).group(1)
    assert "data-js-errors" not in root, f"the page caught a script error: <html{root}>"
    page_lines = [
        line for line in dom.stderr.splitlines() if ("CONSOLE" in line and html_path.name in line) or "Uncaught" in line
    ]
    assert not page_lines, "console output from the page:\n" + "\n".join(page_lines)
    assert "planted@example.com" not in html
    assert html.count("<svg") >= 3  # tier bars, revenue concentration, one tier-mix bar per segment


def test_screenshot(rendered):
    lang, html_path, _, tmp = rendered
    ARTIFACTS.mkdir(exist_ok=True)
    png = ARTIFACTS / f"report_{lang}.png"
    png.unlink(missing_ok=True)
    shot = _chromium(["--window-size=1280,2000", f"--screenshot={png}", html_path.as_uri()], tmp / "profile-shot")
    assert shot.returncode == 0, shot.stderr[-2000:]
    assert png.is_file(), f"chromium wrote no screenshot to {png}"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 10_000
