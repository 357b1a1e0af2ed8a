"""A readable terminal: tuning progress only on a terminal or when asked, a summary that fits 100
columns, no MLflow chatter, `leadtier --version`, and `--lang` limited to the languages that exist."""

from __future__ import annotations

import io
import logging
import re
import warnings
from importlib.metadata import version
from types import SimpleNamespace

import optuna
import pytest
from leadtier.pipelines import console
from leadtier.pipelines import train as train_stage
from leadtier.pipelines.cli import app
from leadtier.pipelines.config import load_config
from typer.testing import CliRunner

from tests.conftest import DEMO_CONFIG, REPO

runner = CliRunner()


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_on_a_terminal_or_when_asked_only():
    assert console.show_progress(None, _Tty()) is True
    assert console.show_progress(None, io.StringIO()) is False  # a log file: nothing drawn
    assert console.show_progress(True, io.StringIO()) is True
    assert console.show_progress(False, _Tty()) is False


def test_time_left_is_the_pace_so_far_or_the_timeout_if_sooner():
    assert console.time_left(0, 10, 0.0, 120) == 120
    assert console.time_left(0, 10, 5.0, None) is None
    assert console.time_left(2, 10, 20.0, None) == pytest.approx(80.0)  # 10 s a trial, 8 to go
    assert console.time_left(2, 10, 20.0, 50) == pytest.approx(30.0)  # the timeout comes first
    assert console.time_left(10, 10, 99.0, 120) == 0.0
    assert console.time_left(3, 10, 200.0, 120) == 0.0  # past the timeout


def _study_with_progress(enabled: bool, stream) -> None:
    ticks = iter(range(0, 1000, 10))  # each reading of the clock is 10 s later
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    with console.TuningProgress(3, 600, "macro_f1", enabled, stream=stream, clock=lambda: next(ticks)) as bar:
        study.optimize(lambda t: {0: 0.5, 1: 0.7, 2: 0.6}[t.number], n_trials=3, callbacks=[bar])


def test_tuning_progress_shows_trial_n_of_n_best_so_far_and_time_left():
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    out = _Tty()
    _study_with_progress(True, out)
    text = out.getvalue()
    for n, best in ((1, "0.5000"), (2, "0.7000"), (3, "0.7000")):
        assert re.search(rf"tuning trial {n}/3 \|.*\| best macro_f1 {best} \| \d+:\d\d left", text), text
    assert "tuning trial 3/3" in text and "0:00 left" in text.split("tuning trial 3/3")[-1]
    assert "best macro_f1 0.6000" not in text  # the best so far, not the last trial's score


def test_tuning_progress_draws_nothing_when_disabled_and_logs_a_pulse_instead(caplog):
    out = io.StringIO()
    with caplog.at_level("INFO", logger="leadtier"):
        _study_with_progress(False, out)
    assert out.getvalue() == ""
    pulse = [r.getMessage() for r in caplog.records if r.getMessage().startswith("tuning trial")]
    assert pulse[0].startswith("tuning trial 1/3: best macro_f1 0.5000 | ") and len(pulse) == 3, pulse
    log = logging.getLogger("leadtier")
    caplog.clear()
    with caplog.at_level("INFO", logger="leadtier"):
        bar = console.TuningProgress(50, None, "macro_f1", False, stream=out)
        for _ in range(50):
            bar(SimpleNamespace(best_value=0.5), None)
    done = [int(m.split("/")[0].split()[-1]) for m in caplog.messages if m.startswith("tuning trial")]
    assert done == [1, 12, 24, 36, 48, 50] and log.level == logging.NOTSET  # the last trial too
    assert pulse[-1].startswith("tuning trial 3/3: best macro_f1 0.7000 | 0:00 left"), pulse


