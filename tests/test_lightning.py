"""The Lightning callback on a real `Trainer.fit` (tiny model, synthetic data, CPU)."""

from __future__ import annotations

import logging
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures import budget, plateau
from helpers import check_run_ended_with_work, child_env, idle_after, rows_of

pl = pytest.importorskip("lightning.pytorch", reason="Lightning tests need the [lightning] extra")
torch = pytest.importorskip("torch")

from lightning.pytorch.loggers import CSVLogger  # noqa: E402

from carbonmeter.lightning import EmissionsCallback  # noqa: E402

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)


class TinyRegressor(pl.LightningModule):
    def __init__(self, fail_in_epoch: int | None = None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(8, 1)
        self.fail_in_epoch = fail_in_epoch

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.current_epoch == self.fail_in_epoch and batch_idx == 1:
            raise RuntimeError(f"boom in epoch {self.current_epoch}")
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, on_epoch=True, on_step=False)
        return loss

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def loader() -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(128, 8, generator=generator)
    dataset = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))
    return torch.utils.data.DataLoader(dataset, batch_size=32)


def trainer(tmp_path: Path, callback: EmissionsCallback) -> pl.Trainer:
    return pl.Trainer(
        max_epochs=3,
        accelerator="cpu",
        default_root_dir=tmp_path,
        logger=CSVLogger(tmp_path, name="logs"),
        callbacks=[callback],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )


def test_train_epochs_and_validation_passes_are_measured_and_logged(tmp_path: Path) -> None:
    callback = EmissionsCallback(output_dir=str(tmp_path), country_iso_code="DEU")
    fit = trainer(tmp_path, callback)
    fit.fit(TinyRegressor(), loader(), loader())

    rows = rows_of(tmp_path / "emissions.csv")
    # Validation runs inside each train epoch, so its window closes first.
    expected = []
    for epoch in range(3):
        expected += [f"validation-epoch-{epoch}", f"train-epoch-{epoch}"]
    assert [row["window"] for row in rows] == [*expected, ""]
    assert [row["phase"] for row in rows[:2]] == ["validation", "train"]
    assert {row["rank"] for row in rows} == {"0"}
    train_rows = [row for row in rows if row["phase"] == "train"]
    assert sum(float(r["energy_consumed"]) for r in train_rows) <= float(
        rows[-1]["energy_consumed"]
    )
    metrics = fit.callback_metrics
    assert float(metrics["co2_kg"]) == pytest.approx(float(train_rows[-1]["emissions"]))
    assert "val_co2_kg" in metrics and "co2_kg_total" in metrics
    # The default figures only (issue 32); the energies per component on request.
    assert "ram_energy_kwh" not in metrics and "val_ram_energy_kwh" not in metrics

    logged = rows_of(next((tmp_path / "logs").rglob("metrics.csv")))
    logged_co2 = [float(row["co2_kg"]) for row in logged if row.get("co2_kg")]
    assert logged_co2 == pytest.approx([float(r["emissions"]) for r in train_rows])
    assert callback.final_emissions_data is not None
    assert callback.final_emissions == pytest.approx(float(rows[-1]["emissions"]))


def test_log_metrics_all_logs_every_figure(tmp_path: Path) -> None:
    callback = EmissionsCallback(
        output_dir=str(tmp_path), country_iso_code="DEU", log_metrics="all"
    )
    fit = trainer(tmp_path, callback)
    fit.fit(TinyRegressor(), loader(), loader())
    train_rows = [row for row in rows_of(tmp_path / "emissions.csv") if row["phase"] == "train"]
    metrics = fit.callback_metrics
    assert float(metrics["ram_energy_kwh"]) == pytest.approx(float(train_rows[-1]["ram_energy"]))
    assert {"power_w", "cpu_energy_kwh", "j_per_sample", "val_ram_energy_kwh"} <= set(metrics)


