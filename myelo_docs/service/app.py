"""The HTTP service: the JSON API, the FHIR endpoint and the nurse's page.

Every route is a thin adapter: parse, validate with the same model as the
CLI, render in the worker pool (pool.py), answer. FastAPI is used for the
OpenAPI document it builds from the same pydantic models.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from myelo_docs.about import __version__
from myelo_docs.content.language_check import language_nudges
from myelo_docs.content.loader import load_content
from myelo_docs.content.overrides import content_for
from myelo_docs.output.files import default_packet_name
from myelo_docs.render.engine import validate_language
from myelo_docs.schema.brand import load_brand
from myelo_docs.schema.errors import MyeloDocsError, RecordError
from myelo_docs.schema.intake import IntakeSettings
from myelo_docs.schema.json_schema import record_schema
from myelo_docs.schema.messages import error, problem, title
from myelo_docs.schema.problems import problems_from
from myelo_docs.schema.record import ALL_TYPES, ExamType, parse_type, validate_record
from myelo_docs.service.common import (
    PDF_RESPONSES,
    REF,
    ApiError,
    error_body,
    json_body,
    pdf_response,
)
from myelo_docs.service.door import (
    ANY_HOST,
    LOOPBACK_NAMES,
    TOKEN_VARIABLE,
    Door,
    check_token,
    host_name,
)
from myelo_docs.service.fhir_api import (
    FHIR_PACKETS,
    METADATA_PATHS,
    FhirErrors,
    FhirPacketRequest,
    add_fhir_routes,
)
from myelo_docs.service.middleware import AccessLog, Guard, NoTracebacks
from myelo_docs.service.pool import Busy, RenderPool, RenderTimeout, WorkerLost
from myelo_docs.service.web import (
    FORM_PATH,
    PACKET_PATH,
    STATIC,
    Draft,
    FormState,
    NursePage,
    Packet,
    choose_language,
)

DESCRIPTION = (
    "Prints the handout and the discharge packet a myelogram patient takes home. "
    "Send a patient record as JSON and get a self-checked PDF back. When the server "
    f"has a token ({TOKEN_VARIABLE}), send it as 'Authorization: Bearer <token>'."
)


NURSE_PAGE = "/"
# No patient data and no way to print: open without the token.
PUBLIC_PATHS = frozenset({"/healthz", "/openapi.json", "/docs", "/static/nurse.css",
                          "/brand.css", "/brand/logo", *METADATA_PATHS})
WILDCARD_HOSTS = ("0.0.0.0", "::", "")


@dataclass(frozen=True)
class ServiceSettings:
    """How the service runs.

    ``host``: the address it listens on; ``token``: the secret every non-public
    route needs (at least 32 random characters); ``allowed_hosts``: names the
    Host header may give besides the loopback names and ``host`` (``*``: any,
    for a proxy that checks it); ``trusted_proxies``: addresses of reverse
    proxies whose X-Forwarded-For names the client (for the log and the login
    throttle; none by default, so nobody can claim another address);
    ``render_timeout``, ``read_timeout`` (headers, then body, and an answer
    left unread) in seconds; ``max_connections`` open at once, at most
    ``max_connections_per_client`` from one address (trusted proxies
    excepted); ``max_body`` and ``fhir_max_body`` in bytes (the FHIR route
    takes whole patient Bundles, 0.3-4 MB from real EHRs); ``intake`` the
    hospital's MRN systems, MRN pattern and date window (None: the site's,
    from the pool's RenderSettings, else ours).
    """

    host: str = "127.0.0.1"
    token: str | None = None
    allowed_hosts: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    render_timeout: float = 30.0
    read_timeout: float = 20.0
    max_connections: int = 200
    max_connections_per_client: int = 50
    max_body: int = 256 * 1024
    fhir_max_body: int = 16 * 1024 * 1024
    intake: IntakeSettings | None = None

    def host_names(self) -> frozenset[str]:
        """The names (lower case, no port) requests may be addressed to."""
        names = {*LOOPBACK_NAMES, *(host_name(h) if h != ANY_HOST else h
                                    for h in self.allowed_hosts)}
        if self.host not in WILDCARD_HOSTS:
            names.add(host_name(self.host) if ":" not in self.host.strip("[]")
                      else self.host.strip("[]").lower())
        return frozenset(names)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name could point anywhere


def check_binding(settings: ServiceSettings) -> None:
    """Refuse to listen beyond this machine without a token, with a token that can
    be guessed, or on every address without the names clients will use."""
    from myelo_docs.schema.errors import ConfigError

    if settings.token is not None:
        check_token(settings.token)
    if not is_loopback(settings.host) and not settings.token:
        raise error(ConfigError, "serve_needs_token", "--host", host=settings.host,
                    variable=TOKEN_VARIABLE)
    if settings.host in WILDCARD_HOSTS and not settings.allowed_hosts:
        raise error(ConfigError, "serve_name_the_host", "--allowed-host", host=settings.host)


class HandoutRequest(BaseModel):
    """The education handout for one type: no patient details."""

    model_config = ConfigDict(extra="forbid")

    type: Annotated[ExamType, BeforeValidator(parse_type)]
    language: str = "en"
    large_print: bool | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _any_case(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value


def _cross_site(request: Request) -> bool:
    """Was this form posted by another site's page (a forged request)?

    Browsers say where a form came from in Sec-Fetch-Site, or else in Origin;
    an Origin of "null" (a sandboxed frame, a data: page) is never ours. A
    request with neither comes from a program, not a page.
    """
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    return origin.split("://", 1)[-1] != request.headers.get("host")


def _body(schema: str) -> dict[str, Any]:
    """An OpenAPI request body of one of our models (FastAPI does not parse it for us)."""
    return {"requestBody": {"required": True, "content": {
        "application/json": {"schema": {"$ref": REF.format(model=schema)}}}}}


@dataclass(frozen=True)
class _Served:
    """What the route groups share: the pool and how the service runs, the site's
    intake settings, the nurse page (with the site's brand and offered
    languages) and the site's text folder; ``render`` renders in the pool."""

    pool: RenderPool
    settings: ServiceSettings
    intake: IntakeSettings
    page: NursePage
    languages: list[str]
    content: Path | None
    render: Any


