"""Promises about who may use the HTTP API, how often, and what it leaves in its logs."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import secrets
import subprocess
import sys

import pytest
from PIL import Image

from hematovision.interfaces.api import create_app
from hematovision.interfaces.api_security import (
    DEFAULT_EXPLAIN_RATE_LIMIT,
    RATE_LIMIT_ENV,
    TOKENS_FILE_ENV,
    SecurityError,
    SecuritySettings,
    check_bind,
    is_loopback,
)
from hematovision.model.classifier import CLASS_NAMES
from scripts.loadtest import free_port
from tests.conftest import REPO_ROOT
from tests.synthetic import SMEAR, encode

CELL = (REPO_ROOT / "samples" / "neutrophil-1.jpeg").read_bytes()
MULTIPART = "multipart/form-data"
PATIENT_ID = "PATIENT-12345"
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
                    "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer"}


def new_token() -> str:
    return secrets.token_urlsafe(32)


@pytest.fixture
def tokens():
    return [new_token(), new_token()]


@pytest.fixture
def tokens_file(tmp_path, tokens):
    path = tmp_path / "tokens"
    path.write_text(f"# the lab's scripts\n{tokens[0]}\n\n  {tokens[1]}  \n# revoked: none yet\n")
    path.chmod(0o600)
    return path


@pytest.fixture
def guarded(classifier, tokens_file):
    """The API as deployed on a shared server: tokens from the file its variable names."""
    settings = SecuritySettings.from_environment({TOKENS_FILE_ENV: str(tokens_file)})
    return create_app(classifier, security=settings).test_client()


@pytest.fixture
def access_log(caplog):
    """Every log record of every logger, at every level (the access log and everything else)."""
    caplog.set_level(logging.DEBUG)
    return caplog


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def post_image(client, url, data=CELL, filename="cell.jpeg", headers=None, **kwargs):
    return client.post(url, data={"image": (io.BytesIO(data), filename)}, content_type=MULTIPART,
                       headers=headers or {}, **kwargs)


def access_lines(caplog) -> list[dict]:
    return [json.loads(record.getMessage()) for record in caplog.records
            if record.name == "hematovision.access"]


# -- tokens --------------------------------------------------------------------------------

def test_predict_needs_a_right_token(guarded, tokens):
    missing = post_image(guarded, "/predict")
    assert missing.status_code == 401
    assert "Authorization: Bearer TOKEN" in missing.get_json()["error"]
    assert missing.headers["WWW-Authenticate"].startswith("Bearer")

    wrong = post_image(guarded, "/predict", headers=bearer(new_token()))
    assert wrong.status_code == 401
    assert wrong.get_json() == {"error": "The token was not accepted."}
    assert "invalid_token" in wrong.headers["WWW-Authenticate"]

    not_bearer = post_image(guarded, "/predict", headers={"Authorization": f"Basic {tokens[0]}"})
    assert not_bearer.status_code == 401
    assert "must read 'Bearer TOKEN'" in not_bearer.get_json()["error"]

    for token in tokens:  # every token in the file, comments and blank lines aside
        right = post_image(guarded, "/predict", headers=bearer(token))
        assert right.status_code == 200
        assert right.get_json()["label"] in CLASS_NAMES


def test_without_a_token_health_says_only_that_the_server_is_up(guarded, tokens):
    anonymous = guarded.get("/health")
    assert anonymous.status_code == 200
    assert anonymous.get_json() == {"status": "ok"}
    signed_in = guarded.get("/health", headers=bearer(tokens[0])).get_json()
    assert signed_in["model"] == "hematovision-mobilenetv2.keras"
    assert signed_in["classes"] == list(CLASS_NAMES)


def test_without_a_token_every_other_url_is_401_even_a_missing_one(guarded, tokens):
    assert post_image(guarded, "/explain").status_code == 401
    assert guarded.get("/no-such-thing").status_code == 401
    assert guarded.get("/no-such-thing", headers=bearer(tokens[0])).status_code == 404


def test_only_hashes_of_the_tokens_are_kept(tokens_file, tokens):
    settings = SecuritySettings.from_environment({TOKENS_FILE_ENV: str(tokens_file)})
    assert settings.tokens.digests == tuple(hashlib.sha256(t.encode()).digest() for t in tokens)
    for token in tokens:
        assert token not in repr(settings)
    assert settings.tokens.identify(tokens[1]) == hashlib.sha256(tokens[1].encode()).hexdigest()[:8]
    assert settings.tokens.identify(tokens[1][:-1]) is None


@pytest.mark.parametrize(("content", "message"), [
    ("", "holds no token"),
    ("# only a comment\n\n", "holds no token"),
    ("short-token\n", "line 1: the token is 11 characters; use at least 32"),
    (f"{'a' * 40}\n{'b' * 20} {'c' * 20}\n", "line 2: a token cannot contain spaces"),
])
def test_an_unusable_tokens_file_is_refused_with_the_reason(tmp_path, content, message):
    path = tmp_path / "tokens"
    path.write_text(content)
    with pytest.raises(SecurityError, match=message):
        SecuritySettings.from_environment({TOKENS_FILE_ENV: str(path)})


@pytest.mark.parametrize(("environ", "message"), [
    ({TOKENS_FILE_ENV: "/nowhere/tokens"}, "names /nowhere/tokens, which does not exist"),
    ({RATE_LIMIT_ENV: "lots"}, f"{RATE_LIMIT_ENV} 'lots' is not a rate limit"),
    ({"HEMATOVISION_API_CORS_ORIGINS": "https://lab.example/app"}, "is not an origin"),
    ({"HEMATOVISION_API_TRUSTED_PROXIES": "one"}, "must be a whole number"),
    ({"HEMATOVISION_API_RATE_LIMIT_STORAGE": "nowhere://x"}, "'nowhere://x' cannot be used: unknown storage"),
])
def test_bad_settings_say_which_variable_is_wrong(environ, message):
    with pytest.raises(SecurityError, match=message):
        SecuritySettings.from_environment(environ)


# -- where the server may listen -----------------------------------------------------------

@pytest.mark.parametrize("host", ["0.0.0.0", "::", "[::]", "192.168.1.20", "10.0.0.5"])
def test_listening_beyond_this_machine_without_tokens_is_refused(host):
    assert not is_loopback(host)
    with pytest.raises(SecurityError, match=f"Refusing to listen on .* without API tokens.*{TOKENS_FILE_ENV}"):
        check_bind(host, SecuritySettings())


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_token(host):
    assert is_loopback(host)
    check_bind(host, SecuritySettings())


def test_with_tokens_any_address_may_be_used(tokens_file):
    check_bind("0.0.0.0", SecuritySettings.from_environment({TOKENS_FILE_ENV: str(tokens_file)}))


def run_cli(args: list[str], environ: dict[str, str]) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("HEMATOVISION_API_")}
    return subprocess.run([sys.executable, "-m", "hematovision", *args], cwd=REPO_ROOT,
                          env={**env, **environ}, capture_output=True, text=True, timeout=300)


def test_serve_on_all_addresses_without_tokens_exits_with_how_to_set_them():
    result = run_cli(["serve", "--host", "0.0.0.0", "--port", str(free_port())], {})
    assert result.returncode == 1
    assert "Refusing to listen on 0.0.0.0 without API tokens" in result.stderr
    assert f"set {TOKENS_FILE_ENV}" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_with_a_bad_tokens_file_exits_with_the_reason(tmp_path):
    path = tmp_path / "tokens"
    path.write_text("password\n")
    result = run_cli(["serve", "--port", str(free_port())], {TOKENS_FILE_ENV: str(path)})
    assert result.returncode == 1
    assert "line 1: the token is 8 characters" in result.stderr
    assert "password" not in result.stderr.replace(str(path), "")


def test_open_server_answers_only_direct_clients_on_this_machine(classifier):
    client = create_app(classifier, security=SecuritySettings()).test_client()
    assert post_image(client, "/predict").status_code == 200
    assert post_image(client, "/predict", environ_base={"REMOTE_ADDR": "127.0.0.2"}).status_code == 200
    remote = post_image(client, "/predict", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert remote.status_code == 403
    assert TOKENS_FILE_ENV in remote.get_json()["error"]
    # A proxy on this machine relays other machines' requests: still refused.
    relayed = post_image(client, "/predict", headers={"X-Forwarded-For": "10.1.2.3"})
    assert relayed.status_code == 403
    assert client.get("/health", environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 403


# -- rate limits ---------------------------------------------------------------------------

def test_the_eleventh_explain_within_a_minute_gets_429_with_retry_after(guarded, tokens):
    assert DEFAULT_EXPLAIN_RATE_LIMIT == "10 per minute"
    # A format the API refuses: the limit counts the request before any model runs.
    for _ in range(10):
        refused = post_image(guarded, "/explain?format=gif", headers=bearer(tokens[0]))
        assert refused.status_code == 400 and "Retry-After" not in refused.headers
    eleventh = post_image(guarded, "/explain?format=gif", headers=bearer(tokens[0]))
    assert eleventh.status_code == 429
    assert eleventh.is_json
    assert "Too many requests: at most 10 per 1 minute" in eleventh.get_json()["error"]
    assert 0 < int(eleventh.headers["Retry-After"]) <= 60
    assert eleventh.headers["X-Content-Type-Options"] == "nosniff"
    # Counted per token: the other token, and the other endpoint, are still served.
    assert post_image(guarded, "/explain?format=gif", headers=bearer(tokens[1])).status_code == 400
    assert post_image(guarded, "/predict", headers=bearer(tokens[0])).status_code == 200


def test_a_configured_limit_counts_per_address_without_tokens(classifier):
    settings = SecuritySettings.from_environment({RATE_LIMIT_ENV: "2 per minute"})
    client = create_app(classifier, security=settings).test_client()
    noise = b"not an image"
    assert [post_image(client, "/predict", noise).status_code for _ in range(3)] == [422, 422, 429]
    other_address = {"REMOTE_ADDR": "127.0.0.3"}
    assert post_image(client, "/predict", noise, environ_base=other_address).status_code == 422


def test_behind_a_trusted_proxy_the_client_address_is_counted(classifier, tokens_file, access_log):
    settings = SecuritySettings.from_environment({TOKENS_FILE_ENV: str(tokens_file),
                                                  "HEMATOVISION_API_EXPLAIN_RATE_LIMIT": "1 per minute",
                                                  "HEMATOVISION_API_TRUSTED_PROXIES": "1"})
    client = create_app(classifier, security=settings).test_client()
    statuses = [post_image(client, "/explain", headers={"X-Forwarded-For": address}).status_code
                for address in ("203.0.113.1", "203.0.113.2", "203.0.113.1")]
    assert statuses == [401, 401, 429]
    assert [line["address"] for line in access_lines(access_log)] == ["203.0.113.1", "203.0.113.2",
                                                                      "203.0.113.1"]


# -- what the access log holds -------------------------------------------------------------

def test_the_access_log_has_one_line_per_request_and_never_the_token(guarded, tokens, access_log):
    post_image(guarded, "/predict", headers=bearer(tokens[0]))
    post_image(guarded, "/predict", headers=bearer(tokens[0] + "x"))
    guarded.get("/health", headers=bearer(tokens[1]))
    lines = access_lines(access_log)
    token_id = hashlib.sha256(tokens[0].encode()).hexdigest()[:8]
    assert [(line["token"], line["endpoint"], line["status"]) for line in lines] == [
        (token_id, "/predict", 200), ("-", "/predict", 401),
        (hashlib.sha256(tokens[1].encode()).hexdigest()[:8], "/health", 200)]
    assert lines[0]["image_sha256"] == [hashlib.sha256(CELL).hexdigest()]
    assert lines[1]["image_sha256"] == []  # refused before the upload was read
    assert all(line["duration_ms"] >= 0 and line["method"] and line["time"] for line in lines)
    for token in tokens:
        assert token not in access_log.text


def test_a_file_name_with_a_patient_id_never_reaches_any_log(guarded, tokens, access_log):
    headers = bearer(tokens[0])
    post_image(guarded, "/predict", filename=f"{PATIENT_ID}.png", headers=headers)
    post_image(guarded, "/predict", b"not an image", filename=f"{PATIENT_ID}.png", headers=headers)
    guarded.get(f"/images/{PATIENT_ID}.png", headers=headers)
    lines = access_lines(access_log)
    assert [line["status"] for line in lines] == [200, 422, 404]
    assert lines[2]["endpoint"] == "(no such endpoint)"
    assert PATIENT_ID not in access_log.text


# -- headers -------------------------------------------------------------------------------

def test_every_answer_carries_the_security_headers_and_no_cors(guarded, tokens):
    answers = [guarded.get("/health"), post_image(guarded, "/predict"),
               post_image(guarded, "/predict", headers=bearer(tokens[0])),
               guarded.get("/nothing", headers=bearer(tokens[0]))]
    assert [answer.status_code for answer in answers] == [200, 401, 200, 404]
    for answer in answers:
        for name, value in SECURITY_HEADERS.items():
            assert answer.headers[name] == value, (answer.status_code, name)
        assert "Access-Control-Allow-Origin" not in answer.headers


def test_a_web_page_at_another_origin_is_refused_unless_configured(classifier, tokens_file, tokens):
    closed = create_app(classifier, security=SecuritySettings()).test_client()
    refused = post_image(closed, "/predict", headers={"Origin": "https://elsewhere.example"})
    assert refused.status_code == 403
    assert "https://elsewhere.example" in refused.get_json()["error"]

    origin = "https://viewer.lab.example"
    settings = SecuritySettings.from_environment({TOKENS_FILE_ENV: str(tokens_file),
                                                  "HEMATOVISION_API_CORS_ORIGINS": origin})
    client = create_app(classifier, security=settings).test_client()
    preflight = client.options("/predict", headers={"Origin": origin,
                                                    "Access-Control-Request-Method": "POST",
                                                    "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == origin
    assert preflight.headers["Access-Control-Allow-Headers"] == "Authorization"
    answer = post_image(client, "/predict", headers={"Origin": origin, **bearer(tokens[0])})
    assert answer.status_code == 200
    assert answer.headers["Access-Control-Allow-Origin"] == origin
    assert "Origin" in answer.headers["Vary"]
    other = post_image(client, "/predict", headers={"Origin": "https://elsewhere.example", **bearer(tokens[0])})
    assert other.status_code == 403


# -- images sent back ------------------------------------------------------------------------

def test_an_explanation_png_carries_no_metadata_of_the_upload(guarded, tokens):
    exif = Image.Exif()
    exif[0x013B] = PATIENT_ID  # Artist
    exif[0x010E] = f"{PATIENT_ID} blood smear"  # ImageDescription
    upload = encode(Image.fromarray(SMEAR), "JPEG", exif=exif)
    assert PATIENT_ID.encode() in upload
    answer = post_image(guarded, "/explain?method=gradcam", upload, headers=bearer(tokens[0]))
    assert answer.status_code == 200 and answer.mimetype == "image/png"
    assert PATIENT_ID.encode() not in answer.data
    with Image.open(io.BytesIO(answer.data)) as picture:
        assert picture.info == {} and not picture.getexif()
        assert picture.width > 224
