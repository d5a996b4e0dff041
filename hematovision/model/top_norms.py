"""The last batch norm re-estimated on one lab's cells (AdaBN): an option of unlabelled lab profiles.

Only Conv_1's batch norm (``LAYERS``) is re-estimated. On validation data, with f32 and int8
networks alike, that was the one depth that helped both unseen labs without labels;
re-estimating from block 16 or deeper lowered LISC. On LISC itself it helped the f32 network
and cost the int8 one 2 points, so a profile does it only when asked
(training/EXPERIMENTS.md, "Batch-norm statistics").

The shipped networks have their batch norms folded into the convolutions, so the change is
a gain and an offset per channel after each layer: ``y' = gain * y + offset``, where ``y``
is the folded layer's output. They give ``y'``, over the lab's cells and every position of
the feature map, mean ``beta`` and standard deviation ``|gamma|``: exactly a batch norm whose
moving statistics are the lab's. (Training never updates the moving statistics, which are
ImageNet's, so this aims the lab's cells where an ImageNet-like image would sit.)
``keras_with`` writes the lab's statistics into the Keras network that explanations use, so
they see what predictions see.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

LAYERS = ("Conv_1_bn",)
MAX_IMAGES = 256  # more cells than this add little to a layer's means and variances
CHUNK = 64


@dataclass(frozen=True)
class TopNorms:
    """Per-channel gains and offsets for ``LAYERS``, one array each, in that order."""

    gains: tuple[np.ndarray, ...]
    offsets: tuple[np.ndarray, ...]

    @classmethod
    def from_flat(cls, gains: np.ndarray, offsets: np.ndarray, widths: Sequence[int]) -> TopNorms:
        cuts = np.cumsum(widths)[:-1]
        return cls(tuple(np.split(np.asarray(gains, np.float32), cuts)),
                   tuple(np.split(np.asarray(offsets, np.float32), cuts)))

    def flat(self) -> tuple[np.ndarray, np.ndarray]:
        return np.concatenate(self.gains), np.concatenate(self.offsets)

    @property
    def widths(self) -> tuple[int, ...]:
        return tuple(len(g) for g in self.gains)


@dataclass(frozen=True)
class Reference:
    """What each layer's batch norm gives the training images, from the Keras network."""

    mean: tuple[np.ndarray, ...]  # beta
    spread: tuple[np.ndarray, ...]  # |gamma|
    epsilon_term: tuple[np.ndarray, ...]  # epsilon * (gamma / sqrt(moving variance + epsilon))**2

    @classmethod
    def of(cls, model) -> Reference:
        mean, spread, epsilon_term = [], [], []
        for name in LAYERS:
            layer = model.get_layer(name)
            gamma, beta, _, variance = (np.asarray(w, np.float64) for w in layer.get_weights())
            mean.append(beta)
            spread.append(np.abs(gamma))
            epsilon_term.append(layer.epsilon * gamma**2 / (variance + layer.epsilon))
        return cls(tuple(mean), tuple(spread), tuple(epsilon_term))


def estimate(layer_moments: Callable[[int, TopNorms], tuple[np.ndarray, np.ndarray]], reference: Reference,
             widths: Sequence[int]) -> TopNorms:
    """Re-estimate the layers in order, each on the output of the ones already re-estimated.

    ``layer_moments(i, norms)`` gives the per-channel mean and variance of layer ``i``'s
    folded output over the lab's cells, with ``norms`` applied to the layers before it.
    """
    gains = [np.ones(w, np.float32) for w in widths]
    offsets = [np.zeros(w, np.float32) for w in widths]
    for index in range(len(LAYERS)):
        mean, variance = layer_moments(index, TopNorms(tuple(gains), tuple(offsets)))
        spread = np.sqrt(np.maximum(variance, 0) + reference.epsilon_term[index])
        # A channel that never varies (gamma 0) keeps its trained output.
        gain = np.where(spread > 0, reference.spread[index] / np.where(spread > 0, spread, 1), 1.0)
        gains[index] = gain.astype(np.float32)
        offsets[index] = (reference.mean[index] - gain * mean).astype(np.float32)
    return TopNorms(tuple(gains), tuple(offsets))


