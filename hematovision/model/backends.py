"""Forward passes behind one small interface: OpenVINO (the default) or TensorFlow.

Every forward-only pass (predictions, LIME, SHAP, occlusion, the deletion curves, the
trust checks' features) goes through ``Backend.forward``. On these CPUs OpenVINO runs the
same network 2-3x faster per batch and 6-8x faster per image than TensorFlow (README,
"Speed"), and a prediction through it never imports TensorFlow. The gradient methods
(Grad-CAM and the like) need TensorFlow and load the Keras model when first asked.

The OpenVINO network is the Keras model converted once (``export_openvino``), written next
to the ``.keras`` file as ``<name>.openvino.xml``/``.bin`` with the model's SHA-256 beside
it. A missing or stale one is converted at load time into the user's cache folder.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Protocol

import numpy as np

BACKENDS = ("openvino", "tensorflow")
PRECISIONS = ("f32", "bf16", "int8")
BACKEND_ENV = "HEMATOVISION_BACKEND"
PRECISION_ENV = "HEMATOVISION_PRECISION"
DEFAULT_BACKEND = "openvino"
CACHE_ENV = "HEMATOVISION_CACHE"


class Backend(Protocol):
    name: str
    precision: str
    input_size: int
    widths: tuple[int, int, int]  # block-12 features, final features, classes

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(pooled block-12 features, final pooled features, softmax) for a float32 NHWC batch."""

    def head_weights(self) -> tuple[np.ndarray, np.ndarray] | None:
        """The final dense layer: weights (features, classes) and biases, or None if unknown."""

    def with_batch_norm(self, gain: np.ndarray, offset: np.ndarray) -> Backend:
        """The network with a lab's re-estimated last batch norm (``last_batch_norm.py``); in f32
        where this one is int8."""

    def batch_norm_moments(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-channel mean and variance of the last batch norm's output over these crops, in the
        network ``with_batch_norm`` changes."""


def chosen_backend(name: str | None = None) -> str:
    name = (name or os.environ.get(BACKEND_ENV) or DEFAULT_BACKEND).strip().lower()
    name = {"tf": "tensorflow", "ov": "openvino"}.get(name, name)
    if name not in BACKENDS:
        raise ValueError(f"Unknown backend {name!r}; choose one of {', '.join(BACKENDS)} "
                         f"(argument --backend or ${BACKEND_ENV}).")
    return name


def features_model(model, feature_layer: str, final_layer: str):
    """The Keras network with the three outputs every forward pass returns."""
    import keras

    pooled = keras.layers.GlobalAveragePooling2D(name="ood_features")(model.get_layer(feature_layer).output)
    return keras.Model(model.input, [pooled, model.get_layer(final_layer).output, model.output])


def requested_precision(name: str | None = None) -> str | None:
    """The precision asked for (the argument, else ``$HEMATOVISION_PRECISION``), checked;
    None when neither asks, and the model decides (``default_precision``)."""
    name = (name or os.environ.get(PRECISION_ENV) or "").strip().lower()
    if name and name not in PRECISIONS:
        raise ValueError(f"Unknown precision {name!r}; choose one of {', '.join(PRECISIONS)} "
                         f"(argument --precision or ${PRECISION_ENV}).")
    return name or None


def network_of(precision: str) -> str:
    """Whose features a precision gives: int8's own (quantisation moves them enough to shift
    every distance fitted on them), or f32's (bf16 stays close to it)."""
    return "int8" if precision == "int8" else "f32"


def default_precision(model_path: Path, model_sha256: str, has_int8_trust: bool) -> str:
    """int8 where a network quantised from this very model sits beside it, with trust checks
    fitted to it in the card (README, "Speed", has the measurements behind this); else f32."""
    return "int8" if has_int8_trust and _current(int8_beside(model_path), model_sha256) else "f32"