def create_app(pool: RenderPool, settings: ServiceSettings | None = None) -> FastAPI:
    """The ASGI app over a started RenderPool.

    The pool's RenderSettings name the site, if any: its brand (nurse page,
    FHIR organisation), offered languages and text reach every route; without
    ``settings.intake`` the site's intake settings apply (else ours). Raises
    ConfigError for a bad site or an unsafe binding.
    """
    settings = settings or ServiceSettings()
    check_binding(settings)
    resolved = pool.settings.resolved()
    languages = resolved.offered()
    served = _Served(pool=pool, settings=settings,
                     intake=settings.intake or pool.settings.intake(),
                     page=NursePage(load_brand(resolved.brand), languages=languages,
                                    content_overrides=resolved.content),
                     languages=languages, content=resolved.content,
                     render=_render_in(pool, settings))
    app = FastAPI(title="myelo-docs", version=__version__, description=DESCRIPTION,
                  docs_url=None, redoc_url=None)
    _add_error_handlers(app)
    _add_api_routes(app, served)
    add_fhir_routes(app, served.render, served.intake, served.page.brand, settings.fhir_max_body)
    _add_nurse_routes(app, served)
    _add_page_assets(app, served)
    _add_middleware(app, settings)
    return app


def _html(text: str, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(text, status, headers=headers)


def _render_in(pool: RenderPool, settings: ServiceSettings) -> Any:
    """Render in the pool, its refusals as ApiErrors (503 busy or lost, 504 late)."""

    async def render(kind: str, payload: dict[str, Any]) -> Any:
        try:
            return await pool.render(kind, payload, settings.render_timeout)
        except Busy as exc:
            raise ApiError(503, "Busy", title("pool_busy"), [
                problem("pool_busy", "server", seconds=exc.retry_after)],
                headers={"Retry-After": str(exc.retry_after)}) from None
        except WorkerLost:
            raise ApiError(503, "WorkerLost", title("pool_worker_lost"), [
                problem("pool_worker_lost", "server", seconds=pool.retry_after())],
                headers={"Retry-After": str(pool.retry_after())}) from None
        except RenderTimeout:
            raise ApiError(504, "Timeout", title("pool_timeout"), [
                problem("pool_timeout", "server", seconds=f"{settings.render_timeout:g}")
            ]) from None

    return render


def _add_error_handlers(app: FastAPI) -> None:
    """Every error in the one shape (common.error_body)."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.error, exc.message, exc.problems), exc.status,
                            headers=exc.headers)

    @app.exception_handler(MyeloDocsError)
    async def _user_error(_: Request, exc: MyeloDocsError) -> JSONResponse:
        return JSONResponse(exc.as_dict(), 422 if isinstance(exc, RecordError) else 500)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        """404 and 405 from the router, in the same shape as every other error."""
        status = exc.status_code
        if status in (404, 405):
            name = "NotFound" if status == 404 else "MethodNotAllowed"
            message = title("http_not_found" if status == 404 else "http_method_not_allowed")
            said = problem("http_not_found" if status == 404 else "http_method_not_allowed",
                           "path")
        else:
            name, message = "HTTPError", str(exc.detail)
            said = problem("http_other", "path", detail=message.lower())
        return JSONResponse(error_body(name, message, [said]), status,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _request_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [problem("request_invalid", ".".join(str(p) for p in e["loc"]),
                            message=e["msg"].lower()) for e in exc.errors()]
        return JSONResponse(error_body("RecordError", title("request_invalid"), problems), 422)


def _add_api_routes(app: FastAPI, served: _Served) -> None:
    """The JSON API: /healthz and /v1/ (types, packets, handouts)."""
    pool, render = served.pool, served.render

    @app.get("/healthz", summary="Is the service up?")
    async def healthz() -> JSONResponse:
        """Liveness and load: `status` ok (every worker ready), degraded (some are being
        replaced) or down (none ready: 503); the workers, how many are ready, the
        renders admitted now and the most admitted at once."""
        health = pool.health()
        ready = health["ready"]
        status = "ok" if ready >= health["workers"] else "degraded" if ready else "down"
        return JSONResponse({"status": status, "version": __version__, **health},
                            200 if ready else 503)

    @app.get("/v1/types", summary="The myelogram types and languages")
    async def types() -> dict[str, Any]:
        """The values `type` and `language` may take (the languages the site offers)."""
        english = load_content("en") if served.content is None else \
            content_for("en", served.content)
        names = english.data["types"]
        return {"types": [{"type": t.value, "title": names[t.value]["title"]}
                          for t in ALL_TYPES],
                "languages": served.languages}

    @app.post("/v1/packets", summary="The discharge packet PDF for one patient",
              response_class=Response, responses=PDF_RESPONSES, openapi_extra=_body("PacketRecord"))
    async def packets(request: Request) -> Response:
        """Send a PacketRecord as JSON; get the packet PDF (every page carries the patient's
        name, date of birth and MRN). Problems come back as 422 with one entry per field."""
        record = validate_record(await json_body(request), served.intake)
        rendered = await render("packet", record.model_dump(mode="json"))
        return pdf_response(rendered.pdf, default_packet_name(record))

    @app.post("/v1/handouts", summary="The education handout PDF for one myelogram type",
              response_class=Response, responses=PDF_RESPONSES,
              openapi_extra=_body("HandoutRequest"))
    async def handouts(request: Request) -> Response:
        """Send {"type": "lumbar", "language": "en", "large_print": false}; no patient data.
        Without large_print, the site's default (else regular print)."""
        data = await json_body(request)
        try:
            wanted = HandoutRequest.model_validate(data)
        except ValidationError as exc:
            raise RecordError(title("handout_problems"),
                              problems_from(exc, tuple(HandoutRequest.model_fields))) from None
        language = validate_language(wanted.language, served.languages)
        large_print = served.intake.large_print if wanted.large_print is None \
            else wanted.large_print
        rendered = await render("handout", {"type": wanted.type.value, "language": language,
                                            "large_print": large_print})
        return pdf_response(rendered.pdf, f"myelogram-handout-{wanted.type.value}-{language}.pdf")


def _add_nurse_routes(app: FastAPI, served: _Served) -> None:
    """The nurse's page: the form, its once-only drafts and packets."""
    pool, settings, page = served.pool, served.settings, served.page
    html = _html

    def blank() -> FormState:
        """An empty form, its large-print box as the site's default."""
        return FormState(values={"large_print": "yes"} if served.intake.large_print else {})

    # Post/redirect/get: every post answers 303 (see web.py for why).
    def page_language(request: Request, chosen: str | None = None) -> str:
        return choose_language(chosen or request.query_params.get("lang"),
                               request.headers.get("accept-language"))

    def show_once(draft: Draft) -> RedirectResponse:
        key = page.drafts.put(draft, draft.state.size())
        return RedirectResponse(f"{FORM_PATH}{key}?lang={draft.language}", 303)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def form(request: Request) -> HTMLResponse:
        return html(page.html(blank(), page_language(request)))

    @app.get(FORM_PATH + "{key}", response_class=HTMLResponse, include_in_schema=False)
    async def form_once(request: Request, key: str) -> HTMLResponse:
        draft = page.drafts.take(key)
        if draft is None:  # shown already (Back, reload) or older than a minute
            return html(page.html(blank(), page_language(request),
                                  notice=("form_gone", {})))
        return html(page.draft_html(draft), draft.status, headers=draft.headers)

    @app.get(PACKET_PATH + "{key}", include_in_schema=False)
    async def packet_once(request: Request, key: str) -> Response:
        packet = page.packets.take(key)
        if packet is None:
            return html(page.packet_gone_html(page_language(request)), 404)
        return pdf_response(packet.pdf, packet.name)

    @app.post("/", include_in_schema=False)
    async def submit(request: Request) -> Response:
        if _cross_site(request):  # a page, not JSON: the nurse's browser shows it
            return html(page.form_refused_html(page_language(request)), 403)
        try:
            state = FormState.from_body(await request.body())
        except UnicodeDecodeError:
            raise ApiError(400, "BadForm", title("form_not_utf8"), []) from None
        language = page_language(request, state.page_language)
        if state.action != "print":
            focus = {"add_medicine": f"med_name_{state.medicine_rows}",
                     "add_instruction": f"instruction_{state.instruction_rows}"}
            return show_once(Draft(state, language, focus=focus.get(state.action)))
        data, where = state.record_data()
        try:
            record = validate_record(data, served.intake)
            rendered = await pool.render("packet", record.model_dump(mode="json"),
                                         settings.render_timeout)
        except RecordError as exc:
            return show_once(Draft(state, language, exc.problems, where, status=422))
        except Busy as exc:
            return show_once(Draft(state, language, notice=("busy", {
                "seconds": exc.retry_after}), status=503,
                headers={"Retry-After": str(exc.retry_after)}))
        except RenderTimeout:
            return show_once(Draft(state, language, notice=("timeout", {}), status=504))
        except WorkerLost:
            return show_once(Draft(state, language, notice=("restarted", {}), status=503,
                                   headers={"Retry-After": str(pool.retry_after())}))
        key = page.packets.put(Packet(rendered.pdf, default_packet_name(record)),
                               len(rendered.pdf))
        nudges = language_nudges(record)
        if nudges:  # made all the same; the form says where to look, with the packet's link
            return show_once(Draft(state, language, where=where, nudges=nudges,
                                   notice=("packet_ready", {}),
                                   packet_link=f"{PACKET_PATH}{key}"))
        return RedirectResponse(f"{PACKET_PATH}{key}", 303)


def _add_page_assets(app: FastAPI, served: _Served) -> None:
    """The page's style sheets and logo, /docs and the OpenAPI document."""
    page = served.page

    @app.get("/static/nurse.css", include_in_schema=False)
    async def css() -> Response:
        return Response((STATIC / "nurse.css").read_bytes(), media_type="text/css")

    @app.get("/brand.css", include_in_schema=False)
    async def brand_css() -> Response:
        return Response(page.brand_css(), media_type="text/css")

    @app.get("/brand/logo", include_in_schema=False)
    async def logo() -> Response:
        path = page.brand.logo_path  # only ever the configured brand's own logo
        kind = "image/svg+xml" if path.suffix.lower() == ".svg" else "image/png"
        return Response(path.read_bytes(), media_type=kind)

    @app.get("/docs", response_class=HTMLResponse, include_in_schema=False)
    async def docs() -> HTMLResponse:
        return _html(page.env.get_template("docs.html.j2").render(spec=app.openapi()))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = get_openapi(title=app.title, version=app.version,
                               description=app.description, routes=app.routes)
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in (("PacketRecord", record_schema(REF)),
                                 ("HandoutRequest",
                                  HandoutRequest.model_json_schema(ref_template=REF)),
                                 ("FhirPacketRequest",
                                  FhirPacketRequest.model_json_schema(ref_template=REF))):
                schema.pop("$schema", None)
                schemas.update(schema.pop("$defs", {}))
                schemas[name] = schema
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _add_middleware(app: FastAPI, settings: ServiceSettings) -> None:
    """Added innermost first: no tracebacks, the guard (body size, read time),
    the door (token, hosts), the FHIR error shape, the access log."""
    known = {route.path for route in app.routes}  # type: ignore[attr-defined]
    app.add_middleware(NoTracebacks)
    app.add_middleware(Guard, max_body=settings.max_body, limits={FHIR_PACKETS: (
        settings.fhir_max_body, "body_too_large_bundle")}, read_timeout=settings.read_timeout)
    app.add_middleware(Door, token=settings.token, allowed_hosts=settings.host_names(),
                       public=PUBLIC_PATHS,
                       challenge=lambda path: 'Basic realm="myelo-docs", charset="UTF-8"'
                       if path == NURSE_PAGE or path.startswith((FORM_PATH, PACKET_PATH))
                       else "Bearer")
    app.add_middleware(FhirErrors)
    app.add_middleware(AccessLog, known_paths=lambda: known)
