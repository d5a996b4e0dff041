"""Grad-CAM through tf-keras-vis, arranged so one explanation costs one compiled forward pass.

Calling ``tf_keras_vis.gradcam.Gradcam`` on the whole model is slow: every call
builds a new Keras model (input -> [scores, conv output]) and runs MobileNetV2 eagerly under
a GradientTape. Grad-CAM only needs gradients from the class score back to the last conv
layer, so we split the network there:

* the trunk (image -> ``Conv_1`` output and the class probabilities) runs as one
  compiled tf.function, traced once;
* tf-keras-vis's Gradcam runs on the small head (``Conv_1`` output -> class scores), with
  the head's input as its "penultimate layer", so it computes the CAM exactly as it would
  on the full model (checked to 1e-6), on a 7x7 head instead of the whole network.

The head comes from a clone of the model whose softmax is replaced by tf-keras-vis's
``ReplaceToLinear`` (CAMs should use the class score, not the saturating probability).
The modifier mutates the model it is given, so it only ever touches the clone: the
classifier's own model keeps its softmax.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from hematovision.explanation.explainers.base import Attribution, Explainer, register
from hematovision.model.classifier import LAST_CONV_LAYER, Classifier


class CamNetwork:
    """The model split at the last conv layer: compiled trunk + linear-output head."""

    def __init__(self, classifier: Classifier, layer: str = LAST_CONV_LAYER) -> None:
        import keras
        import tensorflow as tf
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

        model = classifier.model
        self.layer = layer
        size = classifier.input_size
        # The trunk also returns the classifier's own softmax output, so one pass gives
        # both the probabilities (to pick the target) and the features to explain.
        trunk = keras.Model(model.inputs, [model.get_layer(layer).output, model.outputs[0]])
        self._trunk = tf.function(
            lambda batch: trunk(batch, training=False),
            input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32)],
        )
        linear = keras.models.clone_model(model)
        linear.set_weights(model.get_weights())
        ReplaceToLinear()(linear)
        self.head = keras.Model(linear.get_layer(layer).output, linear.outputs)

    def forward(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(conv-layer output with a batch axis, class probabilities) for one image."""
        features, probabilities = self._trunk(image[None])
        return features.numpy(), probabilities.numpy()[0]


def cam_network(classifier: Classifier) -> CamNetwork:
    """One CamNetwork per classifier, shared by Grad-CAM and Grad-CAM++."""
    return classifier.built_once(("cam_network",), lambda: CamNetwork(classifier))


def upsample(cam: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of a coarse (h, w) map to (size, size), pixel centres aligned."""
    resized = Image.fromarray(np.asarray(cam, dtype=np.float32), mode="F").resize(
        (size, size), Image.Resampling.BILINEAR
    )
    return np.asarray(resized, dtype=np.float32)


@register
class GradcamExplainer(Explainer):
    name = "gradcam"
    label = "Grad-CAM"
    signed = False
    defaults: dict[str, Any] = {}

    @staticmethod
    def _visualizer_class() -> type:
        from tf_keras_vis.gradcam import Gradcam

        return Gradcam

    def __init__(self, classifier: Classifier) -> None:
        super().__init__(classifier)
        self.network = cam_network(classifier)
        # clone=False: the head is already our private linear copy; no modifier needed.
        self.visualizer = self._visualizer_class()(self.network.head, clone=False)
        self._features: np.ndarray | None = None

    def forward(self, image: np.ndarray) -> np.ndarray:
        self._features, _ = self.network.forward(image)
        # The answer the user was shown reads the crop both ways up (and, by default, on the
        # int8 network): its top class can differ from this one f32 pass's, so it picks the target.
        return super().forward(image)

    def attribute(self, image: np.ndarray, target_index: int, seed: int,
                  params: dict[str, Any]) -> Attribution:
        from tf_keras_vis.utils.scores import CategoricalScore

        features, self._features = self._features, None  # from forward(), same image
        if features is None:
            features, _ = self.network.forward(image)
        cam = self.visualizer(
            CategoricalScore(target_index),
            features,
            penultimate_layer=0,  # the head's input layer, i.e. Conv_1's output
            seek_penultimate_conv_layer=False,
            expand_cam=False,  # we upsample ourselves: scipy zoom misaligns pixel centres
            normalize_cam=False,  # keep raw values; overlay.py normalises for display
        )
        coarse = np.asarray(cam, dtype=np.float32)[0]
        return Attribution(
            upsample(coarse, image.shape[0]),
            evaluations=0,  # the one forward pass is forward()'s
            details={"layer": self.network.layer, "cam_shape": list(coarse.shape)},
        )
