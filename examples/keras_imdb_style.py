"""Per-epoch CO2 of the Embedding + Conv1D + BiLSTM text classifier from CodeCarbon's Keras
article, trained on synthetic token data (nothing downloaded).

Run: `pip install '.[keras]' && python examples/keras_imdb_style.py`. Keras runs on whatever
backend `KERAS_BACKEND` names; torch by default here.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np

from carbonmeter.keras import EmissionsCallback

VOCABULARY, LENGTH = 2_000, 64


def synthetic_reviews(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Token ids whose label is whether "good" tokens (below 1000) dominate."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(1, VOCABULARY, size=(count, LENGTH))
    labels = ((tokens < VOCABULARY // 2).mean(axis=1) > 0.5).astype("float32")
    return tokens, labels


def build_model() -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((LENGTH,)),
            keras.layers.Embedding(VOCABULARY, 32),
            keras.layers.Conv1D(32, 5, activation="relu"),
            keras.layers.MaxPooling1D(4),
            keras.layers.Bidirectional(keras.layers.LSTM(16)),
            keras.layers.Dense(1, activation="sigmoid"),
        ]
    )
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def main() -> None:
    x_train, y_train = synthetic_reviews(512, seed=0)
    x_test, y_test = synthetic_reviews(128, seed=1)
    emissions = EmissionsCallback(project_name="keras-imdb-style", measure_power_secs=1)
    history = build_model().fit(
        x_train,
        y_train,
        validation_data=(x_test, y_test),
        epochs=3,
        batch_size=64,
        verbose=0,
        callbacks=[emissions],  # before any logger that should receive co2_kg
    )
    for epoch, (co2_kg, kwh) in enumerate(
        zip(history.history["co2_kg"], history.history["energy_kwh"], strict=True)
    ):
        print(f"epoch {epoch}: {co2_kg:.3e} kg CO2eq, {kwh * 1000:.4f} Wh")
    run = emissions.final_emissions_data
    assert run is not None
    print(f"run: {run.emissions:.3e} kg CO2eq in {run.duration:.1f} s")


if __name__ == "__main__":
    main()