def test_an_exception_mid_epoch_leaves_the_partial_epoch_and_the_run(tmp_path: Path) -> None:
    callback = EmissionsCallback(output_dir=str(tmp_path), country_iso_code="DEU")
    with pytest.raises(RuntimeError, match="boom in epoch 1"):
        trainer(tmp_path, callback).fit(TinyRegressor(fail_in_epoch=1), loader(), loader())
    rows = rows_of(tmp_path / "emissions.csv")
    windows = ["validation-epoch-0", "train-epoch-0", "train-epoch-1", ""]
    assert [row["window"] for row in rows] == windows
    assert not callback.tracker.running


class EpochFloor(pl.Callback):
    """Holds each train epoch open a little, so its cost does not depend on the machine."""

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        time.sleep(budget.EPOCH_FLOOR_S)


def test_the_budget_stops_fit_after_the_crossing_epoch(tmp_path: Path) -> None:
    callback = EmissionsCallback(output_dir=str(tmp_path), **budget.SETTINGS)
    fit = pl.Trainer(
        max_epochs=budget.MAX_EPOCHS,
        accelerator="cpu",
        default_root_dir=tmp_path,
        logger=CSVLogger(tmp_path, name="logs"),
        callbacks=[callback, EpochFloor()],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
    )
    fit.fit(TinyRegressor(), loader(), loader())
    ran = budget.check_stopped_after_the_crossing_epoch(rows_of(tmp_path / "emissions.csv"))
    assert fit.current_epoch == ran


def test_train_batches_are_counted_as_samples_and_validation_is_not(tmp_path: Path) -> None:
    # 100 samples in batches of 32: 32, 32, 32 and 4 per epoch.
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(100, 8, generator=generator)
    data = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))
    train = torch.utils.data.DataLoader(data, batch_size=32)
    callback = EmissionsCallback(
        output_dir=str(tmp_path), country_iso_code="DEU", log_metrics="default,j_per_sample"
    )
    fit = trainer(tmp_path, callback)
    fit.fit(TinyRegressor(), train, loader())

    rows = rows_of(tmp_path / "emissions.csv")
    train_rows = [row for row in rows if row["phase"] == "train"]
    assert [row["samples"] for row in train_rows] == ["100", "100", "100"]
    assert {row["samples"] for row in rows if row["phase"] == "validation"} == {""}
    assert rows[-1]["samples"] == "300"
    last = float(train_rows[-1]["energy_consumed"]) * 3.6e6 / 100
    assert float(fit.callback_metrics["j_per_sample"]) == pytest.approx(last)


class PredictingRegressor(TinyRegressor):
    def predict_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0])


@pytest.mark.slow
def test_validate_and_predict_after_fit_end_their_runs_with_their_work(tmp_path: Path) -> None:
    """Fit, then validate and predict, each followed by other work (issue 32)."""
    callback = EmissionsCallback(output_dir=str(tmp_path), country_iso_code="DEU")
    fit = trainer(tmp_path, callback)
    model = PredictingRegressor()
    fit.fit(model, loader(), loader())
    csv_path = tmp_path / "emissions.csv"
    work_s = idle_after(lambda: fit.validate(model, loader(), verbose=False))
    assert check_run_ended_with_work(csv_path, work_s)["window"] == ""
    phases = [row["phase"] for row in rows_of(csv_path)]
    assert phases[-2:] == ["validation", ""]
    work_s = idle_after(lambda: fit.predict(model, loader()))
    check_run_ended_with_work(csv_path, work_s)


# --- SIGTERM around Lightning's signal connector ----------------------------------------------

