"""The Explain page: the four maps, their settings and target, the extra methods.

Driven headless through streamlit.testing.v1.AppTest from the real entry point (see
``tests/app/driver.py``).
"""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from app.explanations import ExplainSettings
from app.state import CURRENT_IMAGE, EXPLAIN_SETTINGS, OPACITY, SIGN_VIEW, sample_image
from hematovision.workflows.samples import find_sample
from tests.app.driver import TIMEOUT, errors, start
from tests.app.pages import FAST_EXPLAIN, evaluation_count


def test_explain_without_an_image_offers_a_sample():
    at = start("app_pages/explain.py")
    at.session_state[EXPLAIN_SETTINGS] = FAST_EXPLAIN
    assert any("No image has been chosen yet" in i.value for i in at.info)
    at.button(key="explain_use_sample").click().run()
    assert not at.exception, at.exception
    assert at.session_state[CURRENT_IMAGE] is not None


def open_explain_page(sample_key: str) -> AppTest:
    """The app with a sample as the current image, switched to Explain (fast LIME/SHAP)."""
    sample = find_sample(sample_key)
    at = start()
    at.session_state[CURRENT_IMAGE] = sample_image(sample.read_bytes(), sample.key, sample.title)
    at.session_state[EXPLAIN_SETTINGS] = FAST_EXPLAIN
    return at.switch_page("app_pages/explain.py").run(timeout=TIMEOUT * 2)


def test_explain_renders_all_four_methods_and_caches_them(explain_calls):
    calls = explain_calls

    at = open_explain_page("eosinophil-2")
    assert not at.exception, at.exception
    assert not errors(at), errors(at)

    headings = " ".join(m.value for m in at.markdown)
    for title in ("Grad-CAM", "Grad-CAM++", "LIME", "SHAP"):
        assert f"#### {title}" in headings
    runtime_captions = [c.value for c in at.caption if "model evaluation" in c.value]
    assert len(runtime_captions) == 4, runtime_captions  # Grad-CAM, Grad-CAM++, LIME, SHAP
    evaluations = [evaluation_count(c) for c in runtime_captions]
    assert evaluations[2] == 50 + 1  # LIME: its samples plus the target's forward pass
    assert 1 < evaluations[3] <= 60 + 1  # SHAP: at most its budget plus that pass
    assert len(at.get("download_button")) == 4
    assert sorted(calls) == sorted(["gradcam", "gradcam++", "lime", "shap"])

    # Display-only controls reuse the cached maps.
    at.slider(key=OPACITY).set_value(0.8).run()
    at.radio(key=SIGN_VIEW).set_value("positive").run()
    assert not at.exception, at.exception
    assert len(calls) == 4, calls


def test_after_explaining_the_model_and_explainers_are_hidden_from_the_garbage_collector():
    """Streamlit runs a full gc.collect() after every run; scanning TensorFlow, the model and
    shap's numba code made each click 0.35 s slower (app.caches.freeze_long_lived_objects)."""
    import gc

    from app import caches
    from hematovision.explanation.explainers import get_explainer

    at = open_explain_page("neutrophil-2")
    assert not at.exception, at.exception
    classifier = caches.get_classifier()
    long_lived = [classifier, classifier.model, get_explainer(classifier, "shap")]
    tracked = {id(obj) for obj in gc.get_objects()}  # the permanent generation is not listed
    assert not [obj for obj in long_lived if id(obj) in tracked]
    assert gc.get_freeze_count() > 100_000


def test_explain_settings_form_changes_target_and_samples():
    at = open_explain_page("monocyte-1")
    assert not at.exception, at.exception
    at.selectbox[0].set_value("LYMPHOCYTE")
    at.select_slider[0].set_value(100)
    at.select_slider[1].set_value(100)
    (features,) = [r for r in at.radio if r.label == "SHAP: features"]
    features.set_value("pixels")
    submit = [b for b in at.button if b.label == "Apply settings"]
    assert submit, [b.label for b in at.button]
    submit[0].click().run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    assert not errors(at), errors(at)
    assert at.session_state[EXPLAIN_SETTINGS] == ExplainSettings(100, 100, "LYMPHOCYTE",
                                                                 shap_features="pixels")
    assert any("**Explaining:** Lymphocyte" in m.value for m in at.markdown)
    captions = [c.value for c in at.caption if "model evaluation" in c.value]
    assert evaluation_count(captions[2]) == 100 + 1, captions
    assert evaluation_count(captions[3]) == 100 + 1, captions  # pixel blocks use the whole budget


def test_explain_target_class_can_be_changed():
    sample = find_sample("neutrophil-2")
    at = start()
    at.session_state[CURRENT_IMAGE] = sample_image(sample.read_bytes(), sample.key, sample.title)
    at.session_state[EXPLAIN_SETTINGS] = ExplainSettings(lime_samples=50, shap_evals=60, target="MONOCYTE")
    at.switch_page("app_pages/explain.py").run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    assert not errors(at), errors(at)
    assert any("**Explaining:** Monocyte" in m.value for m in at.markdown)


def test_explain_page_shows_the_extra_methods_on_request():
    at = open_explain_page("lymphocyte-2")
    at.multiselect[0].set_value(["occlusion", "scorecam"])
    at.button(key="FormSubmitter:explain_settings-Apply settings").click().run()
    assert at.session_state[EXPLAIN_SETTINGS].extra_methods == ("occlusion", "scorecam")
    assert not at.exception, at.exception
    assert not errors(at), errors(at)
    headings = " ".join(m.value for m in at.markdown)
    for title in ("Grad-CAM", "LIME", "SHAP", "Score-CAM", "Occlusion"):
        assert f"#### {title}" in headings
    assert "#### Integrated Gradients" not in headings
    assert len(at.get("download_button")) == 6

