"""The Hugging Face fine-tuning paper's table, reproduced in small: six tasks, each fine-tuned with
the HF `Trainer` and carbonmeter's callback in the US eGRID subregion SPNO, then the table
(Model | Task | Runs | Duration | Energy | CO2eq) as `carbonmeter report --format markdown`
prints it.

The models are tiny (built from configs: nothing is downloaded) and the data synthetic, so the
figures are a few milliwatt-hours: the point is the measurement and the table, not the models.

Run: `pip install '.[transformers]' && python examples/hf_tasks_table.py`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    BartConfig,
    BartForConditionalGeneration,
    BertConfig,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    GPT2Config,
    GPT2LMHeadModel,
    PreTrainedModel,
    T5Config,
    T5ForConditionalGeneration,
    Trainer,
    TrainingArguments,
)

from carbonmeter import report
from carbonmeter.transformers import EmissionsCallback

VOCAB, LENGTH, ROWS = 200, 32, 16
REGION = "SPNO"  # eGRID's SPP North, the subregion of the paper's cluster

BERT = {
    "vocab_size": VOCAB,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}


def tokens(generator: torch.Generator, length: int = LENGTH) -> torch.Tensor:
    return torch.randint(5, VOCAB, (length,), generator=generator)


def example(task: str, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """One synthetic training example, shaped as the task's model expects."""
    ids = tokens(generator)
    mask = torch.ones_like(ids)
    if task == "text classification":
        return {"input_ids": ids, "attention_mask": mask, "labels": (ids[0] > 100).long()}
    if task == "token classification":
        return {"input_ids": ids, "attention_mask": mask, "labels": (ids > 100).long()}
    if task == "extractive question answering":
        start = int(torch.randint(0, LENGTH - 4, (1,), generator=generator))
        return {
            "input_ids": ids,
            "attention_mask": mask,
            "start_positions": torch.tensor(start),
            "end_positions": torch.tensor(start + 3),
        }
    if task == "causal language modeling":
        return {"input_ids": ids, "attention_mask": mask, "labels": ids.clone()}
    # Sequence to sequence: a shorter target (a "summary") or one as long (a "translation").
    target = ids[: LENGTH // 4] if task == "summarization" else torch.flip(ids, [0])
    return {"input_ids": ids, "attention_mask": mask, "labels": target.clone()}


def model_for(task: str) -> tuple[str, PreTrainedModel]:
    """A tiny model of the family the paper used for the task, and its name."""
    if task == "text classification":
        return "tiny-bert", BertForSequenceClassification(BertConfig(**BERT, num_labels=2))
    if task == "token classification":
        return "tiny-bert", BertForTokenClassification(BertConfig(**BERT, num_labels=2))
    if task == "extractive question answering":
        return "tiny-bert", BertForQuestionAnswering(BertConfig(**BERT))
    if task == "causal language modeling":
        config = GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=2)
        return "tiny-gpt2", GPT2LMHeadModel(config)
    if task == "summarization":
        config = T5Config(
            vocab_size=VOCAB,
            d_model=32,
            d_kv=16,
            d_ff=64,
            num_layers=2,
            num_heads=2,
            decoder_start_token_id=0,
        )
        return "tiny-t5", T5ForConditionalGeneration(config)
    config = BartConfig(
        vocab_size=VOCAB,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=64,
    )
    return "tiny-bart", BartForConditionalGeneration(config)


TASKS = (
    "text classification",
    "token classification",
    "extractive question answering",
    "causal language modeling",
    "summarization",
    "translation",
)


def fine_tune(task: str, output_dir: Path) -> Any:
    generator = torch.Generator().manual_seed(TASKS.index(task))
    name, model = model_for(task)
    args = TrainingArguments(
        output_dir=str(output_dir / "hf-output"),
        num_train_epochs=2,
        per_device_train_batch_size=8,
        logging_strategy="epoch",
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
    )
    emissions = EmissionsCallback(
        project_name=name,
        experiment_name=task,
        region=REGION,
        output_dir=str(output_dir),
        measure_power_secs=1,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=[example(task, generator) for _ in range(ROWS)],
        callbacks=[emissions],
    )
    trainer.train()
    return emissions.final_emissions_data


def main() -> None:
    here = Path.cwd()
    for task in TASKS:
        run = fine_tune(task, here)
        print(
            f"{task}: {run.emissions:.3e} kg CO2eq in {run.duration:.2f} s ({run.intensity_zone})"
        )
    data = report.load([here / "emissions.csv"])
    print()
    print(report.text.overview_markdown(data))


if __name__ == "__main__":
    main()
