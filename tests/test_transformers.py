"""The Hugging Face callback on a real `Trainer.train` (2-layer BERT from a config, synthetic
data, CPU, nothing downloaded)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from fixtures import budget, plateau
from helpers import check_run_ended_with_work, idle_after, rows_of

transformers = pytest.importorskip(
    "transformers", reason="Transformers tests need the [transformers] extra"
)
torch = pytest.importorskip("torch")

from transformers import (  # noqa: E402
    BertConfig,
    BertForSequenceClassification,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from carbonmeter.transformers import EmissionsCallback  # noqa: E402


class SyntheticTokens(torch.utils.data.Dataset):
    def __init__(self, count: int) -> None:
        generator = torch.Generator().manual_seed(0)
        self.input_ids = torch.randint(5, 100, (count, 16), generator=generator)
        self.labels = (self.input_ids[:, 0] > 50).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "input_ids": self.input_ids[index],
            "attention_mask": torch.ones(16, dtype=torch.long),
            "labels": self.labels[index],
        }


def tiny_bert() -> BertForSequenceClassification:
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        num_labels=2,
    )
    return BertForSequenceClassification(config)


def training_args(tmp_path: Path, **overrides: Any) -> TrainingArguments:
    settings: dict[str, Any] = {
        "output_dir": str(tmp_path / "hf"),
        "num_train_epochs": 3,
        "per_device_train_batch_size": 16,
        "per_device_eval_batch_size": 16,
        "eval_strategy": "epoch",
        "logging_strategy": "epoch",
        "save_strategy": "no",
        "report_to": "none",
        "disable_tqdm": True,
        "use_cpu": True,
    }
    return TrainingArguments(**{**settings, **overrides})


class LogsRecorder(TrainerCallback):
    """A user callback: runs after every integration and records the logs it is handed."""

    def __init__(self) -> None:
        self.logs: list[dict[str, Any]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        self.logs.append(dict(logs or {}))


@pytest.mark.slow
def test_epochs_and_evaluations_land_in_the_csv_and_the_log_history(tmp_path: Path) -> None:
    callback = EmissionsCallback(output_dir=str(tmp_path), country_iso_code="FRA")
    trainer = Trainer(
        model=tiny_bert(),
        args=training_args(tmp_path),
        train_dataset=SyntheticTokens(64),
        eval_dataset=SyntheticTokens(32),
        callbacks=[callback],
    )
    trainer.train()

    rows = rows_of(tmp_path / "emissions.csv")
    train_rows = [row for row in rows if row["phase"] == "train"]
    eval_rows = [row for row in rows if row["phase"] == "eval"]
    assert [row["epoch"] for row in train_rows] == ["0", "1", "2"]
    assert len(eval_rows) == 3
    assert rows[-1]["window"] == ""
    assert sum(float(r["energy_consumed"]) for r in train_rows) <= float(
        rows[-1]["energy_consumed"]
    )
    history = trainer.state.log_history
    logged = [entry["co2_kg"] for entry in history if "co2_kg" in entry]
    assert logged == pytest.approx([float(row["emissions"]) for row in train_rows])
    # Each epoch's figures joined the epoch's own entry, with its loss (issue 32: no CO2-only
    # entry of ours beside it).
    assert all("loss" in entry for entry in history if "co2_kg" in entry)
    assert len([entry for entry in history if "loss" in entry]) == 3
    assert sum("eval_co2_kg" in entry for entry in history) == 3
    # An evaluation's figures sit in the log entry of its metrics, numbered by its epoch.
    evaluations = [entry for entry in history if "eval_loss" in entry]
    assert [entry["eval_co2_kg"] for entry in evaluations] == pytest.approx(
        [float(row["emissions"]) for row in eval_rows]
    )
    assert [row["epoch"] for row in eval_rows] == ["0", "1", "2"]
    assert callback.final_emissions == pytest.approx(float(rows[-1]["emissions"]))

    # predict() logs nothing: its window closes at on_predict, into the metrics it returns,
    # and the run it began after training ends with it (issue 32).
    predicted = trainer.predict(SyntheticTokens(16)).metrics
    rows = rows_of(tmp_path / "emissions.csv")
    assert predicted["test_co2_kg"] == pytest.approx(float(rows[-2]["emissions"]))
    assert rows[-2]["phase"] == "eval"
    assert callback.tracker is not None and not callback.tracker.running
    assert rows[-1]["window"] == ""
    callback.on_train_end(trainer.args, trainer.state, trainer.control)
    assert len(rows_of(tmp_path / "emissions.csv")) == len(rows)


@pytest.mark.slow
@pytest.mark.parametrize("work", ["evaluate", "predict"])
def test_a_standalone_evaluate_or_predict_ends_its_run_with_its_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, work: str
) -> None:
    """The seed paper's pattern: fine-tune, evaluate, then other work (issue 32)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CARBONMETER_COUNTRY_ISO_CODE", "FRA")
    trainer = Trainer(
        model=tiny_bert(),
        args=training_args(
            tmp_path, report_to=["carbonmeter"], num_train_epochs=1, eval_strategy="no"
        ),
        train_dataset=SyntheticTokens(32),
        eval_dataset=SyntheticTokens(32),
    )
    trainer.train()
    if work == "evaluate":
        work_s = idle_after(trainer.evaluate)
    else:
        work_s = idle_after(lambda: trainer.predict(SyntheticTokens(32)))
    check_run_ended_with_work(tmp_path / "emissions.csv", work_s)
    rows = rows_of(tmp_path / "emissions.csv")
    assert [row["phase"] for row in rows] == ["train", "", "eval", ""]


