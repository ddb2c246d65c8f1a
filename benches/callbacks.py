"""The callback path per epoch, end to end: what a Keras, Lightning or Hugging Face epoch costs
with our callback (and a logger) against the same epoch without it.

Each framework trains a one-layer model on one batch per epoch, so an epoch is mostly the
framework's own loop and our hooks stand out. Variants, in interleaved rounds (each round runs
every variant once, in rotated order, so a slow stretch of a noisy machine hits them all):
- `bare`: no callback of ours;
- `callback`: our callback, no file (window edges, the hooks, the projection);
- `callback+row`: the same, writing `emissions.csv` (one row per epoch and per run);
- `+wandb`, `+mlflow`, `+tensorboard`: with the row and one logger (W&B offline, a local
  sqlite MLflow store, a TensorBoard event file), each where its client and our logger exist.

Prints, per framework and variant, the median per-epoch time over rounds and the added cost per
epoch (median of the variant less the median of `bare`), beside the target (under 1 ms per epoch
with one logger). The callback's own tracker starts and stops once per `fit`, spread over its
epochs; that is part of the figure.

Usage: python benches/callbacks.py [--quick] [--frameworks keras,lightning,transformers]
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
os.environ.setdefault("DISABLE_MLFLOW_INTEGRATION", "TRUE")

TARGET_MS = 1.0
# Trains `epochs` epochs with `callbacks`; returns the seconds the training call took (the
# trainer is built outside that time).
Fit = Callable[[list[Any], int], float]


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def keras_fit() -> tuple[Fit, Any]:
    import keras
    import numpy as np

    from carbonmeter.keras import EmissionsCallback

    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = x.sum(axis=1, keepdims=True)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")

    def fit(callbacks: list[Any], epochs: int) -> float:
        started = time.perf_counter()
        model.fit(x, y, epochs=epochs, batch_size=32, verbose=0, callbacks=callbacks)
        return time.perf_counter() - started

    return fit, EmissionsCallback


def lightning_fit() -> tuple[Fit, Any]:
    import lightning as pl
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from carbonmeter.lightning import EmissionsCallback

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch: Any, _index: int) -> Any:
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    x = torch.randn(32, 4)
    data = DataLoader(TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=32)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

    def fit(callbacks: list[Any], epochs: int) -> float:
        trainer = pl.Trainer(
            max_epochs=epochs,
            callbacks=callbacks,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
            devices=1,
        )
        model = Tiny()
        started = time.perf_counter()
        trainer.fit(model, data)
        return time.perf_counter() - started

    return fit, EmissionsCallback


def transformers_fit() -> tuple[Fit, Any]:
    import torch
    import transformers
    from torch.utils.data import Dataset

    from carbonmeter.transformers import EmissionsCallback

    transformers.logging.set_verbosity_error()

    class Tiny(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def forward(self, x: Any, labels: Any) -> dict[str, Any]:
            return {"loss": torch.nn.functional.mse_loss(self.layer(x), labels)}

    class Rows(Dataset[dict[str, Any]]):
        def __init__(self) -> None:
            self.x = torch.randn(32, 4)

        def __len__(self) -> int:
            return 32

        def __getitem__(self, index: int) -> dict[str, Any]:
            return {"x": self.x[index], "labels": self.x[index].sum(dim=0, keepdim=True)}

    output = tempfile.mkdtemp(prefix="hf-bench-")

    def fit(callbacks: list[Any], epochs: int) -> float:
        args = transformers.TrainingArguments(
            output_dir=output,
            num_train_epochs=epochs,
            per_device_train_batch_size=32,
            report_to="none",
            save_strategy="no",
            logging_strategy="epoch",
            disable_tqdm=True,
            use_cpu=True,
        )
        trainer = transformers.Trainer(
            model=Tiny(), args=args, train_dataset=Rows(), callbacks=callbacks
        )
        # The console printer would time the terminal, not the trainer.
        trainer.remove_callback(transformers.trainer_callback.PrinterCallback)
        started = time.perf_counter()
        trainer.train()
        return time.perf_counter() - started

    return fit, EmissionsCallback


FRAMEWORKS: dict[str, tuple[str, Callable[[], tuple[Fit, Any]]]] = {
    "keras": ("keras", keras_fit),
    "lightning": ("lightning", lightning_fit),
    "transformers": ("transformers", transformers_fit),
}


@contextlib.contextmanager
def logger_session(name: str, root: Path) -> Iterator[list[Any] | None]:
    """The `loggers=` value for `name` with its client's run open, or None where the client
    or our logger is not installed."""
    from carbonmeter import loggers as ours

    if name == "wandb" and has("wandb"):
        import wandb

        run = wandb.init(project="carbonmeter-bench", dir=str(root), mode="offline")
        try:
            yield ["wandb"]
        finally:
            run.finish()
    elif name == "mlflow" and has("mlflow") and hasattr(ours, "MlflowLogger"):
        import mlflow

        mlflow.set_tracking_uri(f"sqlite:///{root}/mlflow.db")
        with mlflow.start_run():
            yield ["mlflow"]
    elif name == "tensorboard" and has("tensorboard") and hasattr(ours, "TensorBoardLogger"):
        previous = Path.cwd()
        os.chdir(root)
        try:
            yield ["tensorboard"]
        finally:
            os.chdir(previous)
    else:
        yield None


def variants(callback: Any, root: Path) -> dict[str, Callable[[], list[Any]]]:
    common = {"country_iso_code": "FRA", "log_level": "error"}
    return {
        "bare": lambda: [],
        "callback": lambda: [callback(save_to_file=False, **common)],
        "callback+row": lambda: [callback(output_dir=str(root), **common)],
    }


def measure(framework: str, rounds: int, epochs: int) -> dict[str, list[float]]:
    module, build = FRAMEWORKS[framework]
    if not has(module):
        print(f"{framework}: not installed, skipped")
        return {}
    fit, callback = build()
    fit([], 2)  # warm the framework's own first-call costs
    samples: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="cb-bench-") as tmp:
        root = Path(tmp)
        plain = variants(callback, root)
        for logger in ("wandb", "mlflow", "tensorboard"):
            with logger_session(logger, root / logger) as names:
                if names is None:
                    continue
                for index in range(rounds):
                    order = [*plain, f"+{logger}"]
                    order = order[index % len(order) :] + order[: index % len(order)]
                    for name in order:
                        if name.startswith("+"):
                            callbacks = [
                                callback(
                                    output_dir=str(root),
                                    country_iso_code="FRA",
                                    log_level="error",
                                    loggers=names,
                                )
                            ]
                        else:
                            callbacks = plain[name]()
                        per_epoch = fit(callbacks, epochs) / epochs
                        samples.setdefault(name, []).append(per_epoch)
    return samples


def report(framework: str, samples: dict[str, list[float]]) -> None:
    if not samples:
        return
    bare = statistics.median(samples["bare"])
    print(f"\n{framework}: {len(samples['bare'])} rounds, median per epoch")
    for name, values in samples.items():
        median = statistics.median(values)
        added_ms = 1e3 * (median - bare)
        line = f"  {name:<14} {1e3 * median:8.3f} ms"
        if name != "bare":
            line += f"   added {added_ms:+.3f} ms/epoch"
            if name.startswith("+"):
                verdict = "met" if added_ms < TARGET_MS else "MISSED"
                line += f"   (target < {TARGET_MS:g} ms with one logger: {verdict})"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds: checks it runs")
    parser.add_argument("--frameworks", default="keras,lightning,transformers")
    args = parser.parse_args()
    rounds, epochs = (2, 5) if args.quick else (7, 40)
    warnings.filterwarnings("ignore")
    for framework in args.frameworks.split(","):
        if framework not in FRAMEWORKS:
            sys.exit(f"unknown framework {framework!r}; choose from {', '.join(FRAMEWORKS)}")
        report(framework, measure(framework, rounds, epochs))


if __name__ == "__main__":
    main()
