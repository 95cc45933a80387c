"""The review server: a small stdlib HTTP server on loopback for people's votes.

Security, for a page that writes to the study's database:

* It binds to ``127.0.0.1`` unless told otherwise, and on loopback it answers only requests
  whose ``Host`` is a loopback name (no DNS rebinding).
* With an access token (``OPTUNA_PANDALM_REVIEW_TOKEN`` for the CLI), every request must
  carry it: ``?token=...`` once (the server then sets it as an ``HttpOnly``,
  ``SameSite=Strict`` cookie and redirects to the address without it), the cookie, or an
  ``X-Review-Token`` header. Otherwise: 403.
* A vote is a POST with the session's CSRF token in a hidden field, compared in constant
  time with the one the server gave that session's cookie; a cross-origin POST (an
  ``Origin`` that is not this server, or ``Sec-Fetch-Site`` other than same-origin) is
  refused. Otherwise: 403.
* Which checkpoint is answer A is kept on the server (the form carries a random task id),
  so the page never shows who is who. Every text on the page is HTML-escaped, and a strict
  Content-Security-Policy forbids scripts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import html
import http.cookies
import ipaddress
import logging
import random
import re
import secrets
import socket
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from optuna_pandalm.arena import HUMAN_PREFIX, Arena, annotator_name
from optuna_pandalm.review._effects import Stake, VoteEffect, stakes, vote_effect
from optuna_pandalm.review._page import name_page, next_url, task_page
from optuna_pandalm.review._tasks import Task, next_task

__all__ = ["TOKEN_ENV", "ReviewServer", "open_arena"]

_logger = logging.getLogger(__name__)

TOKEN_ENV = "OPTUNA_PANDALM_REVIEW_TOKEN"
"""The environment variable the CLI reads the access token from."""

_SESSION_COOKIE = "pandalm_review_session"
_TOKEN_COOKIE = "pandalm_review_token"
_MAX_BODY = 16_384
# Memory bounds: the oldest sessions, and a session's oldest open reviews, are forgotten.
_MAX_SESSIONS = 1000
_MAX_TASKS = 20
# Slow or stalled clients (a body promised and never sent) hold a thread each: a read
# gives up after _READ_TIMEOUT_S, and past _MAX_THREADS connections at once the next is
# answered 503 at once instead of queueing a new thread.
_READ_TIMEOUT_S = 10.0
_MAX_THREADS = 32
# The token travels in a URL and a cookie, where a space or "+" would change on the way.
_TOKEN_CHARACTERS = re.compile(r"[A-Za-z0-9._~-]+")
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Not "no-referrer": Chrome then sends "Origin: null" with the page's own POSTs. The
    # page links nowhere else, so the URL (and a ?token=) never leaves this origin.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def open_arena(storage: str, study_name: str) -> Arena:
    """A writable arena of a stored study for recording votes: its prompts and settings
    come from the store, and it cannot judge (like :meth:`Arena.load`, but it writes).

    Raises:
        StoreError: the storage cannot be opened.
        ValueError: the storage has no arena for this study.
    """
    from optuna_pandalm.store import Store

    store = Store(storage)
    if store.arena_settings(study_name) is None:
        raise ValueError(
            f"no optuna-pandalm arena for study {study_name!r} in {store.masked_url!r}"
        )
    return Arena.load(store, study_name)


@dataclasses.dataclass
class _Session:
    csrf: str
    tasks: dict[str, Task] = dataclasses.field(default_factory=dict)
    skipped: set[tuple[int, int, int]] = dataclasses.field(default_factory=set)
    voted: int = 0
    last_vote: VoteEffect | None = None  # what the session's last vote did


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ReviewServer:
    """Serve the review page of one arena until :meth:`shutdown`.

    Args:
        arena: A writable arena (see :func:`open_arena`).
        host: Interface to bind (an IPv4 or IPv6 address, or a name); loopback by
            default. Anything else exposes the page (and, without a token, the right to
            vote) to the network.
        port: TCP port, 0..65535; 0 picks a free one (see :attr:`url`).
        token: Access token required on every request, or ``None``: letters, digits and
            ``- . _ ~`` only (as ``secrets.token_urlsafe()`` makes), since it travels in
            a URL and a cookie.

    Raises:
        ValueError: a port out of range or a token with other characters.
        OSError: the address cannot be bound.
        contenders: How many of the top players by P(best) the reviews are drawn from.
        seed: Seeds the shown order and the tie-breaks (random when ``None``).

    Example:
        >>> from optuna_pandalm.testing import SimulatedJudge, simulated_prompts
        >>> arena = Arena("sqlite://", "doc", SimulatedJudge(), simulated_prompts(2))
        >>> server = ReviewServer(arena, port=0)
        >>> server.url.startswith("http://127.0.0.1:")
        True
        >>> server.shutdown()
    """

    def __init__(
        self,
        arena: Arena,
        *,
        host: str = "127.0.0.1",
        port: int = 8080,
        token: str | None = None,
        contenders: int = 4,
        seed: int | None = None,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        if token and not _TOKEN_CHARACTERS.fullmatch(token):
            raise ValueError(  # the token itself is not shown: it is a secret
                "the access token may hold only letters, digits and - . _ ~ (it travels in a "
                "URL and a cookie); make one with: python -c 'import secrets; "
                "print(secrets.token_urlsafe())'"
            )
        self.arena = arena
        self.token = token or None
        self.contenders = contenders
        self._rng = random.Random(seed if seed is not None else secrets.randbits(64))
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()  # one request at a time touches the arena
        self._httpd = _BoundedHTTPServer((host, port), _handler(self))
        self.host, self.port = host, int(self._httpd.server_address[1])
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The page's address (without the token)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def start(self) -> ReviewServer:
        """Serve from a background thread (tests, notebooks)."""
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def shutdown(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    # --- what a request may do ---------------------------------------------------------
    def host_allowed(self, host_header: str | None) -> bool:
        """On loopback, only loopback ``Host`` names (a rebinding page has its own)."""
        if not _is_loopback(self.host):
            return True
        if not host_header:
            return False
        name = urlsplit(f"//{host_header}").hostname or ""
        return _is_loopback(name)

    def token_ok(self, given: str | None) -> bool:
        if self.token is None:
            return True
        return given is not None and hmac.compare_digest(given.encode(), self.token.encode())

    def session(self, session_id: str | None) -> tuple[str, _Session]:
        """The session of the cookie, or a new one."""
        with self._lock:
            if session_id is not None and session_id in self._sessions:
                return session_id, self._sessions[session_id]
            new_id = secrets.token_urlsafe(24)
            self._sessions[new_id] = _Session(csrf=secrets.token_urlsafe(24))
            while len(self._sessions) > _MAX_SESSIONS:
                del self._sessions[next(iter(self._sessions))]
            return new_id, self._sessions[new_id]

    # --- pages ----------------------------------------------------------------------------
    def page(self, session: _Session, name: str | None) -> str:
        if not name:
            return name_page(self.arena.study_name)
        annotator = annotator_name(name)
        with self._lock:
            task = next_task(
                self.arena,
                annotator,
                rng=self._rng,
                skipped=session.skipped,
                contenders=self.contenders,
            )
            prompt = answers = None
            task_id = ""
            at_stake: list[Stake] = []
            if task is not None:
                at_stake = stakes(self.arena, task, annotator)
                task_id = secrets.token_urlsafe(16)
                session.tasks[task_id] = task
                while len(session.tasks) > _MAX_TASKS:
                    del session.tasks[next(iter(session.tasks))]
                prompt = self.arena.prompts[task.prompt_position]
                answers = (
                    self.arena.store.generations(task.first.id)[task.prompt_position],
                    self.arena.store.generations(task.second.id)[task.prompt_position],
                )
            rows = self.arena.leaderboard(top=10)
            agreement = self.arena.judge_agreement()
        return task_page(
            study=self.arena.study_name,
            name=annotator.removeprefix(HUMAN_PREFIX),
            prompt=prompt,
            answers=answers,
            task_id=task_id,
            csrf=session.csrf,
            rows=rows,
            agreement=agreement,
            voted=session.voted,
            stakes=at_stake,
            last_vote=session.last_vote,
        )

    def vote(self, session: _Session, form: dict[str, str]) -> str:
        """Record (or skip) the session's task; returns where to go next.

        Raises:
            KeyError: the task is not one this session was shown.
            ValueError: a choice or name that is not one.
        """
        choice, name = form.get("choice", ""), form.get("name", "")
        annotator = annotator_name(name)
        if choice not in ("first", "tie", "second", "skip"):
            raise ValueError(f"choice {choice!r} is not first, tie, second or skip")
        with self._lock:
            task = session.tasks.pop(form.get("task", ""))
            if choice == "skip":
                session.skipped.add(task.key)
            else:
                before = self.arena.standings()
                self.arena.record_vote(
                    task.prompt_position, task.first, task.second, choice, annotator
                )
                session.voted += 1
                session.last_vote = vote_effect(
                    choice, task.first, task.second, before, self.arena.standings()
                )
        return next_url(name)


class _BoundedHTTPServer(ThreadingHTTPServer):
    """A thread per connection, at most ``_MAX_THREADS`` at once; IPv6 for an IPv6 host."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any) -> None:
        if ":" in address[0]:  # "::1": ThreadingHTTPServer binds IPv4 only
            self.address_family = socket.AF_INET6
        self._slots = threading.BoundedSemaphore(_MAX_THREADS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: give its slot back
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _handler(server: ReviewServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "optuna-pandalm-review"
        sys_version = ""
        timeout = _READ_TIMEOUT_S  # a client that stops sending frees its thread
        _set_cookies: list[str]

        def log_message(self, format: str, *args: Any) -> None:
            # The access log would show ?token=...: log the method and path only.
            _logger.info("%s %s", self.command, urlsplit(self.path).path)

        # --- helpers -----------------------------------------------------------------
        def _cookies(self) -> http.cookies.SimpleCookie:
            cookies: http.cookies.SimpleCookie = http.cookies.SimpleCookie()
            with contextlib.suppress(http.cookies.CookieError):
                cookies.load(self.headers.get("Cookie", ""))
            return cookies

        def _cookie(self, name: str) -> str | None:
            morsel = self._cookies().get(name)
            return None if morsel is None else morsel.value

        def _forbidden(self, why: str) -> None:
            _logger.warning("refused %s %s: %s", self.command, urlsplit(self.path).path, why)
            self._finish(HTTPStatus.FORBIDDEN, _plain(f"403 forbidden: {why}"))

        def _admitted(self, query: dict[str, list[str]]) -> str | None:
            """Why the request is refused, or ``None``; sets the token cookie to send."""
            self._set_cookies = []
            if not server.host_allowed(self.headers.get("Host")):
                return "unexpected Host"
            given = (
                self.headers.get("X-Review-Token")
                or self._cookie(_TOKEN_COOKIE)
                or next(iter(query.get("token", [])), None)
            )
            if not server.token_ok(given):
                return "missing or wrong access token"
            if server.token is not None and self._cookie(_TOKEN_COOKIE) != server.token:
                self._set_cookies.append(_cookie_header(_TOKEN_COOKIE, server.token))
            return None

        def _session(self) -> _Session:
            session_id, session = server.session(self._cookie(_SESSION_COOKIE))
            if session_id != self._cookie(_SESSION_COOKIE):
                self._set_cookies.append(_cookie_header(_SESSION_COOKIE, session_id))
            return session

        def _finish(self, status: int, body: str = "", location: str | None = None) -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            for key, value in _HEADERS.items():
                self.send_header(key, value)
            for cookie in self._set_cookies:
                self.send_header("Set-Cookie", cookie)
            if location is not None:
                self.send_header("Location", location)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        # --- methods -------------------------------------------------------------------
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = parse_qs(url.query)
            refused = self._admitted(query)
            if refused is not None:
                return self._forbidden(refused)
            if "token" in query:  # now in a cookie: keep it out of the address bar
                rest = urlencode([(k, v) for k, vs in query.items() if k != "token" for v in vs])
                return self._finish(
                    HTTPStatus.SEE_OTHER, location=url.path + "?" * bool(rest) + rest
                )
            if url.path != "/":
                return self._finish(HTTPStatus.NOT_FOUND, "<!DOCTYPE html><p>404</p>")
            session = self._session()
            name = next(iter(query.get("name", [])), "")
            try:
                page = server.page(session, name)
            except ValueError as error:
                return self._finish(HTTPStatus.BAD_REQUEST, _plain(str(error)))
            self._finish(HTTPStatus.OK, page)

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            refused = self._admitted({})
            if refused is not None:
                return self._forbidden(refused)
            if not _same_origin(self.headers, self.headers.get("Host", "")):
                return self._forbidden("cross-origin request")
            if url.path != "/vote":
                return self._finish(HTTPStatus.NOT_FOUND, "<!DOCTYPE html><p>404</p>")
            given_length = self.headers.get("Content-Length") or "0"
            # ASCII digits only: "²".isdigit() is true, and int("²") raises.
            digits = given_length.isascii() and given_length.isdigit()
            length = int(given_length) if digits else 0
            if not 0 < length <= _MAX_BODY:
                return self._finish(HTTPStatus.BAD_REQUEST, _plain("bad request body"))
            raw = self.rfile.read(length).decode("utf-8", "replace")
            form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
            session_id = self._cookie(_SESSION_COOKIE)
            session = server._sessions.get(session_id or "")
            csrf = form.get("csrf", "")
            if session is None or not hmac.compare_digest(csrf.encode(), session.csrf.encode()):
                return self._forbidden("missing or wrong CSRF token")
            try:
                location = server.vote(session, form)
            except KeyError:
                return self._finish(HTTPStatus.CONFLICT, _plain("this review expired: reload"))
            except ValueError as error:
                return self._finish(HTTPStatus.BAD_REQUEST, _plain(str(error)))
            self._finish(HTTPStatus.SEE_OTHER, location=location)

    return Handler


def _plain(message: str) -> str:
    return f"<!DOCTYPE html><p>{html.escape(message)}</p>"


def _cookie_header(name: str, value: str) -> str:
    return f"{name}={value}; HttpOnly; SameSite=Strict; Path=/"


def _same_origin(headers: Any, host: str) -> bool:
    """A POST from this server's own page: ``Origin`` (when sent) is this host, and
    ``Sec-Fetch-Site`` (when sent) says same-origin."""
    site = headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = headers.get("Origin")
    if origin is None:
        return True
    return origin in (f"http://{host}", f"https://{host}")