@pytest.mark.slow
def test_report_to_carbonmeter_runs_before_later_callbacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Built by the Trainer from its name, the callback takes its settings from the environment.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CARBONMETER_COUNTRY_ISO_CODE", "FRA")
    # The figures are chosen there too (issue 32's log_metrics, as a list in the environment).
    monkeypatch.setenv("CARBONMETER_LOG_METRICS", "co2_kg, power_w")
    recorder = LogsRecorder()
    trainer = Trainer(
        model=tiny_bert(),
        args=training_args(
            tmp_path, report_to=["carbonmeter"], num_train_epochs=2, eval_strategy="no"
        ),
        train_dataset=SyntheticTokens(32),
        callbacks=[recorder],
    )
    ours = [c for c in trainer.callback_handler.callbacks if isinstance(c, EmissionsCallback)]
    assert len(ours) == 1
    trainer.train()
    with_co2 = [logs for logs in recorder.logs if "co2_kg" in logs]
    assert len(with_co2) == 2
    assert all("loss" in logs for logs in with_co2)
    assert {"co2_kg", "power_w"} <= set(with_co2[0])
    assert not {"energy_kwh", "co2_kg_low", "co2_kg_total"} & set(with_co2[0])
    assert len(rows_of(tmp_path / "emissions.csv")) == 3


@pytest.mark.slow
def test_an_exception_mid_epoch_leaves_the_partial_epoch_and_the_run(tmp_path: Path) -> None:
    script = Path(__file__).parent / "scripts" / "crash_mid_epoch.py"
    result = subprocess.run(
        [sys.executable, str(script), "transformers", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode != 0
    assert "RuntimeError: boom in epoch 1" in result.stderr
    rows = rows_of(tmp_path / "emissions.csv")
    assert [row["window"] for row in rows] == ["train-epoch-0", "train-epoch-1", ""]


class EpochFloor(TrainerCallback):
    """Holds each epoch open a little, so its cost does not depend on the machine's speed."""

    def on_epoch_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        time.sleep(budget.EPOCH_FLOOR_S)


@pytest.mark.slow
def test_the_budget_stops_training_after_the_crossing_epoch(tmp_path: Path) -> None:
    callback = EmissionsCallback(output_dir=str(tmp_path), **budget.SETTINGS)
    trainer = Trainer(
        model=tiny_bert(),
        args=training_args(
            tmp_path, num_train_epochs=budget.MAX_EPOCHS, eval_strategy="no", logging_strategy="no"
        ),
        train_dataset=SyntheticTokens(16),
        callbacks=[callback, EpochFloor()],
    )
    trainer.train()
    ran = budget.check_stopped_after_the_crossing_epoch(rows_of(tmp_path / "emissions.csv"))
    assert round(trainer.state.epoch or 0) == ran


@pytest.mark.slow
def test_samples_and_the_trainers_token_count_reach_the_rows(tmp_path: Path) -> None:
    # 40 samples in batches of 16: 16, 16 and 8 per epoch, 16 tokens each.
    callback = EmissionsCallback(
        output_dir=str(tmp_path), country_iso_code="FRA", log_metrics="all"
    )
    trainer = Trainer(
        model=tiny_bert(),
        args=training_args(
            tmp_path, num_train_epochs=2, eval_strategy="no", include_num_input_tokens_seen=True
        ),
        train_dataset=SyntheticTokens(40),
        callbacks=[callback],
    )
    trainer.train()

    rows = rows_of(tmp_path / "emissions.csv")
    assert [(row["samples"], row["tokens"]) for row in rows] == [
        ("40", "640"),
        ("40", "640"),
        ("80", "1280"),
    ]
    assert trainer.state.num_input_tokens_seen == 1280
    history = [entry for entry in trainer.state.log_history if "j_per_token" in entry]
    # Joined to the epoch's own entries, one each, with all the figures asked for.
    assert len(history) == 2 and all("loss" in entry for entry in history)
    assert all("ram_energy_kwh" in entry and "j_per_sample" in entry for entry in history)
    assert [entry["j_per_token"] for entry in history] == pytest.approx(
        [float(row["energy_consumed"]) * 3.6e6 / 640 for row in rows[:2]]
    )
    assert [entry["co2_g_per_1k_tokens"] for entry in history] == pytest.approx(
        [float(row["emissions"]) * 1e6 / 640 for row in rows[:2]]
    )
    data = callback.final_emissions_data
    assert data is not None and data.joules_per_sample == pytest.approx(
        data.energy_consumed * 3.6e6 / 80
    )


@pytest.mark.slow
def test_training_stops_once_the_metric_gains_too_little_per_kg(tmp_path: Path) -> None:
    evaluations = iter(range(plateau.MAX_EPOCHS))

    def plateauing_score(prediction: Any) -> dict[str, float]:
        # The synthetic metric of the evaluation after each epoch, as compute_metrics gives it.
        return {"score": plateau.score(next(evaluations))}

    callback = EmissionsCallback(output_dir=str(tmp_path), **plateau.SETTINGS)
    trainer = Trainer(
        model=tiny_bert(),
        args=training_args(
            tmp_path, num_train_epochs=plateau.MAX_EPOCHS, metric_for_best_model="score"
        ),
        train_dataset=SyntheticTokens(16),
        eval_dataset=SyntheticTokens(16),
        compute_metrics=plateauing_score,
        callbacks=[callback, EpochFloor()],
    )
    trainer.train()
    saved = plateau.check_stopped_paying(rows_of(tmp_path / "emissions.csv"), "eval", "eval_score")
    assert round(trainer.state.epoch or 0) == plateau.STOP_EPOCH + 1
    assert saved > 0.7, saved
    logged = [entry for entry in trainer.state.log_history if "eval_score_per_kg" in entry]
    assert len(logged) == plateau.STOP_EPOCH
