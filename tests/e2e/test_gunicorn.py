"""End to end: the HTTP API served by gunicorn, as docs/security.md deploys it, called over HTTP.

gunicorn runs with the project's config (hematovision.interfaces.gunicorn_conf), 2 workers,
on a free loopback port, with a tokens file; its process group is stopped afterwards
whatever happens.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from scripts.loadtest import free_port, stop_group, wait_until_answering
from tests.conftest import REPO_ROOT

GUNICORN = Path(sys.executable).with_name("gunicorn")
SAMPLE = REPO_ROOT / "samples" / "neutrophil-1.jpeg"
CONFIG = "python:hematovision.interfaces.gunicorn_conf"
STARTUP_S = 300  # two workers each load the model; the machine may be busy
PATIENT_FILE_NAME = "PATIENT-12345.jpeg"


def environment(**settings: str) -> dict[str, str]:
    """This process's environment without any API settings of the developer's, plus ``settings``."""
    kept = {key: value for key, value in os.environ.items() if not key.startswith("HEMATOVISION_API_")}
    return {**kept, **settings}


def call(url: str, token: str | None = None, image: bytes | None = None,
         file_name: str = "cell.jpeg") -> tuple[int, dict, dict]:
    """(status, headers, JSON body) of GET (no image) or a multipart POST to ``url``."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = None
    if image is not None:
        boundary = uuid.uuid4().hex
        data = (f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{file_name}"\r\n'
                "Content-Type: image/jpeg\r\n\r\n").encode() + image + f"\r\n--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    request = urllib.request.Request(url, data=data, headers=headers, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as refusal:
        return refusal.code, dict(refusal.headers), json.loads(refusal.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("gunicorn")
    tokens_file = folder / "tokens"
    tokens_file.write_text(secrets.token_urlsafe(32) + "\n")
    tokens_file.chmod(0o600)
    port = free_port()
    log = folder / "gunicorn.log"
    with open(log, "w") as output:
        process = subprocess.Popen([str(GUNICORN), "-c", CONFIG, "-w", "2", "-b", f"127.0.0.1:{port}"],
                                   cwd=REPO_ROOT, env=environment(HEMATOVISION_API_TOKENS_FILE=str(tokens_file),
                                                   # polled below; test_api_security tests the limits
                                                   HEMATOVISION_API_RATE_LIMIT="1000 per minute"),
                                   stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_answering(f"{url}/health", process, log, STARTUP_S)
        yield url, process, tokens_file, log
    finally:
        stop_group(process)


def test_gunicorn_serves_the_api_to_a_token_only(server, classifier):
    url, _process, tokens_file, log = server
    token = tokens_file.read_text().strip()
    image = SAMPLE.read_bytes()

    assert call(f"{url}/health")[::2] == (200, {"status": "ok"})  # up, and nothing more without a token
    status, headers, body = call(f"{url}/predict", image=image)
    assert status == 401 and "Authorization: Bearer TOKEN" in body["error"]
    assert headers["WWW-Authenticate"].startswith("Bearer")
    assert call(f"{url}/predict", token=secrets.token_urlsafe(32), image=image)[0] == 401

    status, headers, body = call(f"{url}/predict", token=token, image=image, file_name=PATIENT_FILE_NAME)
    assert status == 200
    assert body["label"] == classifier.predict(SAMPLE).label
    assert headers["Cache-Control"] == "no-store" and headers["X-Content-Type-Options"] == "nosniff"

    # The access log (gunicorn's stderr) names the token by id and the image by hash, nothing more.
    time.sleep(0.5)
    output = log.read_text()
    access = [json.loads(line) for line in output.splitlines() if line.startswith('{"time"')]
    assert any(line["token"] == hashlib.sha256(token.encode()).hexdigest()[:8]
               and line["image_sha256"] == [hashlib.sha256(image).hexdigest()] for line in access)
    assert token not in output
    assert "PATIENT-12345" not in output


def test_a_new_tokens_file_takes_effect_on_sighup(server):
    url, process, tokens_file, _log = server
    old, new = tokens_file.read_text().strip(), secrets.token_urlsafe(32)
    tokens_file.write_text(new + "\n")
    os.kill(process.pid, signal.SIGHUP)  # gunicorn replaces its workers; each reads the file anew
    image = SAMPLE.read_bytes()
    deadline = time.monotonic() + STARTUP_S
    answers: list[tuple[int, int]] = []  # (status for the new token, for the old one)
    # Old workers finish what they hold before they stop: wait for four agreeing answers in a row.
    while answers[-4:] != [(200, 401)] * 4:
        assert time.monotonic() < deadline, f"after SIGHUP, (new, old) token answers: {answers[-8:]}"
        answers.append((call(f"{url}/predict", token=new, image=image)[0],
                        call(f"{url}/predict", token=old, image=image)[0]))
        time.sleep(0.5)


def test_gunicorn_on_all_addresses_without_tokens_refuses_to_start():
    result = subprocess.run([str(GUNICORN), "-c", CONFIG, "-b", f"0.0.0.0:{free_port()}"], cwd=REPO_ROOT,
                            env=environment(), capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "Refusing to listen on 0.0.0.0 without API tokens" in result.stderr
    assert "HEMATOVISION_API_TOKENS_FILE" in result.stderr