def test_tables_fit_the_width_and_wrap_columns_into_a_second_block():
    header = ["name", *(f"metric_{i}" for i in range(12))]
    lines = console.table(header, [["model", *("0.1234" for _ in range(12))]], width=60)
    assert max(map(len, lines)) <= 60
    assert "" in lines  # a second block
    assert sum(line.startswith("name") for line in lines) >= 2  # the first column repeats in each block
    assert all(f"metric_{i}" in "\n".join(lines) for i in range(12))
    one = console.table(["a", "b"], [["x", "1"], ["longer", "22"]])
    assert one == ["a        b", "x        1", "longer  22"]


def _result(baselines=("majority", "logreg", "rfm_scorecard")) -> train_stage.TrainResult:
    metric_names = ["macro_f1", "balanced_accuracy", "qwk", "log_loss", "brier", "ece"]
    keys = ["model", "model_supervised_only", "model_self_training", *baselines]
    metrics = {k: {m: 0.5 + i / 100 for i, m in enumerate(metric_names)} for k in keys}
    gain = {"gain": 0.0555, "low": -0.0098, "high": 0.1062}
    return train_stage.TrainResult(
        run_id="abc123",
        model_version="7",
        alias="challenger",
        reasons=["not promoted: " + "; ".join(f"{m} 0.50 < the champion's 0.51" for m in metric_names)],
        metrics=metrics,
        beats={b: {m: m != "ece" for m in metric_names} for b in baselines},
        gains={b: {m: gain for m in metric_names} for b in baselines},
        best_params={},
        n_train=4000,
        n_test=1000,
        seconds=12.0,
        n_trials=15,
        segments_k=4,
        bootstrap_resamples=2000,
        protocol={
            "evaluation": "holdout",
            "test_size": 0.25,
            "rows": {"train": 4000, "evaluation": 1000, "overlap": 0},
            "model_choice": [
                "average chosen on 4,000 validation rows from the training rows (best macro_f1): "
                "lightgbm 0.5729, average 0.5805, logreg 0.5603"
            ],
        },
    )


def test_a_baseline_that_beats_the_model_beyond_noise_is_warned_of(caplog):
    gains = {
        "stage_now": {"macro_f1": {"gain": -0.0461, "low": -0.0612, "high": -0.0331}},
        "logreg": {"macro_f1": {"gain": -0.01, "low": -0.03, "high": 0.01}},  # within noise: the table says it
        "classifier": {"macro_f1": {"gain": -0.05, "low": -0.07, "high": -0.03}},  # a rival model, not a baseline
        "majority": {
            "macro_f1": {"gain": 0.3, "low": 0.2, "high": 0.4},
            "log_loss": {"gain": -1, "low": -2, "high": -0.5},
        },
    }
    ev = SimpleNamespace(gains=gains, y_true=["A"] * 4540)
    with caplog.at_level("WARNING", logger="leadtier.pipelines.train"):
        train_stage.warn_beaten(ev, "macro_f1")
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        "the stage_now baseline scores better than the registered model on macro_f1 beyond noise: the model's gain "
        "over it is -0.0461 [-0.0612, -0.0331] on the 4540 evaluation rows"
    ]


