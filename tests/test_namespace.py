"""One installed namespace: ``leadtier.*`` imports, the generic names do not, and old models still load."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

LEGACY = Path(__file__).resolve().parent / "fixtures" / "legacy_model_v0"


def _python_outside_repo(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in this interpreter from a folder outside the repository (no repo root on sys.path)."""
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_the_packages_import_under_leadtier_and_not_under_generic_names(tmp_path):
    code = (
        "import importlib.util, leadtier.models, leadtier.features, leadtier.pipelines.cli\n"
        "print([importlib.util.find_spec(n) is None for n in ('models', 'pipelines', 'features')])\n"
    )
    res = _python_outside_repo(code, tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[True, True, True]"


def test_a_model_pickled_under_the_old_package_names_loads_and_scores_as_it_did():
    """The fixture was logged by the code before the move (classes ``models.scorer.TierScorer`` etc.)."""
    from leadtier.pipelines.tracking import load_model

    pickled = (LEGACY / "model" / "artifacts" / "scorer.joblib").read_bytes()
    assert b"models.scorer" in pickled and b"leadtier" not in pickled  # really the old names
    model = load_model(str(LEGACY / "model"))
    features = pd.read_parquet(LEGACY / "features.parquet")
    expected = pd.read_parquet(LEGACY / "expected.parquet")
    got = model.predict(features)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), expected, check_dtype=False)
    assert type(model.unwrap_python_model().scorer).__module__ == "leadtier.models.scorer"


def test_the_old_names_exist_only_inside_the_legacy_block(tmp_path):
    code = (
        "import sys\n"
        "from leadtier.pipelines.legacy_names import old_module_names\n"
        "with old_module_names():\n"
        "    import models.scorer\n"
        "    inside = sys.modules['models.scorer'] is sys.modules['leadtier.models.scorer']\n"
        "try:\n"
        "    import models\n"
        "    after = 'importable'\n"
        "except ModuleNotFoundError:\n"
        "    after = 'gone'\n"
        "print(inside, after)\n"
    )
    res = _python_outside_repo(code, tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "True gone"


def test_a_legacy_load_leaves_the_leadtier_modules_as_they_were():
    import leadtier.models.scorer
    import leadtier.pipelines
    from leadtier.pipelines.legacy_names import old_module_names

    specs = (leadtier.pipelines.__spec__, leadtier.models.scorer.__spec__)
    with old_module_names():
        import models.scorer  # noqa: F401
        import pipelines.mlflow_model  # noqa: F401
    assert (leadtier.pipelines.__spec__, leadtier.models.scorer.__spec__) == specs
