"""The investigator console: server-rendered pages over the same queue, ledger and roles as the JSON API.

Every path under /console skips the API-key middleware (serving/api/auth.py): a person signs in once with an
investigator or admin key and the browser then holds a session cookie (serving/console/sessions.py). Every page
but sign-in needs that session; every form that changes state carries the session's CSRF token. Actions are
done as `key:<key id>`, the identity the API's middleware gives the same key, so the audit trail is one.
Every console response carries the security headers below; domain failures become an error page.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from features import vocabulary as V
from policy.penalty import APPEALS
from serving.api.auth import Keys
from serving.api.errors import NotReady
from serving.api.penalty_bodies import _Fields
from serving.api.queue import check_filters, resolution, subject_role
from serving.api.routing import now, runtime_of, service
from serving.console import pages, runs
from serving.console import sessions as S
from serving.enforcement.ledger import LedgerError, NotFoundError
from serving.input_checks import FieldError, RequestError
from serving.market.timeline import account_timeline
from serving.queue.cases import CaseStateError
from serving.store.conflicts import ConflictError

PREFIX = "/console"
QUEUE_LIMIT = 100
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NOTICES = {"empty": "The queue is empty", "signed-out": "You are signed out."}


class SignInNeeded(Exception):
    """No valid session: the browser is sent to the sign-in page."""


class Forbidden(Exception):
    """A form without the session's CSRF token: 403."""


FAILURES: tuple[tuple[type[Exception], int, str], ...] = (
    (RequestError, 422, "The request was not accepted"),
    (NotFoundError, 404, "Not found"),
    (LedgerError, 422, "The ledger refused the change"),
    (CaseStateError, 409, "The case cannot change that way"),
    (ConflictError, 409, "Already recorded otherwise"),
    (NotReady, 503, "The service is still starting"),
    (Forbidden, 403, "Forbidden"),
)


class ConsoleRoute(APIRoute):
    """A console route: sends the security headers on every answer and turns domain failures into pages."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                response = await handler(request)
            except SignInNeeded:
                response = RedirectResponse(f"{PREFIX}/sign-in", status_code=303)
            except Exception as exc:  # noqa: BLE001 - only the known kinds are answered; the rest re-raised
                response = _failure(request, exc)
            response.headers.update(HEADERS)
            return response

        return handle


def _failure(request: Request, exc: Exception) -> Response:
    for kind, status, title in FAILURES:
        if isinstance(exc, kind):
            detail = [f"{e.field}: {e.message}" for e in exc.errors] if isinstance(exc, RequestError) else [str(exc)]
            session = getattr(request.state, "console_session", None)
            return _page("error.html", request, session, status=status, title=title, status_code=status,
                         details=detail)
    raise exc


router = APIRouter(route_class=ConsoleRoute)


def _page(template: str, request: Request, session: S.Session | None, status: int = 200, **context) -> HTMLResponse:
    return HTMLResponse(pages.render(template, session=session, path=request.url.path, **context), status_code=status)


def _see(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def signed_in(request: Request, svc=Depends(service)) -> S.Session:
    """The request's session, or SignInNeeded (a redirect to the sign-in page)."""
    session = S.find(svc.engine, request.cookies.get(S.COOKIE), now())
    if session is None:
        raise SignInNeeded()
    request.state.console_session = session
    return session


async def _form(request: Request, session: S.Session) -> Any:
    """The posted form, once its CSRF token is the session's; Forbidden (403) otherwise."""
    form = await request.form()
    if not session.csrf_matches(form.get("csrf")):
        raise Forbidden("the form's security token is missing or out of date: reload the page and try again")
    return form


# -- signing in and out ------------------------------------------------------------------------

@router.get(PREFIX)
@router.get(PREFIX + "/")
def home(request: Request, svc=Depends(service)):
    """The queue when signed in, else the sign-in page."""
    found = S.find(svc.engine, request.cookies.get(S.COOKIE), now())
    return _see(f"{PREFIX}/queue" if found else f"{PREFIX}/sign-in")


@router.get(PREFIX + "/sign-in")
def sign_in_page(request: Request, notice: str | None = None):
    return _page("sign_in.html", request, None, notice=NOTICES.get(notice or ""))


