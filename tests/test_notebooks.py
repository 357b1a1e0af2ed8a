"""Execute the example notebooks end to end: tiny demo data, a throw-away MLflow store, a temp folder.

Each notebook runs in a fresh kernel started with this interpreter (a temporary kernelspec on
``JUPYTER_PATH`` pins it, so a global ``python3`` kernel of another Python cannot be picked up),
with the temporary folder as working directory and ``MLFLOW_TRACKING_URI`` pointing into it.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
CELL_TIMEOUT_S = 300
PERSONAL_COLUMNS = ("contact_name", "email", "phone")


@pytest.fixture(scope="module")
def nb_env(tmp_path_factory):
    """Working folder, kernel environment and a kernelspec bound to this interpreter."""
    work = tmp_path_factory.mktemp("notebooks")
    spec_dir = work / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3 (leadtier tests)",
                "language": "python",
            }
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "LEADTIER_"))}
    env.update(
        {
            "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
            "LEADTIER_NOTEBOOK_DIR": str(work / "nbdata"),
            "LEADTIER_NOTEBOOK_CUSTOMERS": "3000",
            "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
            # inline figures even where CI exports MPLBACKEND=Agg (ipykernel keeps an inherited value)
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
        }
    )
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("JUPYTER_PATH", str(work / "jupyter"))
        yield work, env


def execute(name: str, work: Path, env: dict[str, str]):
    """Run every cell of ``notebooks/<name>`` in ``work``; fail with the cell's traceback on an error."""
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    )
    try:
        client.execute(env=env)
    except nbclient.exceptions.CellExecutionError as exc:
        pytest.fail(f"{name}: a cell failed:\n{str(exc)[-4000:]}")
    finally:
        nbformat.write(nb, work / f"executed_{name}")  # kept for inspection
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, f"{name}: error outputs {[(e.ename, e.evalue) for e in errors]}"
    return nb


def outputs(nb) -> list[dict]:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def text_of(nb) -> str:
    parts = []
    for o in outputs(nb):
        if o.get("output_type") == "stream" and o.get("name") == "stdout":
            parts.append(o["text"])
        for mime in ("text/plain", "text/html", "text/markdown"):
            if mime in o.get("data", {}):
                parts.append(o["data"][mime])
    return "\n".join(parts)


def html_of(nb) -> str:
    return "\n".join(o["data"]["text/html"] for o in outputs(nb) if "text/html" in o.get("data", {}))


def n_images(nb) -> int:
    return sum("image/png" in o.get("data", {}) for o in outputs(nb))


def test_notebooks_are_stored_without_outputs():
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name}: clear the outputs"


def test_explore_notebook(nb_env):
    work, env = nb_env
    nb = execute("01_explore_demo_data.ipynb", work, env)
    text = text_of(nb)
    assert f"python: {sys.executable}" in text  # the kernel is this interpreter
    assert "3000 customers x" in text  # feature table built at the requested size
    assert "point-in-time check passed" in text
    assert n_images(nb) >= 3  # tier mix, events per week, features by tier
    # personal data never shown: no fake e-mail addresses, no personal column in a displayed table
    assert "@example." not in text
    html = html_of(nb)
    for col in PERSONAL_COLUMNS:
        assert f"<th>{col}</th>" not in html
    assert not (work / "mlruns").exists()


@pytest.fixture(scope="module")
def diagnostics(nb_env):
    """The diagnostics notebook in its default mode: own tiny world, trained into a temporary store."""
    work, env = nb_env
    nb = execute("02_model_diagnostics.ipynb", work, env)
    text = text_of(nb)
    match = re.search(r"run_id: ([0-9a-f]{32})", text)
    assert match, "the notebook printed no run id"
    return nb, text, match.group(1)


def test_diagnostics_notebook_trains_and_diagnoses(nb_env, diagnostics):
    work, _ = nb_env
    nb, text, _ = diagnostics
    assert f"python:   {sys.executable}" in text
    assert "mode:     own tiny demo world" in text
    assert "trained on 3000 demo customers" in text
    assert "Evaluation metrics (model vs baselines):" in text
    table = text.split("Evaluation metrics (model vs baselines):", 1)[1]
    for row in ("model", "majority", "logreg", "rfm_scorecard"):
        assert re.search(rf"^{row}\s+\d", table, flags=re.MULTILINE), f"metrics table lacks row {row}"
    assert re.search(r"^logreg\s+macro_f1\s+[-\d.]+\s+[-\d.]+\s+[-\d.]+\s+(True|False)$", text, flags=re.M), (
        "no gain-with-interval table for the logistic regression"
    )
    assert "registered model leadtier-demo v1" in text
    assert "recomputed holdout metrics match the run's logged metrics" in text
    assert "row by row, the registered model repeats the logged evaluation tier for 100.0% of rows" in text
    assert "champion gate (champion):" in text and "no champion yet: the first model becomes champion" in text
    assert "same as the logged confusion matrix" in text
    assert "Errors by true tier" in text
    assert "sum of the LightGBM's contributions + bias == its raw scores" in text
    assert "Top 6 feature contributions for the predicted tier" in text
    assert "<th>reasons</th>" in html_of(nb)  # the registered model's own reasons for the picked customers
    # the run's logged plots (model and baseline confusions, importance, k selection) + reliability
    # + confusion + errors by tier + contributions
    assert n_images(nb) >= 10
    # the notebook used its own store, not the one in the environment, and left nothing in the cwd
    nbdata = Path(nb_env[1]["LEADTIER_NOTEBOOK_DIR"]) / "02_diagnostics"
    assert (nbdata / "mlflow.db").is_file()
    assert not (work / "mlflow.db").exists()
    assert not (work / "mlruns").exists()


def test_diagnostics_notebook_reads_an_existing_run(nb_env, diagnostics):
    work, env = nb_env
    _, _, run_id = diagnostics
    store = Path(env["LEADTIER_NOTEBOOK_DIR"]) / "02_diagnostics" / "mlflow.db"
    existing = {
        **env,
        "LEADTIER_RUN_ID": run_id,
        "MLFLOW_TRACKING_URI": f"sqlite:///{store}",
        "LEADTIER_NOTEBOOK_DIR": str(work / "nbdata_existing"),
    }
    nb = execute("02_model_diagnostics.ipynb", work, existing)
    text = text_of(nb)
    assert f"mode:     existing run {run_id}" in text
    assert "trained on" not in text
    assert "Evaluation metrics (model vs baselines):" in text
    assert "recomputed holdout metrics match the run's logged metrics" in text
    assert "row by row, the registered model repeats the logged evaluation tier for 100.0% of rows" in text
    assert "champion gate (champion):" in text and "no champion yet: the first model becomes champion" in text
    assert n_images(nb) >= 10
