"""A small JSON HTTP API over the classifier and the explainers, for scripts and other programs.

    GET  /health                       -> model, classes, explanation methods, upload limit, lab profile
    POST /predict   (multipart: image) -> label, calibrated confidence, probabilities, cells[]
    POST /explain?method=gradcam       -> PNG overlay, or JSON with the map (format=json)

Start it with ``python -m hematovision serve`` (Flask's threaded server, for one machine)
or under gunicorn, which loads one model per worker (see docs/security.md):

    gunicorn -c python:hematovision.interfaces.gunicorn_conf -w 2

Who may call it, how often, and what it logs: ``api_security`` (bearer tokens from
HEMATOVISION_API_TOKENS_FILE; without them, this machine only).

Every error is ``{"error": "what went wrong"}`` with a 4xx status (5xx only for a bug,
and then without internals). Uploads stay in memory: Werkzeug would spool file parts over
500 KB to a temporary file, so ``InMemoryRequest`` hands it a BytesIO instead, and the
body-size limit bounds what that can hold. Uploaded file names are never used, and images
sent back carry no metadata.
"""

from __future__ import annotations

import io

import numpy as np
from flask import Flask, Request, Response, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge, TooManyRequests

from hematovision.explanation.explainers import available_methods, get_explainer
from hematovision.explanation.overlay import explanation_png
from hematovision.interfaces import api_security
from hematovision.interfaces.api_security import SecuritySettings
from hematovision.model.classifier import (
    CLASS_NAMES,
    Classifier,
    class_index,
    image_answer,
    load_classifier,
)
from hematovision.model.imaging import MAX_UPLOAD_BYTES, ImageError, load_image

EXPLAIN_FORMATS = ("png", "json")
EXPLAIN_OPTIONS = ("method", "format", "target", "cell", "seed")
# Significant digits kept in a JSON map, relative to its largest value: plenty for
# ranking pixels, and the 224x224 map stays a few hundred KB.
MAP_DIGITS = 4
ENDPOINTS = "GET /health, POST /predict, POST /explain"


class InMemoryRequest(Request):
    """A Flask request whose uploaded files are held in memory, never spooled to disk."""

    def _get_file_stream(self, total_content_length: int | None, content_type: str | None,
                         filename: str | None = None,
                         content_length: int | None = None) -> io.BytesIO:
        return io.BytesIO()