@router.post(PREFIX + "/sign-in")
async def sign_in(request: Request, svc=Depends(service)):
    """Check an API key as the API does; an investigator or admin key opens a session (the cookie never holds
    the key)."""
    form = await request.form()
    key = str(form.get("key") or "").strip()
    found = await run_in_threadpool(Keys(svc.engine).role_of, f"Bearer {key}") if key else None
    if found is None:
        return _page("sign_in.html", request, None, status=401, error="That API key is not valid.")
    key_id, role = found
    if role not in ("investigator", "admin"):
        return _page("error.html", request, None, status=403, status_code=403, title="Forbidden",
                     details=[f"403: an {role} key may not use the console; sign in with an investigator or "
                              "admin key."], sign_in_link=True)
    token = await run_in_threadpool(S.sign_in, svc.engine, key_id, role, now())
    response = _see(f"{PREFIX}/queue")
    response.headers.append("set-cookie", f"{S.COOKIE}={token}; HttpOnly; SameSite=Strict; Path={PREFIX}; "
                                          f"Max-Age={int(S.LIFETIME.total_seconds())}")
    return response


@router.post(PREFIX + "/sign-out")
async def sign_out(request: Request, session: S.Session = Depends(signed_in), svc=Depends(service)):
    await _form(request, session)
    await run_in_threadpool(S.sign_out, svc.engine, request.cookies.get(S.COOKIE), session, now())
    response = _see(f"{PREFIX}/sign-in?notice=signed-out")
    response.headers.append("set-cookie", f"{S.COOKIE}=; HttpOnly; SameSite=Strict; Path={PREFIX}; Max-Age=0")
    return response


@router.get(PREFIX + "/static/{name}")
def static(name: str):
    found = pages.static_file(name)
    if found is None:
        raise NotFoundError(f"no console file '{name}'")
    path, media = found
    return FileResponse(path, media_type=media)


# -- the queue ---------------------------------------------------------------------------------

def _filters(family: str | None, category: str | None) -> tuple[str | None, str | None]:
    """The queue's filters as GET /queue checks them; an empty choice means all."""
    family, category = family or None, category or None
    check_filters(family, category)
    return family, category


def _rows(svc, family: str | None, category: str | None) -> list[dict]:
    """The live queue as GET /queue gives it, alert cases marked with their verdict (incident or brigading)."""
    rows = svc.queue.queue(now(), QUEUE_LIMIT, family, category)
    if any(r["kind"] == "spike" for r in rows):
        verdicts = {a["case_id"]: a.get("verdict") for a in svc.queue.alerts("open")}
        rows = [{**r, "verdict": verdicts.get(r["case_id"])} for r in rows]
    return rows


@router.get(PREFIX + "/queue")
def queue_page(request: Request, family: str | None = None, category: str | None = None, notice: str | None = None,
               session: S.Session = Depends(signed_in), svc=Depends(service)):
    family, category = _filters(family, category)
    query = urlencode({k: v for k, v in (("family", family), ("category", category)) if v})
    return _page("queue.html", request, session, rows=_rows(svc, family, category), family=family,
                 category=category, families=V.FAMILIES, categories=V.CATEGORIES, notice=NOTICES.get(notice or ""),
                 rows_url=f"{PREFIX}/queue/rows" + (f"?{query}" if query else ""), limit=QUEUE_LIMIT)


@router.get(PREFIX + "/queue/rows")
def queue_rows(request: Request, family: str | None = None, category: str | None = None,
               session: S.Session = Depends(signed_in), svc=Depends(service)):
    """The queue table's rows alone, for the page's periodic refresh (static/console.js)."""
    family, category = _filters(family, category)
    return HTMLResponse(pages.render("_queue_rows.html", rows=_rows(svc, family, category)))


@router.post(PREFIX + "/claim")
async def claim(request: Request, session: S.Session = Depends(signed_in), svc=Depends(service)):
    """Claim the best open case, as POST /queue/claim does, and open it."""
    await _form(request, session)
    case = await run_in_threadpool(svc.queue.claim, session.actor, now())
    if case is None:
        return _see(f"{PREFIX}/queue?notice=empty")
    return _see(f"{PREFIX}/cases/{_quote(case['case_id'])}")


