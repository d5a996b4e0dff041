"""The Compare page.

Driven headless through streamlit.testing.v1.AppTest from the real entry point (see
``tests/app/driver.py``).
"""

from __future__ import annotations

from app.state import CURRENT_IMAGE
from tests.app.driver import errors, start
from tests.app.pages import BAD_UPLOADS, expected_message

RUN_COMPARISON = "FormSubmitter:compare_settings-Run the comparison"


def test_compare_page_scores_the_chosen_methods_checks_them_and_keeps_the_result(monkeypatch):
    from app import caches

    calls = []
    real = caches.compare_image

    def counting(*args, **kwargs):
        calls.append(args[2])
        return real(*args, **kwargs)

    monkeypatch.setattr(caches, "compare_image", counting)
    at = start("app_pages/compare.py")
    at.selectbox(key="hv_compare_sample").set_value("neutrophil-2").run()
    at.button(key="hv_compare_use_sample").click().run()
    assert at.session_state[CURRENT_IMAGE].sample_key == "neutrophil-2"
    at.multiselect[0].set_value(["gradcam", "gradcam++"])
    at.checkbox[1].check()  # the randomisation check
    at.button(key=RUN_COMPARISON).click().run()
    assert not at.exception, at.exception
    assert not errors(at), errors(at)
    table = at.dataframe[0].value
    assert sorted(table["Method"]) == ["Grad-CAM", "Grad-CAM++"]
    assert list(table["Deletion AUC ↓"]) == sorted(table["Deletion AUC ↓"])
    assert all(text.startswith("passed") for text in table["Randomisation check"])  # Grad-CAM passes (see test_faithfulness)
    assert all(text.endswith("(deterministic)") for text in table["Seed stability (Spearman / IoU)"])
    assert sum("passes" in message.value for message in at.success) == 2
    assert any("most faithful by deletion AUC" in m.value for m in at.markdown)
    assert [b.proto.label for b in at.get("download_button")][:2] == [
        "Download CSV", "Download JSON (with curves and parameters)"]
    assert calls == [["gradcam", "gradcam++"]]
    # Coming back to the same image and settings reuses the result.
    at.switch_page("app_pages/model.py").run()
    at.switch_page("app_pages/compare.py").run()
    assert not at.exception, at.exception
    assert sorted(at.dataframe[0].value["Method"]) == ["Grad-CAM", "Grad-CAM++"]
    assert len(calls) == 1


def test_compare_page_shows_the_committed_benchmark():
    from hematovision.explanation.compare_tables import load_benchmark

    at = start("app_pages/compare.py")
    assert not at.exception, at.exception
    benchmark = load_benchmark()
    assert benchmark is not None, "docs/xai-benchmark/summary.json is missing"
    table = at.dataframe[0].value
    assert len(table) == len(benchmark["methods"]) >= 8
    assert table["Deletion AUC ↓"].iloc[0].startswith(f"{min(e['deletion_auc']['mean'] for e in benchmark['methods'].values()):.3f}")


def test_compare_page_refuses_a_bad_upload_with_the_loader_message():
    data = BAD_UPLOADS["random-bytes"]
    at = start("app_pages/compare.py")
    at.file_uploader[0].set_value(("cell.png", data, "image/png")).run()
    assert not at.exception, at.exception
    assert any(expected_message(data) in e for e in errors(at)), errors(at)
    assert at.session_state[CURRENT_IMAGE] is None

