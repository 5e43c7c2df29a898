"""The seed notebook's Keras U-Net, timed on the same batches as ours: fit and predict img/s.

The network is the notebook's, layer for layer (Lambda x/255, 3x3 'same' convs with ReLU and
he_normal, dropout 0.1..0.3, 2x2 max pooling, 2x2 stride-2 transposed convs, skip
concatenation, a 1x1 sigmoid output; 1,941,105 parameters), compiled as it was (Adam, binary
cross-entropy, accuracy) and run as it was (``model.fit`` at batch 16, ``model.predict``), in
fp32. Needs TensorFlow: ``pip install 'nuclei-unet[bench]'``; ``throughput.py`` calls
:func:`keras_rates` when it is there.
"""

from __future__ import annotations

import os

import numpy as np
from timing import median_rate  # beside this file

# (filters, dropout) per level, encoder top to bottleneck, as in the notebook
LEVELS = [(16, 0.1), (32, 0.1), (64, 0.2), (128, 0.2), (256, 0.3)]
SEED_PARAMETERS = 1_941_105


def seed_model(keras):
    """The notebook's U-Net as a ``keras.Model`` (input ``(128, 128, 3)``, values 0..255)."""
    layers = keras.layers

    def block(x, filters: int, dropout: float):
        x = layers.Conv2D(filters, 3, activation="relu", kernel_initializer="he_normal", padding="same")(x)
        x = layers.Dropout(dropout)(x)
        return layers.Conv2D(filters, 3, activation="relu", kernel_initializer="he_normal", padding="same")(x)

    inputs = keras.Input((128, 128, 3))
    x = layers.Rescaling(1.0 / 255)(inputs)  # the notebook's Lambda(lambda x: x / 255)
    skips = []
    for filters, dropout in LEVELS[:-1]:
        x = block(x, filters, dropout)
        skips.append(x)
        x = layers.MaxPooling2D(2)(x)
    x = block(x, *LEVELS[-1])
    for (filters, dropout), skip in zip(reversed(LEVELS[:-1]), reversed(skips)):
        x = layers.Conv2DTranspose(filters, 2, strides=2, padding="same")(x)
        x = block(layers.concatenate([x, skip]), filters, dropout)
    outputs = layers.Conv2D(1, 1, activation="sigmoid")(x)
    model = keras.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def keras_rates(
    images: np.ndarray, masks: np.ndarray, batch_size: int, repeats: int, threads: int
) -> dict[str, float]:
    """``keras_img_s`` (one ``fit`` epoch over ``images (N, 128, 128, 3) uint8`` and ``masks
    (N, 128, 128)`` 0/1) and ``keras_predict_img_s``, medians of ``repeats`` runs after a
    warm-up run (graph tracing is not timed)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    keras.utils.set_random_seed(0)
    model = seed_model(keras)
    assert model.count_params() == SEED_PARAMETERS, model.count_params()
    x = images.astype(np.float32)
    y = masks[..., None].astype(np.float32)
    def fit() -> None:
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=True)

    def predict() -> None:
        model.predict(x, batch_size=batch_size, verbose=0)

    return {
        "keras_img_s": median_rate(fit, len(x), repeats),
        "keras_predict_img_s": median_rate(predict, len(x), repeats),
    }