@router.post(PREFIX + "/cases/{case_id}/claim")
async def claim_case(case_id: str, request: Request, session: S.Session = Depends(signed_in), svc=Depends(service)):
    """Claim this case, as POST /queue/claim with {"case_id"} does (409 page naming who holds it), and show it."""
    await _form(request, session)
    await run_in_threadpool(svc.queue.claim, session.actor, now(), case_id)
    return _see(f"{PREFIX}/cases/{_quote(case_id)}")


def _quote(case_id: str) -> str:
    return quote(case_id, safe="")


# -- one case ----------------------------------------------------------------------------------

@router.get(PREFIX + "/cases/{case_id}")
def case_page(case_id: str, request: Request, session: S.Session = Depends(signed_in), svc=Depends(service)):
    """The case as GET /cases/{id} gives it, with the resolve form for the holder and the outcome once resolved."""
    at = now()
    payload = svc.queue.case(case_id, at, role=subject_role(svc, case_id))
    case = payload["case"]
    claim_runs = case["status"] == "claimed" and datetime.fromisoformat(case["claim_expires_at"]) > at
    holds = claim_runs and case["claimed_by"] == session.actor
    claimable = case["status"] == "open" or (case["status"] == "claimed" and not claim_runs)
    outcome = _outcome(svc, case_id) if case["status"] == "resolved" else None
    violation = next((v for v in payload["subject"].get("history", []) if v["violation_id"] == f"v-{case_id}"), None)
    return _page("case.html", request, session, payload=payload, case=case, holds=holds, outcome=outcome,
                 violation=violation, severities=V.SEVERITIES, claimable=claimable, timeline=_timeline(svc, case["subject_id"], at))


def _timeline(svc, account_id: str, at: datetime) -> dict | None:
    """The account's timeline, as GET /accounts/{id}/timeline gives it; None for an account nothing is known of."""
    try:
        return account_timeline(svc.engine, svc.ledger, account_id, at)
    except NotFoundError:
        return None


def _outcome(svc, case_id: str) -> dict | None:
    """The resolution as the audit trail recorded it: who, when, valid, severity, fraud confirmed, notes."""
    events = [e for e in svc.ledger.audit_events(case_id) if e["action"] == "resolve"]
    if not events:
        return None
    last = events[-1]
    return {**(last["after"] or {}), "at": last["at"], "actor": last["actor"], "notes": last["why"]}


@router.post(PREFIX + "/cases/{case_id}/resolve")
async def resolve(case_id: str, request: Request, session: S.Session = Depends(signed_in), svc=Depends(service)):
    """Resolve the held case, exactly as POST /cases/{id}/resolve does, and show it again."""
    form = await _form(request, session)
    verdict = resolution({"valid": {"true": True, "false": False}.get(form.get("valid") or "", form.get("valid")),
                          "severity": form.get("severity") or None, "notes": str(form.get("notes") or "").strip() or None,
                          "fraud_confirmed": form.get("fraud_confirmed") is not None})  # a ticked checkbox is sent

    def work() -> None:
        svc.queue.resolve(case_id, **asdict(verdict), actor=session.actor, role=subject_role(svc, case_id),
                          now=now())

    await run_in_threadpool(work)
    return _see(f"{PREFIX}/cases/{_quote(case_id)}")


# -- alerts ------------------------------------------------------------------------------------

@router.get(PREFIX + "/alerts")
def alerts_page(request: Request, session: S.Session = Depends(signed_in), svc=Depends(service)):
    """The open spike alerts, as GET /alerts gives them."""
    return _page("alerts.html", request, session, alerts=svc.queue.alerts("open"))


# -- one account -------------------------------------------------------------------------------

@router.get(PREFIX + "/accounts/{account_id}")
def account_page(account_id: str, request: Request, session: S.Session = Depends(signed_in), svc=Depends(service)):
    """The account's health as GET /accounts/{id}/health gives it; admins get the appeal and remedial forms."""
    at = now()
    return _page("account.html", request, session, health=svc.ledger.health(account_id, at),
                 admin=session.role == "admin", appeals=APPEALS, timeline=_timeline(svc, account_id, at))


