"""The commands and configs in README.md and docs/*.md still work.

Every line of a ```bash block is a command. A quick one (under a minute, no side effects on the
repository) is listed in QUICK and run; every other one is listed in NOT_RUN with the reason. A command
in neither list fails the test, so a new command in the docs is classified when it is added. Every
```yaml block must load as a config once merged into configs/demo.yaml.
"""

from __future__ import annotations

import re
import subprocess

import pytest
import yaml
from leadtier.pipelines.config import load_config

from tests.conftest import DEMO_CONFIG, REPO

DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

QUICK = [
    "make help",
    "make lint",
    ".venv/bin/leadtier config-schema > leadtier.schema.json",
    ".venv/bin/python -m bench --only features_1m_seconds --n-customers 2000",
]
NOT_RUN = {
    "make train": "trains on 20,000 customers (minutes); tests/test_end_to_end.py runs the same stages",
    "make test": "the whole suite: this test is part of it",
    "make test-fast": "runs the unit tests, this one included",
    "make format": "rewrites the repository's files",
    "make predict": "needs the model `make train` registers",
    "make report": "needs the predictions of `make predict`",
    "make worklist": "needs the predictions of `make predict`; tests/test_worklist.py runs the command",
    ".venv/bin/leadtier features --config configs/acme.yaml": "an example config for data that is not here",
    ".venv/bin/leadtier train --config configs/acme.yaml": "an example config for data that is not here",
    ".venv/bin/leadtier train --config configs/online_retail.yaml --data-root ../shared/datasets": "real data "
    "(tests/test_real_data.py, when ../shared/datasets is present)",
    "make train CONFIG=configs/x_education_leads.yaml": "real data, a nested k-fold search (about 5 minutes)",
    ".venv/bin/python -m bench --only olist_funnel_won_auc,b2b_demo_train_seconds,b2b_demo_open_deals_log_loss": (
        "real data and two B2B trainings (minutes); tests/test_bench.py and tests/test_stages.py run the same "
        "code on small data"
    ),
    ".venv/bin/python -m bench --only online_retail_survival_log_loss,olist_funnel_survival_log_loss,"
    "olist_funnel_survival_library_c_index": "real data, several trainings (minutes); tests/test_survival_model.py "
    "runs the survival model through the CLI",
}


def blocks(language: str) -> list[tuple[str, str]]:
    """(file name, text) of every fenced block in ``language`` in the docs."""
    found = []
    for doc in DOCS:
        for text in re.findall(rf"^```{language}\n(.*?)^```", doc.read_text(encoding="utf-8"), re.M | re.S):
            found.append((doc.name, text))
    return found


def commands() -> list[str]:
    lines = [line.split("#")[0].strip() for _, text in blocks("bash") for line in text.splitlines()]
    return list(dict.fromkeys(line for line in lines if line))


def test_every_documented_command_is_classified():
    found = commands()
    assert found, "no ```bash blocks found"
    unknown = [c for c in found if c not in QUICK and c not in NOT_RUN]
    assert not unknown, f"commands in the docs that are neither in QUICK nor NOT_RUN: {unknown}"
    gone = [c for c in [*QUICK, *NOT_RUN] if c not in found]
    assert not gone, f"listed here but no longer in the docs: {gone}"


@pytest.mark.parametrize("command", QUICK)
def test_quick_command_runs(command, tmp_path):
    # the repository's folders are linked into a scratch folder: files a command writes land there
    for entry in REPO.iterdir():
        if entry.name not in {".git", "data", "outputs", "mlflow.db", "mlruns", "mlartifacts"}:
            (tmp_path / entry.name).symlink_to(entry)
    proc = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"{command}\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"


def _merged(base: dict, part: dict) -> dict:
    """``part`` over ``base``; a table under data.tables replaces the base's table of that name whole, and a
    map keyed by tier (worklist.service_days) replaces the base's: its tiers belong to the part's scheme."""
    out = dict(base)
    for key, value in part.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict) and key not in ("tables", "service_days"):
            out[key] = _merged(base[key], value)
        elif key == "tables":
            out[key] = {**base.get(key, {}), **value}
        else:
            out[key] = value
    return out


@pytest.mark.parametrize(("doc", "text"), blocks("yaml"), ids=lambda v: v if v.endswith(".md") else "")
def test_documented_config_loads(doc, text, tmp_path):
    part = yaml.safe_load(text)
    assert isinstance(part, dict), f"{doc}: a yaml block that is not a mapping"
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(_merged(yaml.safe_load(DEMO_CONFIG.read_text()), part)))
    load_config(config)
