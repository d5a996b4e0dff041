"""Score-CAM (Wang et al. 2020) through tf-keras-vis, capped to stay usable on a CPU.

Each of the last conv layer's feature maps is upsampled into a mask over the image;
the masked images go through the model and each map is weighted by the class score it
earns. Conv_1 has 1,280 maps: ``max_channels`` keeps only the most active ones (the
faster variant tf-keras-vis calls ``max_N``), so one explanation costs that many forward
passes instead of 1,280.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from hematovision.explanation.explainers.base import Attribution, Explainer, register, require_int
from hematovision.model.classifier import LAST_CONV_LAYER, Classifier


@register
class ScoreCamExplainer(Explainer):
    name = "scorecam"
    label = "Score-CAM"
    signed = False
    defaults = {"max_channels": 64}

    def __init__(self, classifier: Classifier) -> None:
        from tf_keras_vis.scorecam import Scorecam
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

        super().__init__(classifier)
        self._scorecam = Scorecam(classifier.model, model_modifier=ReplaceToLinear(), clone=True)

    def attribute(self, image: np.ndarray, target_index: int, seed: int,
                  params: dict[str, Any]) -> Attribution:
        import keras
        from tf_keras_vis.utils.scores import CategoricalScore

        channels = require_int(params, "max_channels", 1)
        # Scorecam runs the masked images through model.predict(), whose progress bars would
        # land in the CLI's JSON and the server log. Keras keeps this switch per thread, so it
        # is set around each call, in the calling thread, and put back afterwards.
        was_interactive = keras.utils.is_interactive_logging_enabled()
        keras.utils.disable_interactive_logging()
        try:
            with warnings.catch_warnings():
                # tf-keras-vis passes the input as a list; Keras warns and then accepts it.
                warnings.filterwarnings("ignore", message="The structure of `inputs`", category=UserWarning)
                cam = self._scorecam(CategoricalScore([target_index]), image[None].copy(),
                                     penultimate_layer=LAST_CONV_LAYER, max_N=channels, batch_size=32,
                                     normalize_cam=False)
        finally:
            if was_interactive:
                keras.utils.enable_interactive_logging()
        return Attribution(np.asarray(cam)[0], evaluations=channels + 1)
