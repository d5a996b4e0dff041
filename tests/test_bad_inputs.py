"""Bad input, tried for real: every kind in tests/bad_inputs.py through every door.

The doors are the core loader (``load_image``; ``expand_uploads`` + ``classify_batch`` for
zips), the app (the Classify page's uploader; the Batch differential page's for zips), the
HTTP API (POST /predict) and the CLI (``predict FILE --json``, in process). A bad file
gets the loader's specific message at every door and nothing crashes; an odd but usable
file loads correctly everywhere; and no door writes anything to disk.

What the app door does not cover: AppTest delivers uploads straight to the uploader, so
the browser's ``type=`` extension filter and ``server.maxUploadSize`` (enforced by the
front end and Streamlit's upload endpoint) are not exercised. The over-cap kind checks
the server-side cap that ``app.widgets.handle_upload`` applies to whatever arrives.
"""

from __future__ import annotations

import contextlib
import io
import json
import mimetypes
import os
import tempfile
from pathlib import Path

import pytest
from PIL import ImageFile
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from app.state import CURRENT_IMAGE
from hematovision.interfaces.api import create_app
from hematovision.model.classifier import CLASS_NAMES, display_name
from hematovision.model.imaging import SUPPORTED_SUFFIXES, ImageError, load_image
from hematovision.workflows.batch import classify_batch, expand_uploads
from tests.app.driver import TIMEOUT, errors, predicted_label, start
from tests.bad_inputs import KINDS, data_of
from tests.conftest import REPO_ROOT
from tests.interfaces.test_api import UNLIMITED
from tests.synthetic import SMEAR

pytestmark = pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # the broken-EXIF kind

IMAGE_KINDS = [name for name, kind in KINDS.items() if not kind.is_zip]
ZIP_KINDS = [name for name, kind in KINDS.items() if kind.is_zip]
SYSTEM_TMP = Path(tempfile.gettempdir())
TEMPFILE_MAKERS = ("mkstemp", "mkdtemp", "NamedTemporaryFile", "TemporaryFile", "TemporaryDirectory")
SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache"}
# Others edit these while the tests run; none of the doors could write there.
BUSY_AREAS = ("docs", ".ci", "test-artifacts", os.path.join("tests", "e2e"))


# -- nothing is written to disk ----------------------------------------------------------

def listing(root: Path) -> set[str]:
    found = set()
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if name not in SKIP_DIRS]
        relative = os.path.relpath(folder, root)
        found.update(os.path.normpath(os.path.join(relative, name)) for name in subfolders + files)
    return found


@contextlib.contextmanager
def nothing_written(tmp_path: Path, file_name: str):
    """Fail if the door creates a temporary file or any file in the repo, tmp_path or the cwd.

    The cwd is inside tmp_path (see ``workdir``), so a name like ../../x.png that were
    used as a path would land in tmp_path. Python's temp-file makers are pointed at a
    private folder and refuse; the shared system temp folder is checked only for entries
    named after the upload, since other processes write there too.
    """
    private_tmp = tmp_path / "private-tmp"
    private_tmp.mkdir(exist_ok=True)
    made: list[str] = []

    def refusing(name: str):
        def refuse(*args, **kwargs):
            made.append(name)
            raise OSError(f"tempfile.{name} called during a door: uploads must stay in memory")
        return refuse

    base = file_name.replace("\\", "/").rsplit("/", 1)[-1]
    before = listing(REPO_ROOT), listing(tmp_path), set(os.listdir(SYSTEM_TMP))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tempfile, "tempdir", str(private_tmp))
        for name in TEMPFILE_MAKERS:
            patch.setattr(tempfile, name, refusing(name))
        yield
    repo, tmp, system = listing(REPO_ROOT), listing(tmp_path), set(os.listdir(SYSTEM_TMP))
    assert not made, f"temporary files requested: {made}"
    assert tmp == before[1], f"written under tmp_path: {sorted(tmp ^ before[1])}"
    new_in_repo = [path for path in repo - before[0] if not path.startswith(BUSY_AREAS)]
    assert not new_in_repo, f"written in the repository: {new_in_repo}"
    assert not [name for name in system - before[2] if base in name]


@pytest.fixture(scope="module", autouse=True)
def traced_models(classifier):
    """Both classifiers (the fixture's and the app's cached one) run once before any door.

    TensorFlow's AutoGraph writes the converted source of a tf.function to a temporary
    file the first time it traces it; that is model set-up, not upload handling, so it
    happens here, outside the guard.
    """
    from app import caches

    classifier.predict_cells(SMEAR)
    caches.get_classifier().predict_cells(SMEAR)


