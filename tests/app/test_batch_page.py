"""The Batch page: the differential, reviews, other cells and links to Explain.

Driven headless through streamlit.testing.v1.AppTest from the real entry point (see
``tests/app/driver.py``).
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app.state import (
    BATCH,
    BATCH_NORM_OPTION,
    BATCH_REPORT,
    BATCH_UPLOADER,
    CURRENT_IMAGE,
    EXPLAIN_SETTINGS,
    LAB_PROFILE,
    PROFILE_UPLOADER,
    PSEUDONYMISE_BATCH,
    REVIEW_UPLOADER,
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
    table = table_with(at, "Cell type")
    return dict(zip(table["Cell type"], table["Count"]))


def table_with(at: AppTest, column: str):
    """The first table on the page with this column."""
    return next(frame.value for frame in at.dataframe if column in frame.value)


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
    # The exports call the images image-001, …; the key stays on the page (issue 17).
    assert at.toggle(key=PSEUDONYMISE_BATCH).value
    key = table_with(at, "In the exports")
    assert len(key) == 21 and "image-001" in set(key["In the exports"]) and "not-a-cell.png" in set(key["File"])
    _, pdf, html = at.session_state[BATCH_REPORT]
    assert "image-001" in html
    for name in ("neutrophil-1.jpeg", "slide-2.zip", "not-a-cell.png"):
        assert name not in html and name.encode() not in pdf
    at.toggle(key=PSEUDONYMISE_BATCH).set_value(False).run()
    assert "Download PDF report" not in [b.proto.label for b in at.get("download_button")]  # prepare again
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
        model_sha256 = "0" * 64  # named in a saved review file

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
    # On a lab the model never saw, real four-type cells land here too: the list says so.
    assert any("not in the differential above" in m.value and "never saw" in m.value for m in at.markdown)
    assert any("Looks most like **an erythroblast (nucleated red cell)** (91% that it is none of the four)"
               in m.value for m in at.markdown)
    assert at.button(key=f"hv_batch_other_explain_{cells[3].key}")  # opens the cell on the Explain page
    table = table_with(at, "Counted as")
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


def test_the_batch_norm_option_builds_a_profile_that_changes_the_classes():
    at = start("app_pages/batch.py")
    at.file_uploader(key=BATCH_UPLOADER).set_value(lisc_batch()).run()
    at.button(key="hv_batch_classify").click().run(timeout=TIMEOUT * 2)
    before = batch_cells(at)
    at.checkbox(key=BATCH_NORM_OPTION).check().run()
    at.button(key="hv_profile_from_batch").click().run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    profile = at.session_state[LAB_PROFILE]
    assert profile.kind == "unlabelled" and profile.norm_gains is not None
    assert any("last batch norm re-estimated" in s.value for s in at.success)
    after = batch_cells(at)
    assert any(a.prediction.probabilities != b.prediction.probabilities for a, b in zip(before, after))


def test_a_batch_norm_profile_from_a_batch_of_mostly_one_type_comes_with_a_warning():
    at = start("app_pages/batch.py")
    neutrophils = sorted((LISC / "neutrophil").glob("*.png"))
    at.file_uploader(key=BATCH_UPLOADER).set_value([(p.name, p.read_bytes(), "image/png") for p in neutrophils]).run()
    at.button(key="hv_batch_classify").click().run(timeout=TIMEOUT * 2)
    at.checkbox(key=BATCH_NORM_OPTION).check().run()
    at.button(key="hv_profile_from_batch").click().run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    assert at.session_state[LAB_PROFILE].caution is not None
    assert any("look like neutrophils" in w.value and "similar numbers" in w.value for w in at.warning)
    assert not any("last batch norm re-estimated" in s.value for s in at.success)
    # The caution stays while the profile is in use, and every page's note names the lopsided batch.
    at.run()
    assert any("look like neutrophils" in w.value for w in at.warning)
    assert any("mostly neutrophils" in m.value for m in at.markdown)


def test_a_bad_profile_file_is_refused_and_the_shipped_model_stays():
    at = start("app_pages/batch.py")
    at.file_uploader(key=PROFILE_UPLOADER).set_value(("lab.json", b'{"format": "x"}', "application/json")).run()
    assert not at.exception, at.exception
    assert any("not a HematoVision lab profile" in e.value and "used as it was" in e.value for e in at.error)
    assert at.session_state[LAB_PROFILE] is None


# -- review files (issue 16) -----------------------------------------------------------------

@pytest.fixture
def served_files(monkeypatch) -> list:
    """The media store of each AppTest run: what a download button hands the browser."""
    from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
    from streamlit.testing.v1 import app_test

    stores = []

    class Recording(MemoryMediaFileStorage):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            stores.append(self)

    monkeypatch.setattr(app_test, "MemoryMediaFileStorage", Recording)
    return stores


def downloaded(at: AppTest, stores: list, label: str) -> bytes:
    [button] = [b for b in at.get("download_button") if b.proto.label == label]
    return stores[-1].get_file(button.proto.url.rsplit("/", 1)[1]).content


def classified(files) -> AppTest:
    at = start("app_pages/batch.py")
    at.file_uploader(key=BATCH_UPLOADER).set_value(files).run()
    at.button(key="hv_batch_classify").click().run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    return at


def what_the_page_shows(at: AppTest) -> tuple:
    metrics = {m.label: m.value for m in at.metric}
    cells = table_with(at, "Reviewed as")
    boxes = [at.selectbox(key=review_key(at.session_state[BATCH]["id"], cell.key)).value
             for cell in batch_cells(at)]
    return (differential_counts(at), metrics["Counted"], metrics["Reviewed"], metrics["Changed by you"],
            list(cells["Reviewed as"]), list(cells["Counted as"]), boxes)


def test_a_review_saved_as_a_file_resumes_in_a_fresh_session_exactly_as_it_was(served_files):
    at = classified(twenty_cells())
    batch = at.session_state[BATCH]
    cells = batch_cells(at)
    changes = {next(c for c in cells if c.predicted == "NEUTROPHIL").key: "MONOCYTE",
               next(c for c in cells if c.predicted == "LYMPHOCYTE").key: "NOT_CLASSED",
               next(c for c in cells if c.predicted == "EOSINOPHIL").key: "EOSINOPHIL"}
    for key, choice in changes.items():
        at.selectbox(key=review_key(batch["id"], key)).set_value(choice).run()
    at.text_input(key="hv_review_initials_input").input("JK").run()
    assert not at.exception, at.exception
    before = what_the_page_shows(at)
    assert before[2:4] == ("3 / 20", "2")
    saved = downloaded(at, served_files, "Save review")
    assert json.loads(saved)["reviewer"]["initials"] == "JK"

    fresh = classified(twenty_cells())  # a reload: a new session, the same images uploaded again
    assert what_the_page_shows(fresh)[2] == "0 / 20"
    fresh.file_uploader(key=REVIEW_UPLOADER).set_value(("review.json", saved, "application/json")).run()
    assert not fresh.exception, fresh.exception
    assert any("Resumed the review by JK" in s.value and "20 cells matched" in s.value for s in fresh.success)
    assert what_the_page_shows(fresh) == before
    assert fresh.text_input(key="hv_review_initials_input").value == "JK"

    # Classified anew, the batch starts unreviewed; the file still in the uploader is applied again on request.
    fresh.button(key="hv_batch_classify").click().run(timeout=TIMEOUT * 2)
    assert what_the_page_shows(fresh)[2] == "0 / 20"
    fresh.button(key="hv_review_reapply").click().run()
    assert not fresh.exception, fresh.exception
    assert what_the_page_shows(fresh) == before

    # A file for another model, or a damaged one, is refused and leaves the resumed review alone.
    other_model = json.loads(saved) | {"model_sha256": "0" * 64}
    for data, message in ((json.dumps(other_model).encode(), "made with another model"),
                          (saved[: len(saved) // 2], "not valid JSON")):
        fresh.file_uploader(key=REVIEW_UPLOADER).set_value(("review.json", data, "application/json")).run()
        assert not fresh.exception, fresh.exception
        assert any(message in e.value and "reviews are as they were" in e.value for e in fresh.error)
        assert what_the_page_shows(fresh) == before


def test_a_review_of_other_images_lists_what_did_not_match(served_files):
    at = classified(twenty_cells()[:4])
    at.selectbox(key=review_key(at.session_state[BATCH]["id"], batch_cells(at)[0].key)).set_value("NOT_CLASSED").run()
    saved = downloaded(at, served_files, "Save review")
    fresh = classified(twenty_cells()[2:6])  # two images in common
    fresh.file_uploader(key=REVIEW_UPLOADER).set_value(("review.json", saved, "application/json")).run()
    assert not fresh.exception, fresh.exception
    [warning] = [w.value for w in fresh.warning if "Resumed the review" in w.value]
    assert "2 cells matched, 2 in the file not found in this batch, 2 in this batch not in the file" in warning
    unmatched = list(table_with(fresh, "Not matched")["Not matched"])
    assert len(unmatched) == 4 and unmatched[0].startswith("In the file, not in this batch: ")
    assert "reviewed as not classed" in unmatched[0]
