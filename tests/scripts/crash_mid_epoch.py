"""Trains with a carbonmeter callback and raises in the middle of epoch 1, uncaught.

Usage: crash_mid_epoch.py keras|transformers OUTPUT_DIR. Neither framework tells callbacks about
an exception, so the rows come from the callback's exit hook when the interpreter dies.
"""

import sys

framework, output_dir = sys.argv[1], sys.argv[2]

if framework == "keras":
    import keras
    import numpy as np

    from carbonmeter.keras import EmissionsCallback

    class Boom(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            if self.epoch == 1 and batch == 2:
                raise RuntimeError("boom in epoch 1")

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.ones((64, 4), dtype="float32")
    emissions = EmissionsCallback(output_dir=output_dir, country_iso_code="FRA")
    model.fit(x, x[:, :1], epochs=3, batch_size=8, verbose=0, callbacks=[emissions, Boom()])
else:
    import torch
    from transformers import (
        BertConfig,
        BertForSequenceClassification,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    from carbonmeter.transformers import EmissionsCallback

    class Boom(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.epoch is not None and 1.2 < state.epoch < 2:
                raise RuntimeError("boom in epoch 1")

    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
    )
    ids = torch.randint(0, 50, (64, 8))
    data = [{"input_ids": row, "labels": torch.tensor(0)} for row in ids]
    args = TrainingArguments(
        output_dir=f"{output_dir}/hf",
        num_train_epochs=3,
        per_device_train_batch_size=8,
        report_to="none",
        disable_tqdm=True,
        save_strategy="no",
        use_cpu=True,
    )
    emissions = EmissionsCallback(output_dir=output_dir, country_iso_code="FRA")
    trainer = Trainer(
        model=BertForSequenceClassification(config),
        args=args,
        train_dataset=data,
        callbacks=[emissions, Boom()],
    )
    trainer.train()
