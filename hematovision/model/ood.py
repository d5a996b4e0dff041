"""Does this image look like the training data? A distance on the model's own features.

The classifier always answers one of four classes, even for a photo of a cat. Before
trusting it we ask how far the image's features lie from those of the training images,
in the spirit of the Mahalanobis detector of Lee et al. (2018), who also found
intermediate layers better at this than the last one. The features are MobileNetV2's
block-12 output averaged over the image (``classifier.FEATURE_LAYER``):

* project the features onto their top principal components (fitted on training images),
* score = squared Mahalanobis distance to the nearest class mean (shared covariance)
  + the squared distance off that subspace, in units of its training spread.

Two thresholds, both set on held-out validation images, never on test or non-blood ones:

* ``threshold`` flags a chosen small share (about 1.5%) of the validation images as they
  are: beyond it a cell is unlike the training labs (status ``unfamiliar_source``);
* ``far_threshold`` flags a small share of validation images put through strong
  lab-to-lab changes (stain, light, optics, framing; ``training.calibrate``), or a lower
  line where needed to flag most of a validation set of non-blood images: beyond it the
  image is unlike any stained blood cell (status ``not_blood_cell``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

N_COMPONENTS = 32


@dataclass
class OODDetector:
    mean: np.ndarray  # (features,)
    components: np.ndarray  # (k, features), orthonormal rows
    class_means: np.ndarray  # (classes, k)
    precision: np.ndarray  # (k, k), inverse of the shared within-class covariance
    residual_scale: float  # mean squared distance off the subspace on training images
    threshold: float = np.inf
    far_threshold: float = np.inf

    @classmethod
    def fit(cls, features: np.ndarray, labels: np.ndarray, n_components: int = N_COMPONENTS) -> "OODDetector":
        features = np.asarray(features, np.float64)
        labels = np.asarray(labels)
        mean = features.mean(axis=0)
        centred = features - mean
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        components = vt[:n_components]
        projected = centred @ components.T
        classes = np.unique(labels)
        class_means = np.stack([projected[labels == c].mean(axis=0) for c in classes])
        within = projected - class_means[np.searchsorted(classes, labels)]
        covariance = within.T @ within / len(within) + 1e-6 * np.eye(len(components))
        residual = centred - projected @ components
        return cls(mean.astype(np.float32), components.astype(np.float32), class_means.astype(np.float32),
                   np.linalg.inv(covariance).astype(np.float32),
                   float(np.mean(np.sum(residual**2, axis=1)) / features.shape[1]))

    def score(self, features: np.ndarray) -> np.ndarray:
        """One distance per row of ``features``; larger means less like the training images."""
        centred = np.atleast_2d(np.asarray(features, np.float32)) - self.mean
        projected = centred @ self.components.T
        residual = centred - projected @ self.components
        offsets = projected[:, None, :] - self.class_means[None, :, :]
        mahalanobis = np.einsum("nck,kl,ncl->nc", offsets, self.precision, offsets).min(axis=1)
        off_subspace = np.sum(residual**2, axis=1) / (self.residual_scale * centred.shape[1])
        return mahalanobis + off_subspace

    def set_threshold(self, validation_features: np.ndarray, flag_rate: float) -> float:
        """Flag about ``flag_rate`` of these in-distribution images, and no more."""
        self.threshold = float(np.quantile(self.score(validation_features), 1.0 - flag_rate))
        if not np.isfinite(self.far_threshold):  # until a far threshold is set, one line marks both
            self.far_threshold = self.threshold
        return self.threshold

    def set_far_threshold(self, shifted_features: np.ndarray, flag_rate: float,
                          non_blood_features: np.ndarray | None = None, non_blood_target: float = 0.97) -> float:
        """Flag about ``flag_rate`` of these blood cells seen through strong lab-to-lab changes,
        or more where needed to flag ``non_blood_target`` of these non-blood images."""
        far = float(np.quantile(self.score(shifted_features), 1.0 - flag_rate))
        if non_blood_features is not None and len(non_blood_features):
            far = min(far, float(np.quantile(self.score(non_blood_features), 1.0 - non_blood_target)))
        self.far_threshold = max(far, self.threshold)
        return self.far_threshold

    def is_unfamiliar(self, features: np.ndarray) -> np.ndarray:
        return self.score(features) > self.threshold

    def save(self, path: Path) -> None:
        np.savez_compressed(path, mean=self.mean, components=self.components, class_means=self.class_means,
                            precision=self.precision, residual_scale=self.residual_scale,
                            threshold=self.threshold, far_threshold=self.far_threshold)

    @classmethod
    def load(cls, path: Path) -> "OODDetector":
        with np.load(path) as stored:
            threshold = float(stored["threshold"])
            # Files from before issue 12 have one threshold, which then marks not_blood_cell.
            far = float(stored["far_threshold"]) if "far_threshold" in stored else threshold
            return cls(stored["mean"], stored["components"], stored["class_means"], stored["precision"],
                       float(stored["residual_scale"]), threshold, far)
