"""The HTTP contract: one :class:`~spectree.SpecTree` validates every JSON route with the pydantic
models of :mod:`ecard.web.schemas` and generates ``/openapi.json`` (OpenAPI 3.1) from them.

How a route is written (the pattern every view follows)::

    @bp.post("/<enrollment_id>/pin")
    @validate(
        json=PinBody,
        resp=responses({201: Issued}, 401, 404, 409, 410, 422),
        tags=["enroll"],
        security=BEARER_ENROLL,
        guard=lambda enrollment_id: citizen(enrollment_id),  # optional, see below
    )
    def set_pin(enrollment_id: str) -> tuple[Issued, int]:
        body = parsed_json(PinBody)  # the validated model instance
        ...
        return Issued(card=..., card_no=...), 201

* The body (``json=``), multipart fields (``form=``) and query (``query=``) are validated
  before the view runs; a failure is our error JSON (:func:`validation_failed`): a missing
  field is 400 ``missing_field``, a wrong one 422 ``invalid_field`` naming it, a body that is
  not JSON 400 ``malformed_json``, not an object 400 ``bad_request``, another content type 415.
  A validator that raises an :class:`~ecard.errors.EcardError` (a domain check) keeps its code.
* ``guard`` runs before the body is validated, with the view's path arguments: authentication
  (and any state check that must come first), so that a caller without credentials learns
  nothing from the body's errors. Helpers that authenticate memoise in ``flask.g``, so the view
  may call them again for their result.
* The answer is a model instance (or ``(model, status)``); spectree checks it against the
  documented model of that status. Errors are raised as :class:`~ecard.errors.EcardError` and
  answered by :mod:`ecard.web.errors` (documented as the ``Error`` model).
* A route whose answer is not JSON names its media type with ``produces=``.

Every JSON request body is also bounded before any view runs
(:func:`ecard.web.http.guard_json_body`): at most ``MAX_JSON_BYTES`` bytes (413
``request_too_large``) and ``MAX_JSON_DEPTH`` levels of nesting (400 ``json_too_deep``), so a
hostile body never reaches a recursive parser or validator.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flask import Flask, current_app, request
from pydantic import BaseModel, ValidationError
from spectree import Response, SecurityScheme, SecuritySchemeData, SpecTree
from spectree.models import InType, SecureType
from spectree.plugins.flask_plugin import FlaskPlugin
from spectree.utils import get_multidict_items

from ecard import __version__
from ecard.errors import (
    EcardError,
    InvalidFieldError,
    MissingFieldError,
    RequestError,
    UnsupportedMediaTypeError,
)
from ecard.web.http import guard_json_body, json_body
from ecard.web.schemas import Error

__all__ = [
    "BASIC",
    "BEARER_CARD",
    "BEARER_ENROLL",
    "DESK",
    "METRICS",
    "api",
    "document",
    "install",
    "parsed_form",
    "parsed_json",
    "parsed_query",
    "responses",
    "validate",
]

M = TypeVar("M", bound=BaseModel)
View = Callable[..., Any]

BASIC: dict[str, list[str]] = {"basic": []}
BEARER_ENROLL: dict[str, list[str]] = {"enrollment": []}
BEARER_CARD: dict[str, list[str]] = {"card": []}
DESK: dict[str, list[str]] = {"desk": []}
METRICS: dict[str, list[str]] = {"metrics": []}

_CODE_NAMES = {
    400: "Malformed request (bad JSON, missing field)",
    401: "Missing or wrong credentials",
    403: "Credentials without the needed scope, or a wrong PIN",
    404: "Unknown id",
    405: "Method not allowed",
    409: "Wrong state for this step",
    410: "The enrollment (or the capture) has expired",
    413: "Too large",
    415: "Wrong content type",
    422: "A field has an invalid value",
    423: "Locked after too many failures",
    429: "Rate limited",
    503: "Not ready (models or keys unavailable)",
}


# --- request parsing -------------------------------------------------------------------------


def validation_failed(exc: ValidationError) -> EcardError:
    """Our error for a pydantic validation failure: 400 ``missing_field`` when a required field
    is absent, else 422 ``invalid_field`` naming the first wrong field and why."""
    errors = exc.errors(include_url=False, include_input=False)
    missing = [e for e in errors if e["type"] == "missing"]
    if missing:
        return MissingFieldError(f"The field '{_where(missing[0]['loc'])}' is required.")
    first = errors[0] if errors else None
    if first is None:
        return InvalidFieldError()
    where = _where(first["loc"])
    reason = str(first["msg"]).removeprefix("Value error, ")
    return InvalidFieldError(f"The field '{where}' is not valid: {reason}.".replace("..", "."))


def _where(loc: Sequence[Any]) -> str:
    return ".".join(str(p) for p in loc) or "body"


def _validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_failed(exc) from None


def _form_data(model: type[BaseModel]) -> dict[str, Any]:
    """Multipart text fields (first value, or the list for a list field) and file parts (bytes,
    read from memory: :class:`~ecard.web.upload.MemoryRequest` never spools them)."""
    data: dict[str, Any] = get_multidict_items(request.form, model)
    for name in request.files:
        parts = request.files.getlist(name)
        field = model.model_fields.get(name)
        is_list = field is not None and getattr(field.annotation, "__origin__", None) is list
        contents = [p.read() for p in parts]
        data[name] = contents if is_list else contents[0]
    return data


class _EcardPlugin(FlaskPlugin):
    """spectree's Flask plugin with our parsing and errors (see the module docstring)."""

    def request_validation(self, request, query, json, form, headers, cookies):  # type: ignore[no-untyped-def]
        from spectree.plugins.base import Context

        q = _validate(query, get_multidict_items(request.args, query)) if query else None
        j = f = None
        if json is not None and form is not None:
            if request.mimetype == "multipart/form-data":
                f = _validate(form, _form_data(form))
            else:
                j = _validate(json, json_body())
        elif json is not None:
            j = _validate(json, json_body())
        elif form is not None:
            if request.mimetype != "multipart/form-data":
                raise UnsupportedMediaTypeError("Send the upload as multipart/form-data.")
            f = _validate(form, _form_data(form))
        h = _validate(headers, dict(request.headers)) if headers else None
        c = _validate(cookies, get_multidict_items(request.cookies)) if cookies else None
        request.context = Context(q, j, f, h, c)

    def validate(self, func, *args, **kwargs):  # type: ignore[no-untyped-def]
        guard = getattr(func, "__ecard_guard__", None)
        if guard is not None:
            # args: query, json, form, headers, cookies, resp, before, after, status, skip,
            # force; kwargs: the view's path arguments
            guard(**kwargs)
        return super().validate(func, *args, **kwargs)