# Lightning's `_SignalConnector` saves `signal.getsignal(SIGTERM)` when `fit()` begins (Python
# reports SIG_DFL for the handler the core installed below it), installs its own, and puts the
# saved SIG_DFL back when `fit()` ends, under the still running tracker.
AROUND_FIT = """
import signal, sys, time
import torch
import lightning.pytorch as pl
from lightning.pytorch.trainer.connectors.signal_connector import _SignalConnector
from carbonmeter import EmissionsTracker
from carbonmeter.lightning import EmissionsCallback

when = sys.argv[2]
signal.signal(signal.SIGTERM, signal.SIG_DFL)

class Tiny(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
    def training_step(self, batch, batch_idx):
        if when == "mid-fit" and self.current_epoch == 1 and batch_idx == 0:
            print("READY", flush=True)
            give_up = time.monotonic() + 60
            while not self.trainer.received_sigterm and time.monotonic() < give_up:
                time.sleep(0.01)
            print("LIGHTNING HANDLED IT", flush=True)
        return self.layer(batch[0]).sum()
    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)

samples = torch.utils.data.TensorDataset(torch.randn(64, 4))
data = torch.utils.data.DataLoader(samples, batch_size=16)
tracker = EmissionsTracker(
    output_dir=sys.argv[1], country_iso_code="FRA", default_cpu_power=50, measure_power_secs=60,
)
tracker.start()
trainer = pl.Trainer(
    max_epochs=2, accelerator="cpu", logger=False, callbacks=[EmissionsCallback(tracker=tracker)],
    enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
)
assert type(trainer._signal_connector) is _SignalConnector
trainer.fit(Tiny(), data)
assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, "the connector put the default back"
if when == "after-fit":
    with tracker.epoch(0, phase="evaluate"):
        print("READY", flush=True)
        time.sleep(60)
else:
    # No tracker call after fit(): the watcher, which saw Lightning's handler in place of ours
    # during fit(), finds the default back within a second.
    time.sleep(1.5)
    print("READY", flush=True)
    time.sleep(60)
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("when", "status", "windows"),
    [
        # Lightning's handler gets it: fit() ends by its SIGTERMException (a SystemExit).
        ("mid-fit", 0, ["train-epoch-0", "train-epoch-1", ""]),
        ("after-fit", -signal.SIGTERM, ["train-epoch-0", "train-epoch-1", "evaluate-epoch-0", ""]),
        ("after-fit-no-call", -signal.SIGTERM, ["train-epoch-0", "train-epoch-1", ""]),
    ],
)
def test_sigterm_keeps_the_rows_around_lightnings_signal_connector(
    tmp_path: Path, when: str, status: int, windows: list[str]
) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", AROUND_FIT, str(tmp_path), when],
        cwd=tmp_path,
        env=child_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        ready, _, _ = select.select([child.stdout], [], [], 120)
        line = child.stdout.readline() if ready else ""
        if line.strip() != "READY":
            child.kill()
            pytest.fail(f"the child never said READY: {line}{child.stderr.read()[-3000:]}")
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=60) == status, child.stderr.read()[-3000:]
        said = child.stdout.read()
    if when == "mid-fit":
        assert "LIGHTNING HANDLED IT" in said
    rows = rows_of(tmp_path / "emissions.csv")
    assert [row["window"] for row in rows] == windows
    assert len({row["run_id"] for row in rows}) == 1


class PlateauingRegressor(TinyRegressor):
    """Logs the synthetic plateauing metric from its validation, as a module logs accuracy."""

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self.log("val_score", plateau.score(self.current_epoch))


def test_training_stops_once_the_metric_gains_too_little_per_kg(tmp_path: Path) -> None:
    callback = EmissionsCallback(output_dir=str(tmp_path), monitor="val_score", **plateau.SETTINGS)
    fit = pl.Trainer(
        max_epochs=plateau.MAX_EPOCHS,
        accelerator="cpu",
        default_root_dir=tmp_path,
        logger=CSVLogger(tmp_path, name="logs"),
        callbacks=[callback, EpochFloor()],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
    )
    fit.fit(PlateauingRegressor(), loader(), loader())
    saved = plateau.check_stopped_paying(rows_of(tmp_path / "emissions.csv"), "train", "val_score")
    assert fit.current_epoch == plateau.STOP_EPOCH + 1
    assert saved > 0.7, saved
    assert "val_score_per_kg" in fit.callback_metrics
