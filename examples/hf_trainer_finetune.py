"""Per-epoch CO2 of fine-tuning a tiny BERT (built from a config, so nothing is downloaded) on
synthetic token data with the Hugging Face `Trainer`.

Run: `pip install '.[transformers]' && python examples/hf_trainer_finetune.py`.
"""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification, Trainer, TrainingArguments

from carbonmeter.transformers import EmissionsCallback


def synthetic_dataset(count: int, seed: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 200, (count, 32), generator=generator)
    return [
        {"input_ids": row, "attention_mask": torch.ones_like(row), "labels": (row[0] > 100).long()}
        for row in ids
    ]


def main() -> None:
    config = BertConfig(
        vocab_size=200,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
    )
    args = TrainingArguments(
        output_dir="hf-finetune-output",
        num_train_epochs=3,
        per_device_train_batch_size=16,
        eval_strategy="epoch",
        logging_strategy="epoch",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    emissions = EmissionsCallback(project_name="hf-finetune", measure_power_secs=1)
    trainer = Trainer(
        model=BertForSequenceClassification(config),
        args=args,
        train_dataset=synthetic_dataset(128, 0),
        eval_dataset=synthetic_dataset(32, 1),
        callbacks=[emissions],
    )
    trainer.train()
    for entry in trainer.state.log_history:
        if "co2_kg" in entry:
            print(f"epoch {entry['epoch']:.0f}: {entry['co2_kg']:.3e} kg CO2eq")
    run = emissions.final_emissions_data
    assert run is not None
    print(f"run: {run.emissions:.3e} kg CO2eq in {run.duration:.1f} s")


if __name__ == "__main__":
    main()
