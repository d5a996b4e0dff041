"""Every session-state key the app uses, the image the user is working on, and its accessors.

One place for the keys, so pages, widgets and tests cannot drift apart. The current
image is kept as bytes in memory only; a user's file name is cleaned for display and
never used to build a path.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from app.explanations import ExplainSettings
from hematovision.model.imaging import clean_display_name
from hematovision.model.lab_profile import LabProfile
from hematovision.workflows.teaching import Quiz

# Shared by every page
CURRENT_IMAGE = "hv_current_image"  # CurrentImage | None
UPLOAD_ERROR = "hv_upload_error"  # str | None: the message for the last bad upload
UPLOADER_NONCE = "hv_uploader_nonce"  # int: bump it to give the uploaders a new key (clears them)
CELL_INDEX = "hv_cell_index"  # int: which white cell of the current image is shown and explained
IMAGE_REPORT = "hv_image_report"  # (what it was built from, pdf bytes, html text)
PSEUDONYMISE_IMAGE_REPORT = "hv_pseudonymise_image_report"  # "Pseudonymise the file name" on a one-image report
PSEUDONYMISE_BATCH = "hv_pseudonymise_batch"  # the same for the Batch page's report and CSV
LAB_PROFILE = "hv_lab_profile"  # LabProfile | None: adapts the model to the user's lab for this session

# Explain page (the opacity is also used by Atlas and Quiz)
EXPLAIN_SETTINGS = "hv_explain_settings"  # ExplainSettings applied on the Explain page
OPACITY = "hv_opacity"  # float 0..1, the overlay slider
SIGN_VIEW = "hv_sign_view"  # "positive" | "negative" | "both"

# Compare page
COMPARE_SETTINGS = "hv_compare_settings"  # dict: the settings of the last run (survive page changes)
COMPARISONS = "hv_comparisons"  # comparison key -> ImageComparison, this session's results

# Batch page
BATCH = "hv_batch"  # {"cells": [BatchCell], "skipped": [Skipped], "images": {digest: (name, bytes)}, "id": str}
BATCH_REPORT = "hv_batch_report"  # (review signature, pdf bytes, html text)
BATCH_UPLOADER = "hv_batch_uploader"  # the batch page's file uploader
PROFILE_UPLOADER = "hv_profile_uploader"  # the batch page's lab-profile file uploader
PROFILE_MESSAGE = "hv_profile_message"  # (kind, text): the outcome of the last profile action
BATCH_NORM_OPTION = "hv_profile_batch_norm"  # "Build from this batch" also re-estimates the last batch norm
BATCH_TARGET = "hv_batch_target"  # 100 or 200: the cells to count, for the progress bar
REVIEW_INITIALS = "hv_review_initials"  # the reviewer's initials, saved in the review file and the report
REVIEW_NOTE = "hv_review_note"  # the reviewer's free-text note, likewise
REVIEW_UPLOADER = "hv_review_uploader"  # "Resume review": a saved review file
REVIEW_MESSAGE = "hv_review_message"  # (kind, text, unmatched lines): the outcome of the last resume

# Quiz page
QUIZ = "hv_quiz"  # Quiz | None: the student's quiz for this session
QUIZ_POINT_MODE = "hv_quiz_point_mode"  # the "Point and check" toggle (the quiz keeps the choice)

# Widgets whose value the app reads back: the cell pickers write CELL_INDEX from these.
CELL_RADIO = "hv_cell_radio"  # Classify
CELL_SELECT = "hv_cell_select"  # Explain
CELL_SELECT_COMPARE = "hv_cell_select_compare"  # Compare


def uploader_key(page: str) -> str:
    """The image uploader's key on ``page``; a new nonce gives it a new key, which empties it."""
    return f"hv_uploader_{page}_{st.session_state[UPLOADER_NONCE]}"


def review_key(batch_id: str, cell_key: str) -> str:
    """The 'Reviewed as' selectbox of one batch cell."""
    return f"hv_review_{batch_id}_{cell_key}"


