"""HematoVision: classify white blood cells and explain why.

Core package (no Streamlit here). Typical use:

    from hematovision import load_classifier, load_image
    clf = load_classifier()
    result = clf.predict(load_image("cell.jpg"))
"""

from hematovision.model.classifier import CLASS_NAMES, Classifier, Prediction, load_classifier
from hematovision.model.imaging import ImageError, load_image

__all__ = [
    "CLASS_NAMES",
    "Classifier",
    "ImageError",
    "Prediction",
    "load_classifier",
    "load_image",
]