def _fields(form) -> tuple[_Fields, list[FieldError]]:
    """A posted form read as the API reads a JSON body (an empty input counts as missing), one message per field."""
    errors: list[FieldError] = []
    values = {k: v.strip() for k, v in form.items() if k != "csrf" and isinstance(v, str) and v.strip()}
    if "completed_at" in values:
        values["completed_at"] = pages.utc_input(values["completed_at"])
    return _Fields(values or {"csrf": None}, "", errors), errors  # a non-empty object: absent fields are "missing"


async def _admin_form(request: Request, session: S.Session) -> Any:
    """The posted form of an admin session (Forbidden otherwise), its CSRF token checked."""
    form = await _form(request, session)
    if session.role != "admin":
        raise Forbidden("only an admin may record appeals and remedial steps")
    return form


@router.post(PREFIX + "/violations/{violation_id}/appeal")
async def appeal(violation_id: str, request: Request, session: S.Session = Depends(signed_in), svc=Depends(service)):
    """Record an appeal outcome, exactly as POST /violations/{id}/appeal does (admins)."""
    f, errors = _fields(await _admin_form(request, session))
    outcome, why = f.choice("outcome", APPEALS), f.text("why")
    if errors:
        raise RequestError(errors)
    view = await run_in_threadpool(lambda: svc.ledger.appeal(violation_id, outcome, actor=session.actor, why=why,
                                                             at=now(), at_stated=False))
    return _see(f"{PREFIX}/accounts/{_quote(view['account_id'])}")


@router.post(PREFIX + "/violations/{violation_id}/remedial")
async def remedial(violation_id: str, request: Request, session: S.Session = Depends(signed_in), svc=Depends(service)):
    """Record a passed remedial step, exactly as POST /violations/{id}/remedial does (admins)."""
    f, errors = _fields(await _admin_form(request, session))
    completed, why = f.time("completed_at"), f.text("why")
    if errors:
        raise RequestError(errors)
    view = await run_in_threadpool(lambda: svc.ledger.complete_remedial(violation_id, completed_at=completed,
                                                                        actor=session.actor, why=why))
    return _see(f"{PREFIX}/accounts/{_quote(view['account_id'])}")


# -- the models --------------------------------------------------------------------------------

def _champion_run(svc) -> tuple[dict, str | None]:
    """What GET /models gives (NotReady, a 503 page, while no models are loaded) and the champion run's id."""
    runtime_of(svc)
    models = svc.models()
    return models, runs.run_of(models["model_versions"])


@router.get(PREFIX + "/models")
def models_page(request: Request, session: S.Session = Depends(signed_in), svc=Depends(service)):
    """The versions serving and when loaded, the champion run's model card and its evaluation plots."""
    models, run_id = _champion_run(svc)
    card, plots = (runs.model_card(run_id), runs.plot_names(run_id)) if run_id else (None, [])
    return _page("models.html", request, session, models=models, run_id=run_id, card=card, plots=plots)


@router.get(PREFIX + "/models/plots/{name}")
def model_plot(name: str, session: S.Session = Depends(signed_in), svc=Depends(service)):
    """One of the champion run's plots/*.png, by name (any other name: 404)."""
    _, run_id = _champion_run(svc)
    found = runs.plot(run_id, name) if run_id else None
    if found is None:
        raise NotFoundError(f"no plot '{name}' in the champion run")
    return Response(found, media_type="image/png")


# -- anything else under /console: last, so every route above matches first ------------------------

@router.api_route(PREFIX + "/{rest:path}", methods=["GET", "POST"], include_in_schema=False)
def unknown_page(rest: str, request: Request, svc=Depends(service)):
    """A console page, with the console's headers, for a path that is not one (rather than the API's JSON 404)."""
    request.state.console_session = S.find(svc.engine, request.cookies.get(S.COOKIE), now())
    raise NotFoundError(f"there is no console page at {PREFIX}/{rest}")