def card_key(cell_key: str) -> str:
    """The bordered card of one batch cell: "hv_card_<sha256>_<cell number>", a valid CSS class
    name once Streamlit prefixes it with "st-key-" (a cell key's ':' would need escaping)."""
    return "hv_card_" + cell_key.replace(":", "_")


def quiz_choice_key(quiz: Quiz) -> str:
    """The answer radio of the quiz's current question: fresh for every question and run."""
    return f"hv_quiz_choice_{quiz.seed}_{quiz.position}"


def quiz_point_key(quiz: Quiz) -> str:
    """The clickable image of the quiz's current question; its value is the last click."""
    return f"hv_quiz_point_{quiz.seed}_{quiz.position}"


@dataclass(frozen=True)
class CurrentImage:
    """The image the user is working on, as encoded bytes held in memory."""

    data: bytes = field(repr=False)
    source: str  # "upload" or "sample"
    name: str  # for display only; already cleaned
    sample_key: str | None = None
    digest: str = ""

    @property
    def short_id(self) -> str:
        return self.digest[:10]


def image_digest(data: bytes) -> str:
    """SHA-256 of the encoded bytes: the cache key for everything derived from an image."""
    return hashlib.sha256(data).hexdigest()


def uploaded_image(data: bytes, name: str | None) -> CurrentImage:
    """Uploaded bytes as the current image (whether they decode is checked by the uploader)."""
    return CurrentImage(data=bytes(data), source="upload", name=clean_display_name(name),
                        digest=image_digest(bytes(data)))


def sample_image(data: bytes, key: str, title: str) -> CurrentImage:
    return CurrentImage(data=bytes(data), source="sample", name=title, sample_key=key,
                        digest=image_digest(data))


def init_state() -> None:
    """Create the shared session-state keys once per session."""
    defaults: dict[str, Any] = {
        CURRENT_IMAGE: None,
        UPLOAD_ERROR: None,
        UPLOADER_NONCE: 0,
        EXPLAIN_SETTINGS: ExplainSettings(),
        OPACITY: 0.5,
        CELL_INDEX: 0,
        SIGN_VIEW: "both",
        LAB_PROFILE: None,
    }
    for key, value in defaults.items():
        if key not in st.session_state:
            st.session_state[key] = value


def current_image() -> CurrentImage | None:
    return st.session_state.get(CURRENT_IMAGE)


def set_current_image(image: CurrentImage | None) -> None:
    st.session_state[CURRENT_IMAGE] = image
    st.session_state[UPLOAD_ERROR] = None
    st.session_state[CELL_INDEX] = 0
    # A new image starts from the predicted class again.
    settings = st.session_state.get(EXPLAIN_SETTINGS) or ExplainSettings()
    st.session_state[EXPLAIN_SETTINGS] = dataclasses.replace(settings, target=None)


def refuse_upload(message: str) -> None:
    """No current image, and the reason the last file could not be used."""
    set_current_image(None)
    st.session_state[UPLOAD_ERROR] = message


def upload_error() -> str | None:
    return st.session_state.get(UPLOAD_ERROR)


def clear_uploader() -> None:
    """Give the file uploaders a fresh key so they show empty on the next run."""
    st.session_state[UPLOADER_NONCE] = st.session_state.get(UPLOADER_NONCE, 0) + 1


def lab_profile() -> LabProfile | None:
    return st.session_state.get(LAB_PROFILE)


def lab_profile_id() -> str:
    """The active profile's SHA-256, or "" for the shipped model: part of every cache key
    whose result depends on the model."""
    profile = lab_profile()
    return profile.sha256 if profile is not None else ""


def set_lab_profile(profile: LabProfile | None) -> None:
    """Use this profile from now on in this session (None: the shipped model). Reports made
    with the previous model no longer describe what the pages show, so they go."""
    st.session_state[LAB_PROFILE] = profile
    st.session_state.pop(IMAGE_REPORT, None)
    st.session_state.pop(BATCH_REPORT, None)
