"""The Batch page: the differential, reviews, other cells and links to Explain.

Driven headless through streamlit.testing.v1.AppTest from the real entry point (see
``tests/app/driver.py``).
"""

from __future__ import annotations

import io

import numpy as np
from streamlit.testing.v1 import AppTest

from app.state import (
    BATCH,
    BATCH_UPLOADER,
    CURRENT_IMAGE,
    EXPLAIN_SETTINGS,
    LAB_PROFILE,
    PROFILE_UPLOADER,
    review_key,
)
from hematovision import load_image
from hematovision.model.classifier import CLASS_NAMES, display_name
from hematovision.model.trust import UNFAMILIAR_SOURCE
from hematovision.workflows.batch import cells_csv
from hematovision.workflows.samples import list_samples
from tests.app.driver import TIMEOUT, start
from tests.app.pages import FAST_EXPLAIN, png_bytes
from tests.conftest import REPO_ROOT


def twenty_cells() -> list[tuple[str, bytes, str]]:
    """The 12 samples as loose files plus 8 colour-shifted copies in a zip with folders, and a bad file."""
    import zipfile

    samples = list_samples()
    files = [(s.path.name, s.read_bytes(), "image/jpeg") for s in samples]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for number, sample in enumerate(samples[:8]):
            rgb = np.clip(load_image(sample.path).astype(np.int16) + number + 1, 0, 255).astype(np.uint8)
            archive.writestr(f"slide-2/field {number}/{sample.path.stem}-copy.png", png_bytes(rgb))
    files.append(("slide-2.zip", buffer.getvalue(), "application/zip"))
    files.append(("not-a-cell.png", b"this is text, not a picture", "image/png"))
    return files


def differential_counts(at: AppTest) -> dict[str, int]:
    table = at.dataframe[-1].value if "Cell type" in at.dataframe[-1].value else at.dataframe[0].value
    return dict(zip(table["Cell type"], table["Count"]))


def test_batch_page_classifies_twenty_cells_and_a_review_changes_the_differential():
    at = start("app_pages/batch.py")
    at.file_uploader[0].set_value(twenty_cells()).run()
    at.button(key="hv_batch_classify").click().run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    assert [m.value for m in at.metric][:1] == ["20"]  # 12 + 8 white cells
    skipped = at.dataframe[0].value
    assert list(skipped["File"]) == ["not-a-cell.png"] and "not an image" in skipped["Reason"][0]
    before = {row: count for row, count in zip(at.dataframe[1].value["Cell type"], at.dataframe[1].value["Count"])}
    assert sum(before.values()) <= 20
    batch = at.session_state["hv_batch"]
    neutrophil = next(c for c in batch["cells"] if c.predicted == "NEUTROPHIL" and c.prediction.status == "confident")
    lymphocyte = next(c for c in batch["cells"] if c.predicted == "LYMPHOCYTE" and c.prediction.status == "confident")
    at.selectbox(key=f"hv_review_{batch['id']}_{neutrophil.key}").set_value("MONOCYTE").run()
    at.selectbox(key=f"hv_review_{batch['id']}_{lymphocyte.key}").set_value("NOT_CLASSED").run()
    assert not at.exception, at.exception
    after = {row: count for row, count in zip(at.dataframe[1].value["Cell type"], at.dataframe[1].value["Count"])}
    assert after["Neutrophil"] == before["Neutrophil"] - 1 and after["Monocyte"] == before["Monocyte"] + 1
    assert after["Lymphocyte"] == before["Lymphocyte"] - 1
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Reviewed"] == "2 / 20" and metrics["Changed by you"] == "2"
    # The report is prepared on request and offered as PDF and HTML.
    at.button(key="hv_batch_prepare").click().run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    labels = [b.proto.label for b in at.get("download_button")]
    assert {"Download CSV of all cells", "Download PDF report", "Download HTML report"} <= set(labels)
    # Reviews survive a trip to another page.
    at.switch_page("app_pages/model.py").run()
    at.switch_page("app_pages/batch.py").run()
    assert {m.label: m.value for m in at.metric}["Reviewed"] == "2 / 20"


def test_batch_page_lists_other_cells_apart_and_warns_about_an_unfamiliar_lab(monkeypatch):
    """A batch of hand-made predictions (no model needed): one of each status."""
    from app import caches
    from hematovision.model.trust import TrustModel
    from tests.model.test_statuses import one_of_each

    class Model:
        trust = TrustModel()

    monkeypatch.setattr(caches, "get_classifier", lambda: Model())
    cells = one_of_each()
    at = start()
    at.session_state["hv_batch"] = {"cells": cells, "skipped": [], "id": "synthetic", "images": {}}
    at.switch_page("app_pages/batch.py").run()
    assert not at.exception, at.exception
    assert differential_counts(at) == {"Eosinophil": 1, "Lymphocyte": 1, "Monocyte": 0, "Neutrophil": 2}
    assert {m.label: m.value for m in at.metric}["Counted"] == "4"
    [warning] = [w.value for w in at.warning if "unlike the labs" in w.value]
    assert "check each one" in warning and "build a *lab profile*" in warning
    assert "Other cells, review" in [h.value for h in at.subheader]
    assert any("Looks most like **an erythroblast (nucleated red cell)** (91% that it is none of the four)"
               in m.value for m in at.markdown)
    assert at.button(key=f"hv_batch_other_explain_{cells[3].key}")  # opens the cell on the Explain page
    table = at.dataframe[-1].value
    assert list(table["Counted as"]) == ["Neutrophil", "Neutrophil", "Lymphocyte", "other cell, review",
                                         "not classed", "Eosinophil"]