@pytest.fixture()
def workdir(tmp_path, monkeypatch) -> Path:
    """A fresh cwd two folders deep in tmp_path: ../../ from it is still inside tmp_path."""
    folder = tmp_path / "work" / "a" / "b"
    folder.mkdir(parents=True)
    monkeypatch.chdir(folder)
    return folder


def loader_message(data: bytes) -> str | None:
    """The loader's own message for these bytes, or None when they load."""
    try:
        load_image(data)
    except ImageError as exc:
        return str(exc)
    return None


def expected_text(name: str, door: str) -> str | None:
    """What the door must show: the loader's whole message where it refuses, else the fragment."""
    fragment = KINDS[name].expected(door)
    if fragment is None:
        return None
    full = loader_message(data_of(name))
    return full if full is not None and fragment in full else fragment


def mime(file_name: str) -> str:
    return mimetypes.guess_type(file_name.replace("\\", "/"))[0] or "application/octet-stream"


# -- the corpus itself -------------------------------------------------------------------

def test_the_corpus_is_wide_enough():
    assert len(KINDS) >= 25
    refused = [name for name in IMAGE_KINDS if KINDS[name].expect is not None]
    usable = [name for name in IMAGE_KINDS if KINDS[name].expect is None]
    assert len(refused) >= 12 and len(usable) >= 10 and len(ZIP_KINDS) >= 4
    messages = [KINDS[name].expect for name in refused]
    assert len(set(messages)) >= len(messages) - 3, "most refusals should have their own message"


# -- door 1: the core loader -------------------------------------------------------------

@pytest.mark.parametrize("name", IMAGE_KINDS)
def test_loader_door(name, tmp_path, workdir, monkeypatch):
    kind, data = KINDS[name], data_of(name)
    expected = kind.expected("loader")
    if kind.refused_unread:
        def no_decoding(self):
            raise AssertionError("pixels were decoded before the size was checked")
        monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    with nothing_written(tmp_path, kind.file_name):
        if expected is None:
            kind.check(load_image(data))
        else:
            with pytest.raises(ImageError) as refused:
                load_image(data)
    if expected is not None:
        assert expected in str(refused.value)


@pytest.mark.parametrize("name", ZIP_KINDS)
def test_loader_door_for_zips(name, classifier, tmp_path, workdir):
    kind = KINDS[name]
    with nothing_written(tmp_path, kind.file_name):
        images, skipped = expand_uploads([(kind.file_name, data_of(name))])
        cells, unreadable = classify_batch(classifier, images)
    assert tuple(image.name for image in images) == kind.zip_images
    reasons = {item.name: item.reason for item in skipped + unreadable}
    assert reasons.keys() == kind.zip_skipped.keys(), reasons
    for file, fragment in kind.zip_skipped.items():
        assert fragment in reasons[file], (file, reasons[file])
    usable = set(kind.zip_images) - set(kind.zip_skipped)
    assert {cell.file for cell in cells} == usable


# -- door 2: the app ---------------------------------------------------------------------

@pytest.mark.parametrize("name", IMAGE_KINDS)
def test_app_door(name, classifier, tmp_path, workdir):
    kind, data = KINDS[name], data_of(name)
    expected = expected_text(name, "app")
    # The uploader's type= list: the browser refuses other extensions before uploading, so
    # such a file reaches the page only under an accepted name (and see the end of this test).
    refused_extension = not kind.file_name.lower().endswith(SUPPORTED_SUFFIXES)
    upload_name = kind.file_name + ".png" if refused_extension else kind.file_name
    with nothing_written(tmp_path, kind.file_name):
        at = start("app_pages/classify.py")
        at.file_uploader[0].set_value((upload_name, data, mime(kind.file_name))).run()
    assert not at.exception, at.exception
    messages = errors(at)
    if expected is not None:
        assert any("This file cannot be used" in e and expected in e for e in messages), messages
        assert predicted_label(at) is None and at.session_state[CURRENT_IMAGE] is None
        return
    assert not [e for e in messages if "cannot be used" in e or "cannot be classified" in e], messages
    answer = classifier.predict_cells(load_image(data))[0]
    assert predicted_label(at) == display_name(answer.label)
    shown = kind.shown_as or upload_name
    assert at.session_state[CURRENT_IMAGE].name == shown
    assert any(header.value == f"Result: {shown}" for header in at.subheader)
    no_cell_warnings = [w.value for w in at.warning if "No white-cell nucleus was found" in w.value]
    assert bool(no_cell_warnings) == (not answer.box.found)
    assert not (kind.no_cell and answer.box.found)
    if refused_extension:
        # Streamlit re-checks the extension on the server against bypassed browsers: it
        # refuses the file before the page runs (an exception box naming the extension).
        with nothing_written(tmp_path, kind.file_name):
            at.file_uploader[0].set_value((kind.file_name, data, mime(kind.file_name))).run()
        # Whether the message itself is shown depends on client.showErrorDetails, which other
        # in-process app tests can change; the refusal is what matters.
        message = str(at.exception)
        assert at.exception and ("Invalid file extension" in message or "redacted" in message), message