log = logging.getLogger("ecard.web")


def _after_response(
    req: Any, resp: Any, resp_validation_error: Exception | None, instance: Any, adapter: Any
) -> None:
    """An answer that does not match its documented model is our bug: logged by field and
    error type only (never the values: they may be personal data or tokens), answered with
    the generic 500 of :mod:`ecard.web.errors` (spectree would send the pydantic errors)."""
    if resp_validation_error is None:
        return
    where = "?"
    if isinstance(resp_validation_error, ValidationError):
        where = ", ".join(
            f"{_where(e['loc'])} ({e['type']})"
            for e in resp_validation_error.errors(include_url=False, include_input=False)
        )
    log.error("answer does not match its documented model: %s %s: %s", req.method, req.path, where)
    raise EcardError("An internal error occurred.")


api = SpecTree(
    "flask",
    backend=_EcardPlugin,
    mode="strict",
    title="ecard",
    version=__version__,
    description=(
        "Electronic social security cards issued after blink liveness and ID-photo matching. "
        'Every error is `{"error": code, "message": text}`.'
    ),
    after=_after_response,
    validation_error_status=422,
    validation_error_model=Error,
    naming_strategy=lambda model: model.__name__,
    nested_naming_strategy=lambda _parent, child: child,
    security_schemes=[
        SecurityScheme(
            name="basic",
            data=SecuritySchemeData(
                type=SecureType.HTTP, scheme="basic", description="client_id:client_secret"
            ),
        ),
        SecurityScheme(
            name="enrollment",
            data=SecuritySchemeData(
                type=SecureType.HTTP, scheme="bearer", description="the enrollment token"
            ),
        ),
        SecurityScheme(
            name="card",
            data=SecuritySchemeData(type=SecureType.HTTP, scheme="bearer", bearer_format="JWT"),
        ),
        SecurityScheme(
            name="metrics",
            data=SecuritySchemeData(
                type=SecureType.HTTP, scheme="bearer", description="ECARD_METRICS_TOKEN"
            ),
        ),
        SecurityScheme(
            name="desk",
            data=SecuritySchemeData(
                type=SecureType.API_KEY,
                name="X-CSRF-Token",
                field_in=InType.HEADER,
                description="the hospital desk's session cookie plus its CSRF token",
            ),
        ),
    ],
)


