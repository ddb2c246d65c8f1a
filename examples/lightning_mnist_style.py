"""Per-epoch CO2 of a small MNIST-style convolutional classifier under PyTorch Lightning,
trained on synthetic 28x28 images (nothing downloaded).

Run: `pip install '.[lightning]' && python examples/lightning_mnist_style.py`.
"""

from __future__ import annotations

import logging

import lightning.pytorch as pl
import torch
from torch import nn

from carbonmeter.lightning import EmissionsCallback


class MnistStyleNet(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 8, 3),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(8 * 13 * 13, 10),
        )

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        images, labels = batch
        return nn.functional.cross_entropy(self.net(images), labels)

    def validation_step(self, batch: list[torch.Tensor], batch_idx: int) -> None:
        images, labels = batch
        self.log("val_loss", nn.functional.cross_entropy(self.net(images), labels))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def synthetic_digits(count: int, seed: int) -> torch.utils.data.DataLoader:
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(count, 1, 28, 28, generator=generator)
    labels = torch.randint(0, 10, (count,), generator=generator)
    dataset = torch.utils.data.TensorDataset(images, labels)
    return torch.utils.data.DataLoader(dataset, batch_size=64)


def main() -> None:
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    emissions = EmissionsCallback(project_name="lightning-mnist-style", measure_power_secs=1)
    trainer = pl.Trainer(
        max_epochs=3,
        accelerator="cpu",
        callbacks=[emissions],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(MnistStyleNet(), synthetic_digits(512, 0), synthetic_digits(128, 1))
    run = emissions.final_emissions_data
    assert run is not None
    print(f"last epoch: {float(trainer.callback_metrics['co2_kg']):.3e} kg CO2eq")
    print(f"run: {run.emissions:.3e} kg CO2eq in {run.duration:.1f} s (rows in emissions.csv)")


if __name__ == "__main__":
    main()
