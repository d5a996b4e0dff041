"""The app's only cache layer: the model, decoded images, predictions, maps and comparisons.

The core computes; this module decides what is kept and for how long. Everything derived
from an image is keyed by the SHA-256 of its bytes (``CurrentImage.digest``): the bytes
themselves are passed as ``_``-prefixed arguments, which Streamlit does not hash.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import streamlit as st

from app import images, state
from app.state import COMPARISONS
from hematovision import load_classifier
from hematovision.explanation import overlay
from hematovision.explanation.compare import compare_image
from hematovision.explanation.explainers import Explanation, built_explainers, explain
from hematovision.model.classifier import Classifier, Prediction
from hematovision.model.imaging import load_image
from hematovision.model.lab_profile import LabProfile
from hematovision.model.model_card import file_sha256

THUMBNAIL_SIDE = 360  # the sidebar's copy of the current image
MAX_COMPARISONS = 6  # per session; each holds 8 maps of 224x224 floats (~1.6 MB)


@st.cache_resource(show_spinner="Loading the classifier (first time only)…")
def get_classifier() -> Classifier:
    return _kept(load_classifier())


@st.cache_resource(max_entries=4, show_spinner=False)
def adapted_classifier(profile_id: str, _profile: LabProfile) -> Classifier:
    """The model adapted by a lab profile, one per profile (its SHA-256 is ``profile_id``);
    it shares the shipped classifier's network and backend."""
    return _kept(get_classifier().with_lab_profile(_profile))


def _kept(classifier: Classifier) -> Classifier:
    """Count a classifier the caches keep, for ``freeze_long_lived_objects``."""
    global _classifiers_loaded
    _classifiers_loaded += 1
    _classifiers.add(classifier)
    return classifier


def classifier_for(profile_id: str) -> Classifier:
    """The shipped model for "", else the model adapted by this session's profile of that id."""
    if not profile_id:
        return get_classifier()
    profile = state.lab_profile()
    if profile is None or profile.sha256 != profile_id:
        raise RuntimeError("the lab profile in use changed while the page ran; run it again")
    return adapted_classifier(profile_id, profile)


def classifier() -> Classifier:
    """The model this session uses: the shipped one, or adapted by the session's lab profile."""
    return classifier_for(state.lab_profile_id())


_classifiers_loaded = 0
_classifiers: weakref.WeakSet[Classifier] = weakref.WeakSet()  # what the caches made, while cached


def explainers_built() -> int:
    """Explainers built by the classifiers this cache holds (each once per method)."""
    return sum(built_explainers(classifier) for classifier in list(_classifiers))
_frozen_after: tuple[int, int] = (0, 0)  # (classifiers loaded, explainers built) at the last freeze


def freeze_long_lived_objects() -> None:
    """Hide the model, the explainers and the libraries from the cyclic garbage collector.

    Streamlit ends every script run with ``keras.backend.clear_session()``, and that runs a
    full ``gc.collect()``. Once TensorFlow, the model and shap's numba code are loaded, the
    collector walks hundreds of thousands of objects that live as long as the process, on
    every click of every user, holding the GIL (README, "Many users at once", has the cost).
    ``gc.freeze()`` moves everything alive into a generation the collector
    skips. Called at the end of every run, it freezes only after a classifier or a new
    explainer was built, so at most once per method per process: the few objects of that
    one run that are frozen with them are all the memory this can keep.
    """
    global _frozen_after
    built = (_classifiers_loaded, explainers_built())
    if built != _frozen_after:
        gc.freeze()
        _frozen_after = built


# A resource, not data: one shared array instead of a pickled copy per call (a phone photo
# decodes to hundreds of MB). Few entries, since the results derived from it are cached apart.
@st.cache_resource(max_entries=4, show_spinner=False)
def decoded_image(digest: str, _data: bytes) -> np.ndarray:
    """The image as RGB, decoded once per digest for prediction, preview, thumbnail and report.

    Read-only, because every session shares it. Raises ``ImageError`` (not cached) when the
    bytes are not a usable image.
    """
    rgb = load_image(_data)
    rgb.setflags(write=False)
    return rgb


