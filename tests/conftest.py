"""Shared fixtures: small demo data in a temporary folder and a throw-away MLflow store."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pandas as pd
import pytest
from leadtier.pipelines.config import Config, load_config

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "configs" / "demo.yaml"
AS_OF = dt.date(2026, 6, 30)


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """Run in a temporary folder with its own MLflow store (never the user's mlflow.db)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("LEADTIER_DATA_ROOT", raising=False)
    return tmp_path


def small_config(data_root: Path, **overrides) -> Config:
    cfg = load_config(DEMO_CONFIG, data_root=str(data_root))
    cfg.demo.n_customers = overrides.pop("n_customers", 2500)
    cfg.train.tuning.n_trials = overrides.pop("n_trials", 2)
    cfg.train.tuning.timeout_s = overrides.pop("timeout_s", 60)
    cfg.train.tuning.cv_folds = 2
    cfg.segments.k_range = (3, 4)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return cfg


@pytest.fixture
def demo_data(workdir) -> Config:
    """2,500 synthetic customers written under workdir/data."""
    from leadtier.pipelines.demo_data import write_demo

    cfg = small_config(workdir / "data")
    write_demo(cfg)
    return cfg


def write_tables(
    root: Path,
    customers: pd.DataFrame,
    transactions: pd.DataFrame | None = None,
    interactions: pd.DataFrame | None = None,
    labels: pd.DataFrame | None = None,
) -> None:
    """Write hand-made canonical tables as Parquet under ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    customers.to_parquet(root / "customers.parquet", index=False)
    for name, frame in (("transactions", transactions), ("interactions", interactions), ("labels", labels)):
        if frame is not None:
            frame.to_parquet(root / f"{name}.parquet", index=False)


def env_without_mlflow() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}


def tiny_trained_world(tmp_path_factory, name: str, n_customers: int = 1500, adjust=None):
    """Generator for module fixtures: a tiny model trained on ``n_customers`` demo customers into a
    throw-away MLflow store, with the working directory moved there (MLflow's artifacts land in it).
    ``adjust(cfg)`` changes the config once the demo files are written. Yields (cfg, folder)."""
    from leadtier.pipelines import train
    from leadtier.pipelines.demo_data import write_demo

    work = tmp_path_factory.mktemp(name)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(work)
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
        mp.delenv("MLFLOW_REGISTRY_URI", raising=False)
        cfg = load_config(DEMO_CONFIG, data_root=str(work / "data"))
        cfg.train.tuning.n_trials, cfg.train.tuning.timeout_s, cfg.train.tuning.cv_folds = 1, 10, 2
        cfg.train.tuning.search_space["n_estimators"].low = 20
        cfg.train.tuning.search_space["n_estimators"].high = 40
        cfg.train.min_per_tier = 10
        cfg.segments.k = 3
        write_demo(cfg, n_customers=n_customers)
        if adjust is not None:
            adjust(cfg)
        train.run(cfg)
        yield cfg, work