def responses(ok: dict[int, type[BaseModel] | None], *errors: int) -> Response:
    """A spectree :class:`~spectree.Response`: the success models and the error statuses (each
    answered with :class:`~ecard.web.schemas.Error`)."""
    codes: dict[str, Any] = {f"HTTP_{code}": model for code, model in ok.items()}
    for code in errors:
        codes[f"HTTP_{code}"] = (Error, _CODE_NAMES.get(code, "Error"))
    return Response(**codes)


def _implied_errors(
    json: type[BaseModel] | None,
    form: type[BaseModel] | None,
    security: dict[str, list[str]] | None,
) -> tuple[int, ...]:
    """The error statuses every route of its kind can answer, documented for it: 429 (rate
    limits) everywhere; with a body 400 (malformed, too deep), 413 (too large), 415 (content
    type) and 422 (a wrong field); with credentials 400 (a malformed token), 401 and 403."""
    codes = [429]
    if json is not None or form is not None:
        codes += [400, 413, 415, 422]
    if security:
        codes += [400, 401, 403]
    return tuple(dict.fromkeys(codes))


def validate(
    *,
    json: type[BaseModel] | None = None,
    form: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    resp: Response | None = None,
    tags: Sequence[str] = (),
    security: dict[str, list[str]] | None = None,
    guard: Callable[..., Any] | None = None,
    produces: str | None = None,
) -> Callable[[View], View]:
    """``api.validate`` plus ``guard`` (runs first) and ``produces`` (a non-JSON answer).

    The errors every route of its kind can answer are added to ``resp``
    (:func:`_implied_errors`); list the others (404, 409, 410, 423, 503 ...) in ``resp``."""

    answers = resp if resp is not None else responses({200: None})
    for code in _implied_errors(json, form, security):
        answers.add_model(code, Error, replace=False, description=_CODE_NAMES[code])
    drop_422 = "HTTP_422" not in answers._raw_code_models and "HTTP_422" not in answers.code_models

    def deco(func: View) -> View:
        if guard is not None:
            func.__ecard_guard__ = guard  # type: ignore[attr-defined]
        if produces is not None:
            func.__ecard_produces__ = produces  # type: ignore[attr-defined]
        wrapped = api.validate(
            json=json,
            form=form,
            query=query,
            resp=answers,
            tags=tags,
            security=security if security is not None else {},
        )(func)
        if drop_422:  # spectree documents 422 for every route; without a body none answers it
            answers._raw_code_models.pop("HTTP_422", None)
            answers.code_models.pop("HTTP_422", None)
        return wrapped

    return deco


def _context(name: str, model: type[M]) -> M:
    value = getattr(getattr(request, "context", None), name, None)
    if not isinstance(value, model):
        raise RequestError(f"This request has no {name} body of the expected shape.")
    return value


def parsed_json(model: type[M]) -> M:
    """The validated JSON body of the current request (after ``@validate(json=model)``)."""
    return _context("json", model)


def parsed_form(model: type[M]) -> M:
    """The validated multipart fields of the current request (``@validate(form=model)``)."""
    return _context("form", model)


def parsed_query(model: type[M]) -> M:
    return _context("query", model)


# --- the document ----------------------------------------------------------------------------


#: Examples of the main request bodies, by operationId (shown by documentation tools).
EXAMPLES: dict[str, dict[str, Any]] = {
    "enroll_authorize": {"id_number": "11010519491231002X", "name": "Demo Citizen"},
    "enroll_consent": {"agree": True},
    "enroll_set_pin": {"pin": "480613"},
    "cards_verify": {"token": "eyJhbGciOiJFUzI1NiIsImtpZCI6Ii4uLiIsInR5cCI6ImVjYXJkK2p3dCJ9..."},
    "cards_login": {"card_no": "100000000017", "pin": "480613"},
    "cards_qr": {"pin": "480613"},
    "cards_suspend": {"pin": "480613"},
    "hospital_scan": {"qr_token": "eyJhbGciOiJFUzI1NiIsInR5cCI6ImVjYXJkLXFyK2p3dCJ9..."},
    "hospital_confirm": {"scan_id": "3f2b8c1e9d7a4b6c", "pin": "480613"},
}