class ApiError(Exception):
    """A refusal to send back as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def create_app(classifier: Classifier | None = None, max_upload_bytes: int = MAX_UPLOAD_BYTES,
               security: SecuritySettings | None = None) -> Flask:
    """The API as a Flask app; the classifier is loaded here, once, not per request.

    ``security`` defaults to the settings in the environment (api_security); they are read
    first, so a bad tokens file stops the start before the model loads.
    """
    if security is None:
        security = SecuritySettings.from_environment()
    if classifier is None:
        classifier = load_classifier()
    app = Flask(__name__)
    app.request_class = InMemoryRequest
    # One limit for the whole body; text fields get the same, so it is the only one a client meets.
    app.config["MAX_CONTENT_LENGTH"] = max_upload_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = max_upload_bytes
    app.json.sort_keys = False  # keep label and confidence first, as the CLI prints them
    api_security.install(app, security)

    @app.get("/health")
    def health():
        if not api_security.open_to_caller(security):
            return jsonify({"status": "ok"})  # enough for a load balancer; the rest needs a token
        return jsonify({
            "status": "ok",
            "model": classifier.model_path.name if classifier.model_path else None,
            "classes": list(CLASS_NAMES),
            "explanation_methods": available_methods(),
            "max_upload_bytes": max_upload_bytes,
            "lab_profile": classifier.lab_profile.as_dict() if classifier.lab_profile is not None else None,
        })

    @app.post("/predict")
    def predict():
        _refuse_unknown_options(())
        return jsonify(image_answer(classifier.predict_cells(_uploaded_image())))

    @app.post("/explain")
    def explain():
        _refuse_unknown_options(EXPLAIN_OPTIONS)
        # Every option is checked before the image is decoded or the model runs.
        method = request.args.get("method", "gradcam")
        try:
            explainer = get_explainer(classifier, method)
        except ValueError as exc:
            raise ApiError(400, str(exc)) from None
        output = request.args.get("format", "png").lower()
        if output not in EXPLAIN_FORMATS:
            accepted = ", ".join(EXPLAIN_FORMATS)
            raise ApiError(400, f"Unknown format {output!r}; accepted: {accepted}.")
        target = _target_option()
        cell = _int_option("cell", default=1, minimum=1)
        seed = _int_option("seed", default=0, minimum=0)

        cells = classifier.predict_cells(_uploaded_image())
        if cell > len(cells):
            raise ApiError(400, f"cell={cell}: this image has {len(cells)} white cell(s); "
                                f"choose 1 to {len(cells)}.")
        prediction = cells[cell - 1]
        explanation = explainer(prediction.model_input, target=target, seed=seed)
        if output == "png":
            png = explanation_png(prediction.model_input, explanation)
            return Response(png, mimetype="image/png")
        return jsonify({
            "cell": cell,
            "prediction": prediction.as_dict(),
            "explanation": explanation.metadata(),
            "attribution": _rounded_map(explanation.attribution),
        })

    @app.errorhandler(ApiError)
    def refused(exc: ApiError):
        return _error(exc.status, exc.message)

    @app.errorhandler(ImageError)
    def unusable_image(exc: ImageError):
        # The request was well formed; the file in it is not a usable image.
        return _error(422, str(exc))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        response = exc.get_response()  # keeps the status and headers, such as Allow on a 405
        response.set_data(app.json.dumps({"error": _http_message(exc, max_upload_bytes)}))
        response.content_type = "application/json"
        return response

    @app.errorhandler(Exception)
    def internal_error(exc: Exception):
        app.logger.error("Unhandled error on %s %s", request.method, request.path, exc_info=exc)
        return _error(500, "Internal error while handling this request; "
                           "it has been logged on the server.")

    return app


def _uploaded_image() -> np.ndarray:
    """The ``image`` file of a multipart request, decoded from memory (ImageError if unusable)."""
    upload = request.files.get("image")
    if upload is None:
        if "image" in request.form:
            raise ApiError(400, 'The "image" field holds text, not a file: send the file itself, '
                                'e.g. curl -F image=@cell.jpg.')
        raise ApiError(400, 'No "image" file in the request: send it as multipart/form-data, '
                            'e.g. curl -F image=@cell.jpg.')
    data = upload.read()
    api_security.note_upload(data)
    return load_image(data)


def _refuse_unknown_options(accepted: tuple[str, ...]) -> None:
    """A misspelt option (?methd=lime) is an error, not silently the default."""
    unknown = sorted(set(request.args) - set(accepted))
    if unknown:
        allowed = ", ".join(accepted) if accepted else "none"
        raise ApiError(400, f"Unknown query parameter(s): {', '.join(unknown)}; "
                            f"accepted: {allowed}.")


def _target_option() -> str | None:
    text = request.args.get("target")
    if text is None or text == "":
        return None
    try:
        return CLASS_NAMES[class_index(text)]
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


def _int_option(name: str, default: int, minimum: int) -> int:
    text = request.args.get(name)
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ApiError(400, f"{name} must be a whole number >= {minimum}; got {text!r}.")
    return value


def _rounded_map(values: np.ndarray, digits: int = MAP_DIGITS) -> list[list[float]]:
    """The map as nested lists, rounded to ``digits`` significant digits of its largest value."""
    values = np.asarray(values, dtype=np.float64)
    largest = float(np.abs(values).max()) if values.size else 0.0
    decimals = digits - 1 - int(np.floor(np.log10(largest))) if largest > 0 else 0
    return np.round(values, decimals).tolist()


def _http_message(exc: HTTPException, max_upload_bytes: int) -> str:
    if isinstance(exc, RequestEntityTooLarge):
        megabytes = max_upload_bytes / 1024 / 1024
        return (f"The request is larger than the upload limit of {megabytes:.1f} MB "
                f"({max_upload_bytes} bytes).")
    if isinstance(exc, TooManyRequests):
        return (f"Too many requests: at most {exc.description} for {request.path} from one token "
                "(or one address without a token). Try again after Retry-After seconds.")
    if exc.code == 404:
        return f"No such endpoint: {request.path}. Endpoints: {ENDPOINTS}."
    if exc.code == 405:
        valid = getattr(exc, "valid_methods", None) or []
        allowed = [method for method in valid if method not in ("HEAD", "OPTIONS")]
        return f"{request.method} is not allowed on {request.path}; use {' or '.join(allowed)}."
    return exc.description or exc.name


def _error(status: int, message: str) -> tuple[Response, int]:
    return jsonify({"error": message}), status
