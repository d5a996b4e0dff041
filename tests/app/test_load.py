"""Many users at once: the promises scripts/loadtest.py measures, as tests.

* Eight people classifying and explaining at the same time on one `streamlit run` server
  all get their prediction and four overlays, see no error, and the server's memory stays
  bounded (browser test, marker ``e2e``).
* One person rerunning Explain 500 times neither rebuilds the model or an explainer nor
  makes the process grow by more than 10%.

Together they took under 3 minutes on 2 cores shared with another job (README, Quick start,
has the measured numbers and the command that prints them).
"""

from __future__ import annotations

import json

import pytest

from scripts import loadtest

SESSIONS = 8
RERUNS = 500

# Peak: a warmed server holds ~1.6 GB (TensorFlow, the model, shap, lime); eight sessions
# explaining at once add their perturbation batches (LIME's 150 crops of 224x224x3 float32
# are ~90 MB) and their overlays. 6 GB is over twice the ~2.5-2.8 GB measured and still
# fits a small CI machine. It catches a runaway, not a slow leak: the next bound does that.
PEAK_RSS_MB = 6 * 1024
# After: the server's RSS 5 s after the eight sessions closed, minus its RSS after one
# warm-up session. A session's own data is a few MB (upload, four 224x224 maps in the shared
# cache, overlay PNGs kept until the session expires), but the allocator keeps the buffers
# freed by eight concurrent script threads for reuse: +0.9 GB was measured after 8 sessions,
# and a second round of 8 on the same server added only 0.08 GB more, so it levels off
# (README). 1.5 GB allows for another machine's allocator; a leak of one LIME and one SHAP
# batch per session (8 x 2 x ~90 MB on top of the 0.9 GB) would not fit under it.
AFTER_GROWTH_MB = 1536
RERUN_GROWTH_PCT = 10.0


@pytest.mark.e2e
@pytest.mark.skipif(not loadtest.CHROMIUM.exists(),
                    reason="the load test needs Debian's chromium at /usr/bin/chromium: "
                           "apt-get install chromium")
def test_eight_simultaneous_sessions_all_get_four_overlays_and_memory_stays_bounded():
    report = loadtest.concurrent_sessions(sessions=SESSIONS)
    print(json.dumps(report, indent=1))  # shown with a failure, or with -s

    failed = [session for session in report["per_session"] if not session["success"]]
    assert not failed, failed
    assert report["warmup_session"]["success"], report["warmup_session"]
    assert report["succeeded"] == SESSIONS
    assert report["server_alive_at_end"]
    assert len({session["file"] for session in report["per_session"]}) == SESSIONS  # all different

    rss = report["server_rss_mb"]
    assert report["rss_samples"] > 10, "the memory sampler did not run"
    assert 0 < rss["idle"] <= rss["before"] <= rss["peak"], rss
    assert rss["peak"] < PEAK_RSS_MB, rss
    assert rss["after"] - rss["before"] < AFTER_GROWTH_MB, rss


def test_500_explain_reruns_build_nothing_and_grow_memory_by_at_most_10_percent():
    report = loadtest.rerun_explain(reruns=RERUNS)
    print(json.dumps(report, indent=1))

    # Nothing is built or computed again once the page has shown its four maps.
    assert report["during_reruns"] == {"classifiers_built": 0, "load_classifier_calls": 0,
                                       "explainers_built": 0, "explanations_computed": 0}, report
    instances = report["explainer_instances"]
    assert instances["at_end"] == instances["after_warmup"], instances
    # Warm-up builds at most one classifier and one explainer per method shown (none at all
    # when an earlier test in this process already did).
    assert report["after_warmup"]["classifiers_built"] <= 1, report
    assert report["after_warmup"]["explainers_built"] <= 4, report
    assert report["rss_growth_pct"] <= RERUN_GROWTH_PCT, report
