"""Two-process training with a carbonmeter callback: Lightning `strategy="ddp"` on CPU (it
launches the second process itself) or the Hugging Face `Trainer` under torchrun.

Usage: ddp_frameworks.py lightning|transformers CONFIG_JSON. The config names the output folder,
the one host's powercap tree and NVML stand-in, and the epochs; each training step sleeps
`step_s` so an epoch lasts long enough to compare with the known power. Both log to W&B offline.
`budget_kg` sets the job's carbon budget (stop_over_budget, 1 kg per kWh).
"""

import json
import os
import sys
import time

import torch

framework, config = sys.argv[1], json.loads(sys.argv[2])
host = config["hosts"][0]
tracker_kwargs = {
    "output_dir": config["output_dir"],
    "country_iso_code": "FRA",
    "measure_power_secs": 0.5,
    "powercap_root": host["powercap"],
    "nvml_library": host["nvml"],
    "job_wait_secs": 10,
}
if config.get("budget_kg") is not None:
    tracker_kwargs.update(
        co2_budget_kg=config["budget_kg"],
        stop_over_budget=True,
        force_carbon_intensity_g_co2e_kwh=1000,
    )
generator = torch.Generator().manual_seed(0)

if framework == "lightning":
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import WandbLogger

    from carbonmeter.lightning import EmissionsCallback

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(8, 1)

        def training_step(self, batch, batch_idx):
            time.sleep(config["step_s"])
            x, y = batch
            return torch.nn.functional.mse_loss(self.layer(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    x = torch.randn(64, 8, generator=generator)
    data = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True)), batch_size=8
    )
    trainer = pl.Trainer(
        strategy="ddp",
        accelerator="cpu",
        devices=2,
        max_epochs=config["epochs"],
        default_root_dir=config["output_dir"],
        logger=WandbLogger(project="carbonmeter-ddp", save_dir=config["output_dir"], offline=True),
        callbacks=[EmissionsCallback(**tracker_kwargs)],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    trainer.fit(Tiny(), data)
else:
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    import carbonmeter.transformers  # noqa: F401  registers report_to="carbonmeter"

    # report_to makes our callback with no arguments: its settings come from the environment.
    for key, value in tracker_kwargs.items():
        os.environ[f"CARBONMETER_{key.upper()}"] = str(value)

    class Slow(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            time.sleep(config["step_s"])

    class Tokens(torch.utils.data.Dataset):
        def __init__(self) -> None:
            self.ids = torch.randint(5, 100, (64, 16), generator=generator)

        def __len__(self) -> int:
            return len(self.ids)

        def __getitem__(self, index):
            return {"input_ids": self.ids[index], "labels": (self.ids[index, 0] > 50).long()}

    model = BertForSequenceClassification(
        BertConfig(
            vocab_size=100,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
            max_position_embeddings=32,
        )
    )
    args = TrainingArguments(
        output_dir=f"{config['output_dir']}/hf",
        num_train_epochs=config["epochs"],
        per_device_train_batch_size=8,
        logging_strategy="epoch",
        save_strategy="no",
        report_to=["carbonmeter", "wandb"],
        use_cpu=True,
        disable_tqdm=True,
        include_num_input_tokens_seen=True,
    )
    trainer = Trainer(model, args, train_dataset=Tokens(), callbacks=[Slow()])
    trainer.train()
