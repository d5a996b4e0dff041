"""Optional sign-in (issue 17): with an [auth] section in the secrets, nothing shows until the
visitor signs in; without one, the app is open as before. AppTest stands in for the identity
provider by setting ``st.user``, as Streamlit's cookie would after a real OIDC sign-in."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app.state import BATCH_REPORT, IMAGE_REPORT
from hematovision.workflows.samples import list_samples
from tests.app.driver import APP, TIMEOUT
from tests.app.pages import PAGES

AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "not-a-real-secret",
        "client_id": "hematovision", "client_secret": "not-a-real-secret",
        "server_metadata_url": "https://login.example.org/.well-known/openid-configuration"}


def app_with_auth(user: dict, auth: dict = AUTH) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    at.secrets["auth"] = auth
    at.user = user
    return at


def buttons(at: AppTest) -> list[str]:
    return [button.label for button in at.button]


def test_without_auth_the_app_is_open_and_asks_for_nothing():
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert at.title[0].value == "HematoVision" and at.subheader  # the Home page itself
    assert not any(label.startswith("Sign in") or label == "Log out" for label in buttons(at))


@pytest.mark.parametrize("page", PAGES)
def test_with_auth_every_page_shows_only_the_sign_in_prompt(page):
    at = app_with_auth({"is_logged_in": False}).run()
    at.switch_page(page).run()  # a deep link to any page
    assert not at.exception
    assert buttons(at) == ["Sign in"]
    assert "sign in before they can see or upload images" in at.info[0].value
    assert not at.subheader and not at.metric and not at.get("file_uploader")


def test_a_signed_in_user_sees_the_app_and_their_name():
    at = app_with_auth({"is_logged_in": True, "name": "Dr Ada Lovelace", "email": "ada@example.org"}).run()
    assert not at.exception
    assert at.subheader  # the Home page's content
    assert any("Signed in as **Dr Ada Lovelace**" in caption.value for caption in at.sidebar.caption)
    assert "Log out" in buttons(at)


def test_each_named_provider_gets_its_own_button():
    auth = {key: AUTH[key] for key in ("redirect_uri", "cookie_secret")}
    auth["microsoft"] = {key: AUTH[key] for key in ("client_id", "client_secret", "server_metadata_url")}
    auth["hospital_sso"] = dict(auth["microsoft"])
    at = app_with_auth({"is_logged_in": False}, auth).run()
    assert buttons(at) == ["Sign in with Microsoft", "Sign in with Hospital Sso"]


def test_the_batch_report_names_the_signed_in_reviewer():
    at = app_with_auth({"is_logged_in": True, "name": "Dr Ada Lovelace", "email": "ada@example.org"}).run()
    at.switch_page("app_pages/batch.py").run()
    at.file_uploader[0].set_value([(s.path.name, s.read_bytes(), "image/jpeg") for s in list_samples()[:2]]).run()
    at.button(key="hv_batch_classify").click().run(timeout=TIMEOUT * 2)
    at.button(key="hv_batch_prepare").click().run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    _, pdf, html = at.session_state[BATCH_REPORT]
    assert "Signed in as: Dr Ada Lovelace." in html


def test_the_one_image_report_names_the_signed_in_user():
    at = app_with_auth({"is_logged_in": True, "name": "Dr Ada Lovelace", "email": "ada@example.org"}).run()
    at.switch_page("app_pages/classify.py").run()
    at.button(key="sample_neutrophil-1").click().run()
    at.button(key="hv_prepare_image_report").click().run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    assert "Prepared by: Dr Ada Lovelace (signed in)" in at.session_state[IMAGE_REPORT][2]