def test_batch_explain_button_opens_that_cell_on_the_explain_page():
    at = start("app_pages/batch.py")
    at.file_uploader[0].set_value(twenty_cells()[12:13]).run()  # the zip: 8 cells
    at.button(key="hv_batch_classify").click().run(timeout=TIMEOUT * 2)
    cell = at.session_state["hv_batch"]["cells"][3]
    at.session_state[EXPLAIN_SETTINGS] = FAST_EXPLAIN
    at.button(key=f"hv_batch_explain_{cell.key}").click().run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    assert at.session_state[CURRENT_IMAGE].name == cell.file
    assert any(f"**Predicted:** {display_name(cell.predicted)}" in m.value for m in at.markdown)



# -- lab profiles (issue 14) -----------------------------------------------------------------

LISC = REPO_ROOT.parent / "shared" / "data" / "lisc"


def lisc_batch(per_class: int = 9) -> list[tuple[str, bytes, str]]:
    """Cells from a lab the model never trained on (LISC stands for the user's own lab), the
    four types interleaved as in a real batch."""
    per_type = [sorted((LISC / name.lower()).glob("*.png"))[:per_class] for name in CLASS_NAMES]
    return [(path.name, path.read_bytes(), "image/png") for group in zip(*per_type) for path in group]


def batch_cells(at: AppTest) -> list:
    return at.session_state[BATCH]["cells"]


def test_a_lab_profile_built_from_the_batch_and_from_reviews_changes_what_the_model_says():
    at = start("app_pages/batch.py")
    at.file_uploader(key=BATCH_UPLOADER).set_value(lisc_batch()).run()
    at.button(key="hv_batch_classify").click().run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    before = batch_cells(at)
    assert len(before) == 36
    unfamiliar_before = sum(cell.status == UNFAMILIAR_SOURCE for cell in before)

    # Unlabelled, from the batch itself: the lab's own cells stop being "unfamiliar".
    at.button(key="hv_profile_from_batch").click().run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    assert any("Now using lab profile" in s.value and "unlabelled" in s.value for s in at.success)
    profile = at.session_state[LAB_PROFILE]
    assert profile.kind == "unlabelled"
    after = batch_cells(at)
    assert sum(cell.status == UNFAMILIAR_SOURCE for cell in after) < unfamiliar_before
    assert any(profile.short_id in m.value for m in at.sidebar.markdown)  # shown on every page
    csv_text = cells_csv(after, profile.sha256)
    assert f",{profile.sha256}" in csv_text.splitlines()[1]

    # Few-shot, from reviews: one reviewed cell of each type (its true class), then rebuild.
    batch = at.session_state[BATCH]
    truth = {path_name: name for name in CLASS_NAMES for path_name, _, _ in lisc_batch()
             if path_name.startswith(f"lisc_{name.lower()[:4]}")}
    for name in CLASS_NAMES:
        cell = next(c for c in after[:24] if truth.get(c.file) == name)  # the first page of the review
        at.selectbox(key=review_key(batch["id"], cell.key)).set_value(name).run()
    at.button(key="hv_profile_from_reviews").click().run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    assert at.session_state[LAB_PROFILE].kind == "few_shot"
    refitted = batch_cells(at)
    assert sum(c.reviewed is not None for c in refitted) == 4  # the reviews survive the new model
    changed = [a.prediction.probabilities != b.prediction.probabilities for a, b in zip(after, refitted)]
    assert all(changed)

    # Stop: the shipped model again.
    at.button(key="hv_profile_stop").click().run(timeout=TIMEOUT * 2)
    assert at.session_state[LAB_PROFILE] is None
    assert [c.prediction.status for c in batch_cells(at)] == [c.prediction.status for c in before]


def test_a_bad_profile_file_is_refused_and_the_shipped_model_stays():
    at = start("app_pages/batch.py")
    at.file_uploader(key=PROFILE_UPLOADER).set_value(("lab.json", b'{"format": "x"}', "application/json")).run()
    assert not at.exception, at.exception
    assert any("not a HematoVision lab profile" in e.value and "used as it was" in e.value for e in at.error)
    assert at.session_state[LAB_PROFILE] is None
