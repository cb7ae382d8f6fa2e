"""Public forms: `/forms/{id}` serves a form's page and takes its submissions.

GET answers an accessible HTML page of the form's fields (plain HTML and inline CSS: no script,
nothing loaded from elsewhere). POST takes a submission, urlencoded or multipart from that page
or JSON from a program, and checks it as `submitForm` does (the same service): an invalid one is
answered with the page again, every problem next to its field (JSON: 422 and the fields).

A `public` form needs no token; any other needs a bearer token that may submit it (`form:write`),
and is NOT_FOUND without one, as if it did not exist. Nothing here is authenticated by a cookie,
so another site cannot submit in a visitor's name (cross-site request forgery); a browser POST
whose Origin is another site is refused all the same.
"""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from flowql import jsonsafe
from flowql.auth.principal import ANONYMOUS, Principal
from flowql.errors import DomainError, ValidationFailed
from flowql.models import Form, FormSubmission
from flowql.services import forms as service
from flowql.services.form_fields import FieldType
from flowql.services.runtime import Runtime
from flowql.services.uow import unit_of_work

# The page may be framed by nobody, load nothing but its own inline style, and post only here.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

STYLE = """
body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;
line-height:1.5;color:#1a1a1a}
label{display:block;font-weight:600;margin-top:1rem}
input,select,textarea{display:block;width:100%;box-sizing:border-box;padding:.5rem;
font:inherit;border:1px solid #767676;border-radius:4px}
input[type=checkbox]{display:inline;width:auto;margin-right:.5rem}
.check{display:flex;align-items:center;font-weight:600;margin-top:1rem}
.error{color:#b00020;margin:.25rem 0 0}
[aria-invalid=true]{border-color:#b00020;border-width:2px}
.summary{border:2px solid #b00020;padding:.5rem 1rem;margin:1rem 0}
button{margin-top:1.5rem;padding:.6rem 1.2rem;font:inherit;border:0;border-radius:4px;
background:#1a56db;color:#fff;cursor:pointer}
:focus-visible{outline:3px solid #1a56db;outline-offset:2px}
"""

INPUT_TYPES = {
    FieldType.TEXT: "text",
    FieldType.EMAIL: "email",
    FieldType.NUMBER: "number",
    FieldType.INTEGER: "number",
    FieldType.DATE: "date",
    FieldType.URL: "url",
    FieldType.PHONE: "tel",
}


@dataclass
class Page:
    form: Form
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _field_html(spec: dict[str, Any], page: Page) -> str:
    name = str(spec["name"])
    kind = FieldType(spec["type"])
    ident = f"f-{_e(name)}"
    label = _e(spec.get("label") or name)
    required = bool(spec.get("required"))
    error = page.errors.get(f"data.{name}")
    value = page.values.get(name)
    aria = ' aria-invalid="true"' if error else ""
    if error:
        aria += f' aria-describedby="{ident}-error"'
    req = " required" if required else ""
    mark = ' <span aria-hidden="true">*</span>' if required else ""
    message = f'<p class="error" id="{ident}-error">{_e(error)}</p>' if error else ""
    if kind is FieldType.BOOLEAN:
        checked = " checked" if value is True else ""
        return (
            f'<div class="check"><input type="checkbox" id="{ident}" name="{_e(name)}" '
            f'value="true"{checked}{req}{aria}><label for="{ident}" style="margin:0">'
            f"{label}{mark}</label></div>{message}"
        )
    head = f'<label for="{ident}">{label}{mark}</label>'
    text = "" if value is None else str(value)
    if kind is FieldType.TEXTAREA:
        return (
            f'{head}<textarea id="{ident}" name="{_e(name)}" rows="5"{req}{aria}>'
            f"{_e(text)}</textarea>{message}"
        )
    if kind is FieldType.SELECT:
        options = ['<option value="">Choose…</option>']
        for option in spec.get("options") or []:
            selected = " selected" if text == option else ""
            options.append(f'<option value="{_e(option)}"{selected}>{_e(option)}</option>')
        return (
            f'{head}<select id="{ident}" name="{_e(name)}"{req}{aria}>'
            f"{''.join(options)}</select>{message}"
        )
    step = ' step="1"' if kind is FieldType.INTEGER else ' step="any"'
    extra = step if kind in (FieldType.NUMBER, FieldType.INTEGER) else ""
    return (
        f'{head}<input type="{INPUT_TYPES[kind]}" id="{ident}" name="{_e(name)}" '
        f'value="{_e(text)}"{extra}{req}{aria}>{message}'
    )


def render_page(page: Page, status: int = 200, notice: str | None = None) -> HTMLResponse:
    form = page.form
    body: list[str] = []
    if notice is not None:
        body.append(f'<p role="status">{_e(notice)}</p>')
    if page.errors:
        items = "".join(
            f"<li>{_e(path.removeprefix('data.'))}: {_e(problem)}</li>"
            for path, problem in page.errors.items()
        )
        body.append(
            '<div class="summary" role="alert" tabindex="-1"><h2>Please correct '
            f"{len(page.errors)} problem(s)</h2><ul>{items}</ul></div>"
        )
    if notice is None:
        fields = "".join(_field_html(spec, page) for spec in form.fields)
        body.append(
            f'<form method="post" action="/forms/{form.id}" novalidate>'
            f'{fields}<button type="submit">Submit</button></form>'
        )
    description = f"<p>{_e(form.description)}</p>" if form.description else ""
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(form.name)}</title><style>{STYLE}</style></head>"
        f"<body><main><h1>{_e(form.name)}</h1>{description}{''.join(body)}</main></body></html>"
    )
    return HTMLResponse(document, status_code=status, headers=SECURITY_HEADERS)