@pytest.mark.parametrize("name", ZIP_KINDS)
def test_app_door_for_zips(name, tmp_path, workdir):
    kind = KINDS[name]
    with nothing_written(tmp_path, kind.file_name):
        at = start("app_pages/batch.py")
        at.file_uploader[0].set_value([(kind.file_name, data_of(name), "application/zip")]).run()
        at.button(key="hv_batch_classify").click().run(timeout=TIMEOUT * 2)
    assert not at.exception, at.exception
    tables = [frame.value for frame in at.dataframe if "Reason" in frame.value.columns]
    listed = dict(zip(tables[0]["File"], tables[0]["Reason"])) if tables else {}
    assert listed.keys() == kind.zip_skipped.keys(), listed
    for file, fragment in kind.zip_skipped.items():
        assert fragment in listed[file], (file, listed[file])
    usable = set(kind.zip_images) - set(kind.zip_skipped)
    assert {cell.file for cell in at.session_state["hv_batch"]["cells"]} == usable
    if not usable:
        assert any("No white cells were found" in w.value for w in at.warning)


# -- door 3: the HTTP API ----------------------------------------------------------------

@pytest.fixture(scope="module")
def client(classifier):
    return create_app(classifier, security=UNLIMITED).test_client()  # every bad input, not the rate limit


def post_predict(client, data: bytes, file_name: str):
    """POST /predict with a body encoded in memory (the test client would spool a big one to disk)."""
    # Browsers and curl escape CR, LF and '"' in a multipart file name (the HTML standard's
    # %0D %0A %22); Werkzeug's test encoder does not, and a raw CR LF would end the header.
    escaped = file_name.replace("\r", "%0D").replace("\n", "%0A").replace('"', "%22")
    upload = FileStorage(io.BytesIO(data), filename=escaped, content_type=mime(file_name))
    boundary, body = encode_multipart({"image": upload})
    return client.post("/predict", data=body, content_type=f"multipart/form-data; boundary={boundary}")


@pytest.mark.parametrize("name", list(KINDS))
def test_api_door(name, client, classifier, tmp_path, workdir):
    kind, data = KINDS[name], data_of(name)
    expected = expected_text(name, "api")
    with nothing_written(tmp_path, kind.file_name):
        response = post_predict(client, data, kind.file_name)
    body = response.get_json()
    if expected is not None:
        assert response.status_code == kind.api_status, (response.status_code, body)
        assert list(body) == ["error"] and expected in body["error"], body
        return
    assert response.status_code == 200, body
    answer = classifier.predict_cells(load_image(data))[0]
    assert body["label"] == answer.label in CLASS_NAMES
    assert body["confidence"] == pytest.approx(answer.confidence, abs=1e-5)
    assert body["cell_box"] == answer.as_dict()["cell_box"]  # the same cell, so the same pixels
    assert not (kind.no_cell and answer.box.found)


# -- door 4: the CLI ---------------------------------------------------------------------

@pytest.mark.parametrize("name", list(KINDS))
def test_cli_door(name, classifier, tmp_path, workdir, capsys, monkeypatch):
    from hematovision.interfaces import cli

    kind, data = KINDS[name], data_of(name)
    expected = expected_text(name, "cli")
    monkeypatch.setattr(cli, "_classifier", lambda args: classifier)  # the model, loaded once
    (workdir / kind.file_name).resolve().write_bytes(data)  # the user's file, before the snapshot
    with nothing_written(tmp_path, kind.file_name):
        code = cli.main(["predict", kind.file_name, "--json"])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    [entry] = json.loads(out)
    assert entry["file"] == kind.file_name
    if expected is not None:
        assert code == 1
        assert expected in entry["error"], entry
        return
    assert code == 0, entry
    answer = classifier.predict_cells(load_image(data))[0]
    assert entry["label"] == answer.label
    assert entry["cell_box"] == answer.as_dict()["cell_box"]
    assert not (kind.no_cell and answer.box.found)