def sample(crops: np.ndarray, limit: int = MAX_IMAGES, seed: int = 0) -> np.ndarray:
    if len(crops) <= limit:
        return crops
    return crops[np.sort(np.random.default_rng(seed).choice(len(crops), limit, replace=False))]


def moments(chunks) -> tuple[np.ndarray, np.ndarray]:
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

def folded_layers(network) -> list:
    """The bias additions that end each of ``LAYERS`` (the network's last convolutions) in a
    converted network: the converter writes a convolution and its folded batch norm as
    Convolution -> Add (bias)."""
    convolutions = [op for op in network.get_ordered_ops() if op.get_type_name() in ("Convolution", "GroupConvolution")]
    adds = []
    for convolution in convolutions[-len(LAYERS):]:
        targets = [target.get_node() for target in convolution.output(0).get_target_inputs()]
        if len(targets) != 1 or targets[0].get_type_name() != "Add":
            raise ValueError("This network's top block is not laid out as MobileNetV2's converted one.")
        adds.append(targets[0])
    return adds


def folded_widths(network) -> tuple[int, ...]:
    return tuple(int(add.get_output_partial_shape(0)[1].get_length()) for add in folded_layers(network))


def apply_to_network(network, norms: TopNorms, layers: int | None = None) -> None:
    """Insert ``y * gain + offset`` after the first ``layers`` of ``LAYERS`` (all by default), in place."""
    from openvino import opset13 as ops

    for add, gain, offset in list(zip(folded_layers(network), norms.gains, norms.offsets))[:layers]:
        shape = (1, len(gain), 1, 1)  # the converted network runs channels-first
        consumers = list(add.output(0).get_target_inputs())
        scaled = ops.add(ops.multiply(add.output(0), ops.constant(gain.reshape(shape))),
                         ops.constant(offset.reshape(shape)))
        for consumer in consumers:
            consumer.replace_source_output(scaled.output(0))


def network_moments(read_network: Callable[[], object], crops: np.ndarray) -> Callable:
    """``layer_moments`` for ``estimate`` on an OpenVINO network (``read_network()`` gives a fresh copy)."""
    import openvino as ov

    def layer_moments(index: int, norms: TopNorms) -> tuple[np.ndarray, np.ndarray]:
        network = read_network()
        apply_to_network(network, norms, layers=index)
        network.add_outputs([folded_layers(network)[index].output(0)])
        compiled = ov.Core().compile_model(network, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        tap = compiled.outputs[-1]
        return moments(np.moveaxis(np.array(compiled(np.ascontiguousarray(crops[i:i + CHUNK], np.float32))[tap]), 1, -1)
                       for i in range(0, len(crops), CHUNK))

    return layer_moments


# -- Keras: the same change as moving statistics -----------------------------------------------

def keras_with(model, norms: TopNorms):
    """A copy of the Keras network whose ``LAYERS`` batch norms hold the lab's statistics."""
    import keras

    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    for name, gain, offset in zip(LAYERS, norms.gains, norms.offsets):
        layer = copy.get_layer(name)
        gamma, beta, mean, variance = (np.asarray(w, np.float64) for w in layer.get_weights())
        epsilon = layer.epsilon
        # y' = gain * y + offset with y = gamma (z - mean) / sqrt(variance + eps) + beta is a
        # batch norm with variance' = (variance + eps) / gain**2 - eps and the mean solving for offset.
        new_variance = np.maximum((variance + epsilon) / np.asarray(gain, np.float64) ** 2 - epsilon, 0)
        new_scale = gamma / np.sqrt(new_variance + epsilon)
        shift = beta * (1 - gain) - offset
        new_mean = mean + np.divide(shift, new_scale, out=np.zeros_like(shift), where=new_scale != 0)
        layer.set_weights([gamma, beta, new_mean, new_variance])
    return copy


def keras_moments(model, crops: np.ndarray) -> Callable:
    """``layer_moments`` for ``estimate`` on the Keras network."""
    import keras

    def layer_moments(index: int, norms: TopNorms) -> tuple[np.ndarray, np.ndarray]:
        adapted = keras_with(model, norms)
        tap = keras.Model(adapted.input, adapted.get_layer(LAYERS[index]).output)
        return moments(tap.predict(crops[i:i + CHUNK], verbose=0) for i in range(0, len(crops), CHUNK))

    return layer_moments