def test_the_run_summary_is_tables_that_fit_100_columns():
    cfg = load_config(DEMO_CONFIG)
    text = train_stage.summary_text(cfg, _result())
    lines = text.splitlines()
    assert max(map(len, lines)) <= 100, max(lines, key=len)
    assert "4000 train, 1000 evaluation, 0 in both" in text
    assert "tier model: average chosen on 4,000 validation rows from the training rows (best macro_f1):" in lines
    header = next(line for line in lines if line.startswith("evaluation metrics"))
    assert header.split()[2:] == ["macro_f1", "balanced_accuracy", "qwk", "log_loss", "brier", "ece"]
    assert re.search(r"^model beats logreg +yes ~ +yes ~ +yes ~ +yes ~ +yes ~ +NO ~$", text, re.M), text
    sure = _result()
    sure.gains["logreg"]["qwk"] = {"gain": 0.05, "low": 0.01, "high": 0.09}  # beyond noise: a plain verdict
    assert re.search(r"^model beats logreg +yes ~ +yes ~ +yes +yes ~", train_stage.summary_text(cfg, sure), re.M)
    gains = next(line for line in lines if line.startswith("gain "))
    assert gains.split() == ["gain", "vs", "majority", "vs", "logreg", "vs", "rfm_scorecard"]
    assert re.search(r"^macro_f1 +\+0\.056 \[-0\.010, \+0\.106\] ~", text, re.M), text
    assert "from 2000 paired bootstrap resamples" in " ".join(text.split()) and text.endswith("MLflow run abc123")
    assert "15 tuning trials" in text  # the demo config's 15, all run
    assert "the tier model is the logreg baseline itself" not in text
    itself = _result()
    itself.beats.pop("logreg")  # the logistic regression was chosen: not compared with itself, and said
    assert "the tier model is the logreg baseline itself" in train_stage.summary_text(cfg, itself)
    cut = _result()
    cut.n_trials = 6  # the time limit stopped the study: said, as a same-seed rerun may tune otherwise
    said = " ".join(train_stage.summary_text(cfg, cut).split())
    assert "6 of 15 tuning trials: train.tuning.timeout_s (" in said and "may tune differently" in said


def test_mlflow_chatter_is_silenced_at_the_edge(monkeypatch, caplog):
    monkeypatch.delenv("MLFLOW_LOGGING_LEVEL", raising=False)
    stream = io.StringIO()
    with warnings.catch_warnings():
        console.configure_logging(stream=stream)
        import os

        assert os.environ["MLFLOW_LOGGING_LEVEL"] == "WARNING"
        assert os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] == "false"  # not a terminal
        pyfunc = logging.getLogger("mlflow.pyfunc")
        with caplog.at_level(logging.WARNING, logger="mlflow.pyfunc"):
            pyfunc.warning("Passing a Python object as `python_model` causes it to be serialized using CloudPickle")
            pyfunc.warning("a warning that matters")
        assert [r.getMessage() for r in caplog.records] == ["a warning that matters"]
        assert logging.getLogger("mlflow.store.db.utils").getEffectiveLevel() >= logging.WARNING
        with caplog.at_level(logging.WARNING, logger="py.warnings"):
            caplog.clear()
            for _ in range(3):  # the same warning from every fold: shown once, as one line
                warnings.simplefilter("always")  # as a library resetting the filters would
                warnings.warn("The least populated class in y has only 4 members", UserWarning, stacklevel=1)
        shown = [r.getMessage() for r in caplog.records if r.name == "py.warnings"]
        assert len(shown) == 1 and shown[0].startswith("UserWarning: The least populated class"), shown
        assert "\n" not in shown[0]


