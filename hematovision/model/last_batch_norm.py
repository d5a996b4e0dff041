"""The last batch norm re-estimated on one lab's cells (AdaBN): an option of unlabelled lab profiles.

Only Conv_1's batch norm (``LAYER``) is re-estimated. On validation data, with f32 and int8
networks alike, that was the one depth that helped both unseen labs without labels;
re-estimating from block 16 or deeper lowered LISC. On LISC itself it helped the f32 network
and cost the int8 one 2 points, so it always runs in the f32 network (the int8 network's f32
original). Its estimate follows the batch's mix of types: from a batch that is mostly one
type, as a differential is, it lowered LISC and PBC, so a profile does it only when asked
(training/EXPERIMENTS.md, "Batch-norm statistics").

The shipped networks have their batch norms folded into the convolutions, so the change is
a gain and an offset per channel after the folded layer: ``y' = gain * y + offset``, where
``y`` is its output. They give ``y'``, over the lab's cells and every position of the
feature map, mean ``beta`` and standard deviation ``|gamma|``: exactly a batch norm whose
moving statistics are the lab's. (Training never updates the moving statistics, which are
ImageNet's, so this aims the lab's cells where an ImageNet-like image would sit.)
``keras_with`` writes the lab's statistics into the Keras network that explanations use, so
they see what predictions see. Conv_1's channels are the network's final features, so the
gain and offset have the final features' width.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

LAYER = "Conv_1_bn"
MAX_IMAGES = 256  # more cells than this add little to one layer's means and variances
CHUNK = 64


def estimate(model, moments: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(gain, offset) from the per-channel mean and variance of the folded layer's output on
    the lab's cells (``moments``) and the Keras network's batch norm (``model``)."""
    layer = model.get_layer(LAYER)
    gamma, beta, _, variance = (np.asarray(w, np.float64) for w in layer.get_weights())
    mean, lab_variance = moments
    # The folded output is gamma (z - mean) / sqrt(variance + eps) + beta; in it, eps weighs this much.
    spread = np.sqrt(np.maximum(lab_variance, 0) + layer.epsilon * gamma**2 / (variance + layer.epsilon))
    # A channel that never varies (gamma 0) keeps its trained output.
    gain = np.where(spread > 0, np.abs(gamma) / np.where(spread > 0, spread, 1), 1.0)
    return gain.astype(np.float32), (beta - gain * mean).astype(np.float32)


def sample(crops: np.ndarray, limit: int = MAX_IMAGES, seed: int = 0) -> np.ndarray:
    if len(crops) <= limit:
        return crops
    return crops[np.sort(np.random.default_rng(seed).choice(len(crops), limit, replace=False))]


def moments(chunks: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and variance over every row and position of channel-last chunks."""
    total, squares, count = 0.0, 0.0, 0
    for values in chunks:
        values = np.asarray(values, np.float64).reshape(-1, values.shape[-1])
        total = total + values.sum(axis=0)
        squares = squares + (values**2).sum(axis=0)
        count += len(values)
    mean = total / count
    return mean, squares / count - mean**2


# -- OpenVINO: the folded network -------------------------------------------------------------

def folded_layer(network):
    """The bias addition that ends the network's last convolution (Conv_1): the converter
    writes a convolution and its folded batch norm as Convolution -> Add (bias)."""
    last = [op for op in network.get_ordered_ops() if op.get_type_name() in ("Convolution", "GroupConvolution")][-1]
    targets = [target.get_node() for target in last.output(0).get_target_inputs()]
    if len(targets) != 1 or targets[0].get_type_name() != "Add":
        raise ValueError("This network's last layer is not laid out as MobileNetV2's converted one.")
    return targets[0]


def apply_to_network(network, gain: np.ndarray, offset: np.ndarray) -> None:
    """Insert ``y * gain + offset`` after the folded layer, in place."""
    from openvino import opset13 as ops

    add = folded_layer(network)
    shape = (1, len(gain), 1, 1)  # the converted network runs channels-first
    consumers = list(add.output(0).get_target_inputs())
    scaled = ops.add(ops.multiply(add.output(0), ops.constant(gain.reshape(shape))), ops.constant(offset.reshape(shape)))
    for consumer in consumers:
        consumer.replace_source_output(scaled.output(0))


def network_moments(network, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``moments`` of the folded layer's output over ``crops`` (``network``: a fresh copy, changed here)."""
    import openvino as ov

    network.add_outputs([folded_layer(network).output(0)])
    compiled = ov.Core().compile_model(network, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    tap = compiled.outputs[-1]
    return moments(np.moveaxis(np.array(compiled(np.ascontiguousarray(crops[i:i + CHUNK], np.float32))[tap]), 1, -1)
                   for i in range(0, len(crops), CHUNK))


# -- Keras: the same change as moving statistics -----------------------------------------------

def keras_with(model, gain: np.ndarray, offset: np.ndarray):
    """A copy of the Keras network whose ``LAYER`` batch norm holds the lab's statistics."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    layer = copy.get_layer(LAYER)
    gamma, beta, mean, variance = (np.asarray(w, np.float64) for w in layer.get_weights())
    epsilon, gain = layer.epsilon, np.asarray(gain, np.float64)
    # y' = gain * y + offset with y = gamma (z - mean) / sqrt(variance + eps) + beta is a
    # batch norm with variance' = (variance + eps) / gain**2 - eps and the mean solving for offset.
    new_variance = np.maximum((variance + epsilon) / gain**2 - epsilon, 0)
    new_scale = gamma / np.sqrt(new_variance + epsilon)
    shift = beta * (1 - gain) - offset
    new_mean = mean + np.divide(shift, new_scale, out=np.zeros_like(shift), where=new_scale != 0)
    layer.set_weights([gamma, beta, new_mean, new_variance])
    return copy


def keras_moments(model, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``moments`` of ``LAYER``'s output over ``crops`` in the Keras network."""
    import keras

    tap = keras.Model(model.input, model.get_layer(LAYER).output)
    return moments(tap.predict(crops[i:i + CHUNK], verbose=0) for i in range(0, len(crops), CHUNK))