@st.cache_data(max_entries=64, show_spinner=False)
def predict_cells(digest: str, _data: bytes, profile_id: str = "") -> list[Prediction]:
    """One prediction per white cell in the image (biggest first), by the shipped model or,
    with ``profile_id``, by the model adapted by this session's lab profile."""
    return classifier_for(profile_id).predict_cells(decoded_image(digest, _data))


@st.cache_data(max_entries=16, show_spinner=False)
def original_preview(digest: str, _data: bytes, selected: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(display-sized original with every cell's box drawn, (width, height) of the full image).

    The boxes come from the cached prediction, so the digest and ``selected`` decide the result.
    """
    rgb = decoded_image(digest, _data)
    boxes = [cell.box for cell in predict_cells(digest, _data)]
    return images.preview_with_boxes(rgb, boxes, selected), (rgb.shape[1], rgb.shape[0])


@st.cache_data(max_entries=32, show_spinner=False)
def thumbnail(digest: str, _data: bytes) -> np.ndarray:
    """Small RGB copy for the sidebar (any supported format, any size)."""
    return images.thumbnail(decoded_image(digest, _data), THUMBNAIL_SIDE)


@st.cache_data(max_entries=2000, show_spinner=False)
def thumbnail_uri(key: str, _rgb: np.ndarray) -> str:
    """A batch cell's thumbnail as a data URI, by the cell's key: the batch table is redrawn on every rerun."""
    return images.jpeg_data_uri(_rgb)


@st.cache_data(max_entries=128, show_spinner=False)
def explain_crop(key: tuple, _crop: np.ndarray, profile_id: str = "") -> Explanation:
    """One explanation of the model's crop, cached by ``app.explanations.explanation_key``
    and the lab profile in use ("" for the shipped model).

    ``key`` is (image digest and cell, method, target or "", params as a sorted tuple, seed);
    ``_crop`` is not hashed, since the digest and the loaded model determine it.
    """
    _digest, method, target, params, seed = key
    return explain(classifier_for(profile_id), _crop, method=method, target=target or None, seed=seed,
                   **dict(params))


@st.cache_data(max_entries=64, show_spinner=False)
def overlay_download(key: tuple, opacity: float, view: str, _crop: np.ndarray, _explanation: Explanation) -> bytes:
    """PNG (overlay + colour bar) for a download button, cached per explanation and display.

    ``key`` is the explanation's cache key; it determines ``_crop`` and ``_explanation``.
    """
    return overlay.explanation_png(_crop, _explanation, opacity=opacity, view=view)


def cached_comparison(key: tuple):
    """The comparison already run in this session for this image, cell and settings, if any."""
    return st.session_state.get(COMPARISONS, {}).get(key)


def run_comparison(key: tuple, crop: np.ndarray, settings: dict, progress):
    """Run ``hematovision.explanation.compare.compare_image`` and keep the result in the session.

    Kept per session rather than in ``st.cache_data`` so the run can drive a progress bar.
    """
    result = compare_image(classifier(), crop, list(settings["methods"]), target=settings["target"],
                           seed=settings["seed"], steps=settings["steps"], baseline=settings["baseline"],
                           stability_seeds=settings["stability_seeds"], sanity=settings["sanity"],
                           progress=progress)
    stored = st.session_state.setdefault(COMPARISONS, {})
    stored[key] = result
    while len(stored) > MAX_COMPARISONS:  # dicts keep insertion order: drop the oldest
        stored.pop(next(iter(stored)))
    return result


@st.cache_data(show_spinner=False)
def model_file_sha256(path: str, mtime: float) -> str | None:
    """The model file's SHA-256 for the Model page, computed again only when the file changes."""
    return file_sha256(path)