class TensorFlowBackend:
    name = "tensorflow"
    precision = "f32"

    def __init__(self, model, feature_layer: str, final_layer: str) -> None:
        import tensorflow as tf

        self._model = model
        self._layers = (feature_layer, final_layer)
        self.input_size = int(model.input_shape[1])
        with_features = features_model(model, feature_layer, final_layer)
        self.widths = tuple(int(output.shape[-1]) for output in with_features.outputs)
        signature = [tf.TensorSpec([None, self.input_size, self.input_size, 3], tf.float32)]
        # One traced graph for every batch size: perturbation explainers call this
        # thousands of times, and model.predict() pays its per-call set-up every time.
        self._forward = tf.function(lambda batch: with_features(batch, training=False),
                                    input_signature=signature, reduce_retracing=True)

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return tuple(part.numpy() for part in self._forward(batch))

    def head_weights(self) -> tuple[np.ndarray, np.ndarray]:
        weights, bias = self._model.layers[-1].get_weights()
        return weights, bias

    # A lab profile's re-estimated last batch norm (last_batch_norm.py)
    def with_batch_norm(self, gain: np.ndarray, offset: np.ndarray) -> TensorFlowBackend:
        from hematovision.model.last_batch_norm import keras_with

        return TensorFlowBackend(keras_with(self._model, gain, offset), *self._layers)

    def batch_norm_moments(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from hematovision.model.last_batch_norm import keras_moments

        return keras_moments(self._model, crops)


class OpenVinoBackend:
    name = "openvino"

    def __init__(self, xml_path: Path, precision: str = "f32", f32_network: Path | None = None,
                 batch_norm: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        import openvino as ov

        if precision not in PRECISIONS:
            raise ValueError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}.")
        core = ov.Core()
        network = core.read_model(str(xml_path))
        self.xml_path, self._f32_network = Path(xml_path), f32_network
        if batch_norm is not None:  # a lab profile's re-estimated last batch norm: (gain, offset)
            from hematovision.model.last_batch_norm import apply_to_network

            apply_to_network(network, *batch_norm)
        self.input_size = int(network.inputs[0].get_partial_shape()[1].get_length())
        # f32 (the default) matches TensorFlow's probabilities to 1e-4; bf16 runs on the CPU's
        # AMX units and is measured against f32 by training.precision before it is trusted.
        # An int8 network was quantised ahead (training.quantize_int8): its int8 layers run
        # as int8 and everything else in f32.
        self.precision = precision
        hint = "f32" if precision == "int8" else precision
        self._compiled = core.compile_model(network, "CPU", {"INFERENCE_PRECISION_HINT": hint})
        self._outputs = list(self._compiled.outputs)
        self.widths = tuple(int(output.get_partial_shape()[-1].get_length()) for output in self._outputs)
        self._head = _dense_head(network)
        if self._head is None and f32_network is not None:
            # An int8 network's head is quantised; a lab profile refits the f32 head, which the
            # f32 network it was quantised from holds as plain constants (reading it compiles nothing).
            self._head = _dense_head(core.read_model(str(f32_network)))

    def head_weights(self) -> tuple[np.ndarray, np.ndarray] | None:
        return self._head

    def _adaptable(self) -> tuple[Path, str]:
        """The network a lab's re-estimated batch norm goes into, and its precision: an int8
        network's f32 original where it is known. With the same gains, int8 lost macro recall on
        LISC where f32 gained (training/EXPERIMENTS.md, "Batch-norm statistics")."""
        if self.precision == "int8" and self._f32_network is not None:
            return self._f32_network, "f32"
        return self.xml_path, self.precision

    def with_batch_norm(self, gain: np.ndarray, offset: np.ndarray) -> OpenVinoBackend:
        xml_path, precision = self._adaptable()
        return OpenVinoBackend(xml_path, precision, self._f32_network, (gain, offset))

    def batch_norm_moments(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import openvino as ov

        from hematovision.model.last_batch_norm import network_moments

        return network_moments(ov.Core().read_model(str(self._adaptable()[0])), crops)

    def forward(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        # A new request per call keeps concurrent callers (the app's sessions) apart.
        results = self._compiled.create_infer_request().infer([np.ascontiguousarray(batch, np.float32)])
        return tuple(np.array(results[output]) for output in self._outputs)


def _dense_head(network) -> tuple[np.ndarray, np.ndarray] | None:
    """The final dense layer, read from the network's constants: the converter writes it as
    softmax(MatMul(features, W) + b). Lets a lab profile be built without TensorFlow. None
    for any other shape (an int8 network's quantised weights): the caller then asks Keras."""
    add = network.get_results()[2].input_value(0).get_node().input_value(0).get_node()
    if add.get_type_name() != "Add" or add.input_value(0).get_node().get_type_name() != "MatMul":
        return None
    matmul = add.input_value(0).get_node()
    weights, bias = matmul.input_value(1).get_node(), add.input_value(1).get_node()
    if weights.get_type_name() != "Constant" or bias.get_type_name() != "Constant":
        return None
    weights = np.array(weights.get_data(), np.float32)
    if matmul.get_attributes().get("transpose_b"):
        weights = weights.T
    return weights, np.array(bias.get_data(), np.float32).reshape(-1)


# -- the OpenVINO network: beside the model, or converted into the cache ------------------

def openvino_beside(model_path: Path) -> Path:
    """``models/x.keras`` -> ``models/x.openvino.xml`` (its weights in ``.bin``, its source in ``.json``)."""
    return model_path.with_name(model_path.stem + ".openvino.xml")


def int8_beside(model_path: Path) -> Path:
    """``models/x.keras`` -> ``models/x.openvino-int8.xml``: the network quantised to int8."""
    return model_path.with_name(model_path.stem + ".openvino-int8.xml")


def shipped_f32_network(model_path: Path, model_sha256: str) -> Path | None:
    """The f32 network beside the model, if it was made from this very file."""
    network = openvino_beside(model_path)
    return network if _current(network, model_sha256) else None


def _current(xml_path: Path, model_sha256: str) -> bool:
    """The network and its weights are there, recorded as made from this model."""
    return xml_path.is_file() and xml_path.with_suffix(".bin").is_file() and _recorded_sha(xml_path) == model_sha256


def _recorded_sha(xml_path: Path) -> str | None:
    try:
        return json.loads(xml_path.with_suffix(".json").read_text()).get("model_sha256")
    except (OSError, ValueError, AttributeError):
        return None


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "hematovision")


def openvino_network(model_path: Path, model_sha256: str, keras_loader, feature_layer: str,
                     final_layer: str, precision: str = "f32") -> Path:
    """The OpenVINO network for this model file: the one shipped beside it when it was made
    from this very file, else one converted once into the cache (TensorFlow is needed then).
    An int8 network cannot be made at load time (it needs calibration images): it must sit
    beside the model."""
    if precision == "int8":
        quantised = int8_beside(model_path)
        if _current(quantised, model_sha256):
            return quantised
        raise FileNotFoundError(f"No int8 network for {model_path.name} (looked for {quantised.name}, made from this "
                                "file); make one with `python -m training.quantize_int8`.")
    cached = cache_dir() / "openvino" / f"{model_sha256[:16]}.openvino.xml"
    for candidate in (openvino_beside(model_path), cached):
        if _current(candidate, model_sha256):
            return candidate
    cached.parent.mkdir(parents=True, exist_ok=True)
    return export_openvino(keras_loader(), cached, model_sha256, feature_layer, final_layer)


def export_openvino(model, xml_path: Path, model_sha256: str, feature_layer: str, final_layer: str) -> Path:
    """Convert the Keras network (with its three outputs) to OpenVINO f32 and record which model it came from."""
    import openvino as ov

    with tempfile.TemporaryDirectory() as saved:
        features_model(model, feature_layer, final_layer).export(saved, format="tf_saved_model", verbose=False)
        network = ov.convert_model(saved)
    ov.save_model(network, str(xml_path), compress_to_fp16=False)
    xml_path.with_suffix(".json").write_text(json.dumps({"model_sha256": model_sha256}) + "\n")
    return xml_path