def _typed(spec: dict[str, Any], raw: str) -> Any:
    """A browser's text for a field, as the value submitForm expects (a number as a number)."""
    kind = FieldType(spec["type"])
    text = raw.strip()
    if text == "":
        return None
    if kind is FieldType.BOOLEAN:
        return text.lower() in ("true", "on", "1", "yes")
    if kind is FieldType.INTEGER:
        try:
            return int(text)
        except ValueError:
            return raw  # the service says what is wrong with it
    if kind is FieldType.NUMBER:
        try:
            number = float(text)
        except ValueError:
            return raw
        return int(number) if number.is_integer() and "." not in text else number
    return raw


def _from_form(form: Form, submitted: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    by_name = {str(spec["name"]): spec for spec in form.fields}
    for name, raw in submitted.items():
        spec = by_name.get(name)
        data[name] = raw if spec is None else _typed(spec, raw)
    return {k: v for k, v in data.items() if v is not None}


def _principal(request: Request) -> Principal:
    if request.scope.get("state", {}).get("auth_error") is not None:
        return ANONYMOUS
    principal: Principal = getattr(request.state, "principal", None) or ANONYMOUS
    return principal


def _json_error(exc: DomainError, status: int) -> JSONResponse:
    error: dict[str, Any] = {"code": exc.code.value, "message": exc.message}
    if isinstance(exc, ValidationFailed):
        error["fields"] = exc.fields
    return JSONResponse({"error": error}, status_code=status)


def _cross_site(request: Request, runtime: Runtime) -> bool:
    origin = request.headers.get("origin")
    if not origin or origin == "null":
        return origin == "null"
    own = {runtime.settings.base_url, f"{request.url.scheme}://{request.url.netloc}"}
    return origin.rstrip("/") not in own


def form_routes(runtime: Runtime) -> list[Route]:
    async def load(request: Request, form_id: uuid.UUID) -> Form:
        principal = _principal(request)
        async with runtime.db.read() as session:
            try:
                return await service.get_public_form(session, form_id)
            except DomainError:
                if not principal.is_authenticated:
                    raise
                return await service.get_form(session, principal, form_id, "form:write")

    async def submit(request: Request, form: Form, data: Any) -> FormSubmission:
        async with unit_of_work(runtime) as uow:
            if form.public:
                return await service.submit_public_form(uow, runtime, form.id, data)
            return await service.submit_form(uow, runtime, _principal(request), form.id, data)

    async def page(request: Request) -> Response:
        try:
            form_id = uuid.UUID(str(request.path_params["form_id"]))
        except ValueError:
            return _not_found(request)
        try:
            form = await load(request, form_id)
        except DomainError:
            return _not_found(request)
        if request.method == "GET":
            return render_page(Page(form))
        wants_json = "json" in request.headers.get("content-type", "")
        if not wants_json and _cross_site(request, runtime):
            return HTMLResponse(
                "Submissions from another site are refused.", 403, headers=SECURITY_HEADERS
            )
        values: dict[str, Any]
        if wants_json:
            try:
                data = jsonsafe.loads(await request.body())
            except (ValueError, UnicodeDecodeError):
                error = ValidationFailed.one("data", "the body is not valid JSON")
                return _json_error(error, 400)
            values = data if isinstance(data, dict) else {}
        else:
            try:
                submitted = await request.form()
            except Exception:  # a malformed multipart body
                error = ValidationFailed.one("data", "the body is not a form submission")
                return render_page(Page(form, errors=error.fields), 400)
            texts = {k: v for k, v in submitted.items() if not isinstance(v, UploadFile)}
            data = _from_form(form, {str(k): str(v) for k, v in texts.items()})
            values = data
        try:
            submission = await submit(request, form, data)
        except ValidationFailed as exc:
            if wants_json:
                return _json_error(exc, 422)
            return render_page(Page(form, values=values, errors=exc.fields), 422)
        except DomainError as exc:
            if wants_json:
                return _json_error(exc, 400)
            return render_page(Page(form, values=values, errors={"data": exc.message}), 400)
        if wants_json:
            return JSONResponse(
                {
                    "submission_id": str(submission.id),
                    "process_id": str(submission.process_id) if submission.process_id else None,
                },
                status_code=201,
            )
        return render_page(Page(form), 200, notice="Thank you: your answers were received.")

    return [Route("/forms/{form_id}", page, methods=["GET", "POST"])]


def _not_found(request: Request) -> Response:
    if "json" in request.headers.get("content-type", "") or "json" in request.headers.get(
        "accept", ""
    ):
        return JSONResponse(
            {"error": {"code": "NOT_FOUND", "message": "Form not found"}}, status_code=404
        )
    return HTMLResponse("Form not found.", 404, headers=SECURITY_HEADERS)