#: Enrollment reasons outside the liveness pipeline's codes (``ecard.liveness.result.REASONS``).
ENROLLMENT_REASONS = ("no_match", "not_live", "consent_declined", "timeout", "capture_expired")


def error_codes() -> dict[str, int]:
    """Every error code of :mod:`ecard.errors` with its HTTP status (the whole exception tree)."""
    codes: dict[str, int] = {}
    todo: list[type[EcardError]] = [EcardError]
    while todo:
        cls = todo.pop(0)
        codes.setdefault(cls.code, cls.status)
        todo.extend(cls.__subclasses__())
    return codes


def _operation_id(endpoint: str, method: str, methods: int) -> str:
    """``blueprint.view`` -> ``blueprint_view`` (suffixed by the method when the view serves
    several)."""
    name = endpoint.replace(".", "_").replace("-", "_").lower()
    return f"{name}_{method.lower()}" if methods > 1 else name


def _codes_schemas() -> dict[str, Any]:
    from ecard.enrollment.state import EnrollmentState
    from ecard.liveness.result import REASONS

    errors = error_codes()
    return {
        "ErrorCode": {
            "title": "ErrorCode",
            "description": "Every value of `Error.error`, with the HTTP status it is sent with "
            "(`x-status`); an HTTP error without a code of its own is `http_<status>`.",
            "type": "string",
            "enum": sorted(errors),
            "x-status": {code: errors[code] for code in sorted(errors)},
        },
        "LivenessReason": {
            "title": "LivenessReason",
            "description": "The values of `reason` in liveness and enrollment answers "
            "(null when live and matched).",
            "type": "string",
            "enum": list(dict.fromkeys((*REASONS, *ENROLLMENT_REASONS))),
        },
        "EnrollmentState": {
            "title": "EnrollmentState",
            "description": "The values of an enrollment's `state`.",
            "type": "string",
            "enum": [s.value for s in EnrollmentState],
        },
    }


def _build_document(app: Flask) -> dict[str, Any]:
    # spectree's generator consumes the nested definitions of its model table: keep a copy so
    # each application builds its own complete document.
    saved = copy.deepcopy(api.models)
    try:
        doc = api._generate_spec()
    finally:
        api.models = saved
    for rule in app.url_map.iter_rules():
        path = api.backend.parse_path(rule, None)[0]
        methods = (rule.methods or set()) - {"HEAD", "OPTIONS"}
        for method, op in doc["paths"].get(path, {}).items():
            if method.upper() not in methods:
                continue
            op["operationId"] = _operation_id(rule.endpoint, method, len(methods))
            example = EXAMPLES.get(op["operationId"])
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            if example is not None and body is not None:
                body["example"] = example
        media = getattr(app.view_functions[rule.endpoint], "__ecard_produces__", None)
        if media is None:
            continue
        for method, op in doc["paths"].get(path, {}).items():
            ok = op["responses"].get("200")
            if ok is not None and method.upper() in (rule.methods or ()):
                kind = "object" if media == "application/json" else "string"
                ok["content"] = {media: {"schema": {"type": kind}}}
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(_codes_schemas())
    error = schemas.get("Error", {}).get("properties", {}).get("error")
    if error is not None:
        error["description"] = "The machine-readable code: one of `ErrorCode`."
    from ecard.web.http import services

    doc["servers"] = [{"url": services().public_url, "description": "this service"}]
    return doc


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the current application (built once per application)."""
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    cached = app.extensions.get("ecard.openapi")
    if cached is None:
        cached = _build_document(app)
        app.extensions["ecard.openapi"] = cached
    result: dict[str, Any] = copy.deepcopy(cached)
    return result


def install(app: Flask) -> None:
    """Called by ``create_app``: the JSON body guard runs before every view."""
    app.before_request(guard_json_body)