def test_a_command_says_each_warning_of_leadtiers_once():
    """report and retier read the same input for several stages: its warnings are said once, not per stage."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with warnings.catch_warnings():
            console.configure_logging(stream=stream)
        said = logging.getLogger("leadtier.pipelines.sources")
        for _ in range(3):
            said.warning("accounts.csv: 1 row(s) have a value in column %r that ...", "account_id")
        said.warning("another warning")
        logging.getLogger("leadtier.pipelines.predict").error("an error is never held back")
        logging.getLogger("leadtier.pipelines.predict").error("an error is never held back")
        with warnings.catch_warnings():
            console.configure_logging(stream=stream)  # the next command in the same process
        said.warning("another warning")
    finally:
        root.removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines == [
        "accounts.csv: 1 row(s) have a value in column 'account_id' that ...",
        "another warning",
        "an error is never held back",
        "an error is never held back",
        "another warning",
    ]
    assert sum(isinstance(f, console._OnceEach) for f in handler.filters) == 1


def test_spark_predicts_two_known_advisories_are_answered_not_printed(caplog):
    """PySpark 4 on pandas 3 and MLflow's env_manager advice printed on every spark-predict; the parity tests
    answer the first, the design (executors run leadtier's interpreter) the second."""
    from leadtier.pipelines import spark as sp

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        sp._quiet_known_notices()
        warnings.warn("PySpark does not yet fully support pandas >= 3.0.0.", FutureWarning, stacklevel=1)
        warnings.warn("another FutureWarning", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in seen] == ["another FutureWarning"]
    pyfunc = logging.getLogger("mlflow.pyfunc")
    with caplog.at_level(logging.WARNING, logger="mlflow.pyfunc"):
        pyfunc.warning('Calling `spark_udf()` with `env_manager="local"` does not recreate the same environment')
        pyfunc.warning("a warning that matters")
    assert [r.getMessage() for r in caplog.records] == ["a warning that matters"]


def test_version_option_prints_the_installed_version():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == f"leadtier {version('leadtier')}"


@pytest.mark.parametrize(
    ("args", "said", "code"),
    [
        (["features", "--as-of", "01/11/2025"], "error: Invalid value for '--as-of'", 2),
        (["--nonsense"], "error: No such option: --nonsense (see leadtier --help)", 2),
        (["report", "--lang", "fr"], "error: Invalid value for '--lang'", 2),
        (["features", "--help"], "", 0),
    ],
)
def test_the_script_says_a_usage_error_in_one_error_line(monkeypatch, capsys, args, said, code):
    """The installed `leadtier` script (cli.run): a mistyped option is one `error:` line, exit 2, like
    every other error a user can fix, not a box or a traceback."""
    import sys

    from leadtier.pipelines.cli import run

    monkeypatch.setattr(sys, "argv", ["leadtier", *args])
    with pytest.raises(SystemExit) as done:
        run()
    assert done.value.code == code
    err = capsys.readouterr().err
    assert "Traceback" not in err and "╭" not in err
    if said:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith(said), err


def test_lang_is_a_choice_of_the_languages_that_exist():
    langs = sorted(p.stem for p in (REPO / "pipelines" / "i18n").glob("*.yaml"))
    assert langs == ["en", "zh"]
    helptext = runner.invoke(app, ["report", "--help"], terminal_width=200).output
    assert "en|zh" in helptext.replace(" ", ""), helptext
    res = runner.invoke(app, ["report", "--config", str(DEMO_CONFIG), "--lang", "fr"])
    assert res.exit_code == 2
    assert "'fr' is not one of 'en', 'zh'" in res.output, res.output


@pytest.mark.slow
def test_train_shows_tuning_progress_and_a_summary_without_long_lines(demo_data, tmp_path, caplog):
    """What `make train` prints, on a small demo: the progress display during tuning (asked for with
    --progress, as a terminal would get it), a summary with no line over 120 characters, no MLflow chatter."""
    import yaml

    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["data"]["root"] = str(demo_data.data.root)  # 2,500 demo customers
    raw["features"]["output"] = str(tmp_path / "features.parquet")
    raw["train"]["tuning"] |= {"cv_folds": 2, "timeout_s": 60}
    raw["segments"] = {"k": 3}
    raw["mlflow"]["tracking_uri"] = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tmp_path / "demo.yaml"
    config.write_text(yaml.safe_dump(raw))
    with caplog.at_level(logging.INFO, logger="leadtier"):
        res = runner.invoke(app, ["train", "--config", str(config), "--n-trials", "2", "--progress"])
    assert res.exit_code == 0, (res.output, res.exception)
    out, err = res.stdout, res.stderr
    assert re.search(r"tuning trial 2/2 \|.*\| best \w+ \d\.\d{4} \| \d+:\d\d left", err), err[-3000:]
    assert max(map(len, out.splitlines())) <= 120, max(out.splitlines(), key=len)
    assert "evaluation metrics" in out and "model beats majority" in out
    assert "Passing a Python object" not in err and "Creating initial MLflow database tables" not in err
    assert "Successfully registered model" not in out + err  # MLflow's own print to stderr ...
    said = [r.getMessage() for r in caplog.records if r.name == "leadtier.pipelines.tracking"]
    assert any(m.startswith("registry: Successfully registered model") for m in said), said  # ... is a log line
