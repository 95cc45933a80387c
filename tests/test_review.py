"""Specification of the review page: votes through a real browser, the contenders first,
and the page's security (loopback, access token, CSRF, escaping)."""

from __future__ import annotations

import http.client
import os
import re
import socket
from pathlib import Path

import pytest

from optuna_pandalm import Arena
from optuna_pandalm.commands.cli import build_parser
from optuna_pandalm.review import ReviewServer, next_task, open_arena
from optuna_pandalm.testing import SimulatedJudge, simulated_prompts, simulated_response
from tests.browser import chromium, element, text_becomes

ROOT = Path(__file__).resolve().parents[1]
N = 6
TOKEN = "s3cret-token"
PAYLOAD = '<script>alert("x")</script>'
# trial -> latent quality: trials 1 and 2 contend for the lead, 0 and 3 are far behind.
QUALITIES = {0: -2.0, 1: 1.5, 2: 1.6, 3: -3.0}
NUMBER = r"([-+]\d+\.\d+)"  # a signed score on the page, e.g. +3.086


@pytest.fixture
def study_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'review.db'}"
    arena = Arena(url, "review", SimulatedJudge(), simulated_prompts(N), seed=0, racing=False)
    for trial, quality in QUALITIES.items():
        texts = [simulated_response(quality, text=f"t{trial} p{i} {PAYLOAD}") for i in range(N)]
        arena.evaluate(trial, 1, texts)
    arena.store.close()
    return url


@pytest.fixture
def server(study_url):
    running = ReviewServer(open_arena(study_url, "review"), port=0, token=TOKEN, seed=0).start()
    yield running
    running.shutdown()


def _request(
    server: ReviewServer,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: str | None = None,
) -> tuple[int, http.client.HTTPMessage, str]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    sent = {"Host": f"127.0.0.1:{server.port}", **(headers or {})}
    if body is not None:
        sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
    connection.request(method, path, body=body, headers=sent)
    response = connection.getresponse()
    text = response.read().decode("utf-8")
    connection.close()
    return response.status, response.headers, text


def _review(server: ReviewServer, name: str = "ada") -> tuple[str, str, str]:
    """(cookie header, csrf, task id) of a new session's first review."""
    headers = {"X-Review-Token": TOKEN}
    status, headers, page = _request(server, "GET", f"/?name={name}", headers=headers)
    assert status == 200
    cookies = "; ".join(c.split(";")[0] for c in headers.get_all("Set-Cookie"))
    cookies += f"; pandalm_review_token={TOKEN}"
    csrf = re.search(r"name='csrf' value='([^']+)'", page)
    task = re.search(r"name='task' value='([^']+)'", page)
    assert csrf and task
    return cookies, csrf.group(1), task.group(1)


def _serves_the_page(host: str, port: int) -> None:
    connection = http.client.HTTPConnection(host, port, timeout=30)
    connection.request("GET", "/?name=ada")
    response = connection.getresponse()
    assert response.status == 200 and "Answer A" in response.read().decode()
    connection.close()


def _vote(server, cookies, csrf, task, *, origin=None, site=None, choice="first") -> int:
    headers = {"Cookie": cookies}
    if origin is not None:
        headers["Origin"] = origin
    if site is not None:
        headers["Sec-Fetch-Site"] = site
    body = f"csrf={csrf}&task={task}&name=ada&choice={choice}"
    return _request(server, "POST", "/vote", headers=headers, body=body)[0]


# --- security ------------------------------------------------------------------------------
def test_the_server_binds_to_loopback_unless_told_otherwise(study_url):
    review = build_parser().parse_args(["review", "--storage", study_url, "--study-name", "s"])
    assert review.host == "127.0.0.1"
    server = ReviewServer(open_arena(study_url, "review"), port=0)
    try:
        assert server.url == f"http://127.0.0.1:{server.port}/"
        outside = _non_loopback_address()
        if outside is not None:  # the port is closed on this machine's other addresses
            with pytest.raises(OSError):
                socket.create_connection((outside, server.port), timeout=5).close()
    finally:
        server.shutdown()


def _non_loopback_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the route
        except OSError:
            return None
        address: str = probe.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.mark.parametrize("given", [None, "wrong", TOKEN[:-1]])
def test_a_missing_or_wrong_access_token_is_refused(server, given):
    for path in ("/", "/?name=ada", "/nothing"):
        suffix = "" if given is None else ("&" if "?" in path else "?") + f"token={given}"
        assert _request(server, "GET", path + suffix)[0] == 403
    headers = {} if given is None else {"X-Review-Token": given}
    assert _request(server, "POST", "/vote", headers=headers, body="choice=first")[0] == 403


def test_the_right_token_is_accepted_in_the_query_a_cookie_or_a_header(server):
    status, headers, _ = _request(server, "GET", f"/?name=ada&token={TOKEN}")
    assert status == 303 and headers["Location"] == "/?name=ada"  # the token leaves the URL
    assert any(
        c.startswith(f"pandalm_review_token={TOKEN};") and "HttpOnly" in c
        for c in headers.get_all("Set-Cookie")
    )
    cookie = {"Cookie": f"pandalm_review_token={TOKEN}"}
    assert _request(server, "GET", "/", headers=cookie)[0] == 200
    assert _request(server, "GET", "/", headers={"X-Review-Token": TOKEN})[0] == 200


def test_a_foreign_host_name_is_refused_on_loopback(server):
    headers = {"Host": f"evil.example:{server.port}", "X-Review-Token": TOKEN}
    assert _request(server, "GET", "/", headers=headers)[0] == 403


@pytest.mark.parametrize("csrf", [None, "wrong"])
def test_a_vote_without_the_sessions_csrf_token_is_refused(server, csrf):
    cookies, good, task = _review(server)
    body = f"task={task}&name=ada&choice=first" + ("" if csrf is None else f"&csrf={csrf}")
    assert _request(server, "POST", "/vote", headers={"Cookie": cookies}, body=body)[0] == 403
    assert server.arena.human_votes() == []
    assert _vote(server, cookies, good, task) == 303
    assert len(server.arena.human_votes()) == 1


def test_another_sessions_csrf_token_is_refused(server):
    cookies, _, task = _review(server)
    _, other_csrf, _ = _review(server, "bob")
    assert _vote(server, cookies, other_csrf, task) == 403


def test_a_cross_origin_vote_is_refused(server):
    cookies, csrf, task = _review(server)
    assert _vote(server, cookies, csrf, task, origin="http://evil.example") == 403
    assert _vote(server, cookies, csrf, task, origin="null") == 403
    assert _vote(server, cookies, csrf, task, site="cross-site") == 403
    assert server.arena.human_votes() == []
    assert _vote(server, cookies, csrf, task, origin=f"http://127.0.0.1:{server.port}") == 303


def test_model_answers_and_names_are_escaped(server):
    token = {"X-Review-Token": TOKEN}
    _, _, page = _request(server, "GET", "/?name=<b>ada</b>", headers=token)
    assert "<script>" not in page and "<b>ada</b>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&lt;b&gt;ada&lt;/b&gt;" in page
    _, headers, _ = _request(server, "GET", "/", headers=token)
    assert "script-src" not in headers["Content-Security-Policy"]
    assert "default-src 'none'" in headers["Content-Security-Policy"]


def test_the_page_does_not_say_which_checkpoint_is_which(server):
    _, _, page = _request(server, "GET", "/?name=ada", headers={"X-Review-Token": TOKEN})
    form = page.split("<form method='post'")[1].split("</form>")[0]
    assert "trial" not in form and "step" not in form


# --- which pair first -------------------------------------------------------------------
def test_the_contenders_are_reviewed_first(study_url):
    import random

    arena = open_arena(study_url, "review")
    top = {(p.trial, p.step) for trial in (1, 2) for p in arena.trial_players(trial)}
    seen = set()
    skipped: set[tuple[int, int, int]] = set()
    for _ in range(N):
        task = next_task(arena, "human:ada", rng=random.Random(0), skipped=skipped)
        assert task is not None
        assert {(task.first.trial, task.first.step), (task.second.trial, task.second.step)} == top
        seen.add(task.prompt_position)
        skipped.add(task.key)
    assert seen == set(range(N))  # every prompt of the top pair before any other pair
    after = next_task(arena, "human:ada", rng=random.Random(0), skipped=skipped)
    assert after is not None and after.key[:2] != task.key[:2]


def test_a_prompt_already_voted_on_by_someone_comes_after_the_unvoted_ones(study_url):
    import random

    arena = open_arena(study_url, "review")
    (a,), (b,) = arena.trial_players(1), arena.trial_players(2)
    for position in range(N - 1):
        arena.record_vote(position, a, b, "tie", "bob")
    task = next_task(arena, "human:ada", rng=random.Random(0))
    assert task is not None and task.prompt_position == N - 1


# --- a real browser ---------------------------------------------------------------------
def test_a_vote_in_a_real_browser_is_stored_and_changes_the_leaderboard(server, tmp_path):
    from selenium.webdriver.common.by import By

    arena = server.arena
    before = {row.player_id: row.score for row in arena.leaderboard()}
    browser = chromium(tmp_path / "profile")
    try:
        browser.get(f"{server.url}?token={TOKEN}")
        element(browser, "name").send_keys("ada")
        browser.find_element(By.ID, "start").click()
        answer_a = element(browser, "answer-a").text  # after the form's navigation
        assert "<script>" in answer_a  # shown as text, not run
        shot = (
            ROOT / "docs" / "review-screenshot.png"
            if os.environ.get("SAVE_SCREENSHOT")
            else tmp_path / "review.png"
        )
        assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
        cells = browser.find_elements(By.CLASS_NAME, "human-votes")
        assert sum(int(c.text) for c in cells) == 0
        browser.find_element(By.ID, "first").click()  # answer A is better
        text_becomes(browser, "voted", "1")  # the post redirected to the next pair
        cells = browser.find_elements(By.CLASS_NAME, "human-votes")
        assert sum(int(c.text) for c in cells) == 2  # the vote backs both rows it is about
        assert "of 1 reviewed pairs" in browser.find_element(By.ID, "agreement").text
        if os.environ.get("SAVE_SCREENSHOT"):
            browser.save_screenshot(str(ROOT / "docs" / "review-after-vote.png"))
    finally:
        browser.quit()
    (vote,) = arena.human_votes()
    assert vote.annotator == "human:ada" and vote.outcome == 1
    winner = vote.first_player_id
    assert arena.store.generations(winner)[vote.prompt_position] == answer_a
    after = {row.player_id: row.score for row in arena.leaderboard()}
    assert after[winner] > before[winner]


def test_the_page_says_what_a_vote_would_change_and_then_what_it_did(server, tmp_path):
    """Before: each vote's effect, blind (A and B, no names): how far A's and B's scores
    move and who would lead. After: the same moves, by name, and the leader before and
    after. What was foretold is what happened."""
    from selenium.webdriver.common.by import By

    arena = server.arena
    browser = chromium(tmp_path / "profile")
    try:
        browser.get(f"{server.url}?token={TOKEN}")
        element(browser, "name").send_keys("ada")
        browser.find_element(By.ID, "start").click()
        foretold = element(browser, "stakes").text
        lines = [line for line in foretold.splitlines() if line.endswith(("lead", "stays"))]
        assert [line.split(":")[0] for line in lines] == ["A is better", "Tie", "B is better"]
        assert "trial" not in foretold and "step" not in foretold  # still blind
        moves = re.search(rf"A is better: A moves {NUMBER}, B moves {NUMBER}", foretold)
        assert moves
        leader = arena.leaderboard(top=1)[0]
        browser.find_element(By.ID, "first").click()  # answer A is better
        text_becomes(browser, "voted", "1")
        said = element(browser, "last-vote").text
    finally:
        browser.quit()
    (vote,) = arena.human_votes()
    a, b = (arena.player_by_id(vote.first_player_id), arena.player_by_id(vote.second_player_id))
    assert f"A is better (A was {a.label}, B was {b.label})" in said
    scores = re.search(
        rf"{a.label}: {NUMBER} -> {NUMBER}; {b.label}: {NUMBER} -> {NUMBER}",
        said,
    )
    assert scores
    before_a, after_a, before_b, after_b = (float(x) for x in scores.groups())
    assert after_a - before_a == pytest.approx(float(moves.group(1)), abs=0.01)
    assert after_b - before_b == pytest.approx(float(moves.group(2)), abs=0.01)
    new_leader = arena.leaderboard(top=1)[0]
    assert f"Leader before: {leader.label} ({leader.score:+.3f}" in said
    assert f"after: {new_leader.label} ({new_leader.score:+.3f}" in said


# --- Optuna Dashboard's preferential votes --------------------------------------------------
def test_dashboard_preferences_that_name_checkpoints_and_a_prompt_become_votes(study_url, capsys):
    from optuna.samplers import RandomSampler
    from optuna_dashboard.preferential import create_study

    from optuna_pandalm.commands.cli import main

    # Any sampler: Dashboard's default preferential GP needs BoTorch, not installed here.
    prefs = create_study(
        n_generate=2,
        storage=study_url,
        study_name="prefs",
        sampler=RandomSampler(),
    )
    shown = []
    for trial, prompt in ((1, 3), (2, 3), (0, 4), (3, None)):
        asked = prefs.ask()
        asked.set_user_attr("pandalm_trial", trial)
        asked.set_user_attr("pandalm_step", 1)
        if prompt is not None:
            asked.set_user_attr("pandalm_prompt", prompt)
        shown.append(prefs.trials[-1])
    prefs.report_preference(shown[0], shown[1])  # trial 1 over trial 2 on prompt 3
    prefs.report_preference(shown[1], shown[2])  # prompts 3 and 4: not one prompt
    prefs.report_preference(shown[0], shown[3])  # no prompt named
    args = ["review", "--storage", study_url, "--study-name", "review"]
    assert main([*args, "--import-dashboard", "prefs"]) == 0
    out = capsys.readouterr().out
    assert "1 votes imported" in out and "2 preferences not mapped" in out
    assert "do not name one prompt" in out
    arena = open_arena(study_url, "review")
    (vote,) = arena.human_votes()
    winner = vote.first_player_id if vote.outcome == 1 else vote.second_player_id
    assert vote.annotator == "human:dashboard" and vote.prompt_position == 3
    assert arena.player_by_id(winner).trial == 1
    assert main([*args, "--import-dashboard", "prefs"]) == 0  # again: nothing new
    assert "0 votes imported from Dashboard study 'prefs', 1 already there" in (
        capsys.readouterr().out
    )
    assert len(arena.human_votes()) == 1


def test_review_on_a_missing_study_is_one_line_and_exit_2(study_url, capsys):
    from optuna_pandalm.commands.cli import main

    assert main(["review", "--storage", study_url, "--study-name", "nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no optuna-pandalm arena for study 'nope'" in err
    missing = ["review", "--storage", study_url, "--study-name", "review"]
    assert main([*missing, "--import-dashboard", "nope"]) == 2
    assert "--import-dashboard nope" in capsys.readouterr().err


# --- where people read the votes -----------------------------------------------------------
def test_leaderboard_report_and_dashboard_show_votes_and_agreement(study_url, capsys):
    import json

    import optuna
    import optuna_dashboard
    from optuna_dashboard._note import get_note_from_system_attrs

    from optuna_pandalm import PublishCallback
    from optuna_pandalm.commands.cli import main
    from optuna_pandalm.publish.report import render_report

    arena = open_arena(study_url, "review")
    for position in range(N):
        arena.record_vote(position, (0, 1), (1, 1), "first", "ada")  # against the judge
    agreement = arena.judge_agreement()
    assert agreement.votes == N and agreement.agree < N
    args = ["--storage", study_url, "--study-name", "review"]
    assert main(["leaderboard", *args, "--json"]) == 0
    rows = {(r["trial"], r["human_votes"]) for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows == {(0, N), (1, N), (2, 0), (3, 0)}
    assert main(["leaderboard", *args]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].endswith("human votes")
    assert next(line for line in table if "trial 1 step 1" in line).endswith(f" {N}")
    study = optuna.create_study(study_name="review", storage=study_url)
    trial = study.ask()  # trial 0
    page = render_report(arena, study)
    assert "<th class='num'>human votes</th>" in page
    assert f"<td class='num'>{N}</td>" in page and agreement.summary() in page
    study.tell(trial, 0.0)
    PublishCallback(arena)(study, study.trials[0])  # as study.optimize calls it
    assert study.user_attrs["pandalm_judge_agreement"]["agree"] == agreement.agree
    assert study.user_attrs["pandalm_leaderboard"].count(f"({N} human votes)") == 2
    system_attrs = study._storage.get_study_system_attrs(study._study_id)
    note = get_note_from_system_attrs(system_attrs, trial._trial_id)["body"]
    assert agreement.summary() in note
    assert optuna_dashboard is not None


def test_dashboard_preferences_on_the_arenas_own_study_map_trials_to_their_checkpoints(
    study_url,
):
    from optuna.samplers import RandomSampler
    from optuna_dashboard.preferential import create_study

    from optuna_pandalm.review import import_dashboard_votes

    # Any sampler: Dashboard's default preferential GP needs BoTorch, not installed here.
    prefs = create_study(
        n_generate=2,
        storage=study_url,
        study_name="review",
        sampler=RandomSampler(),
    )
    for _ in QUALITIES:  # trials 0..3, as in the arena
        prefs.ask().set_user_attr("pandalm_prompt", 2)
    trials = prefs.trials
    prefs.report_preference(trials[3], trials[0])
    arena = open_arena(study_url, "review")
    done = import_dashboard_votes(arena, study_url, "review")
    assert (done.imported, done.repeated, done.skipped) == (1, 0, [])
    (vote,) = arena.human_votes()
    winner = vote.first_player_id if vote.outcome == 1 else vote.second_player_id
    assert arena.player_by_id(winner).trial == 3 and vote.prompt_position == 2


@pytest.mark.postgres
def test_review_serves_and_prints_its_address_with_the_storage_url_masked():
    import subprocess
    import sys

    import sqlalchemy as sa

    from tests.conftest import _postgres_database

    for url in _postgres_database():
        arena = Arena(url, "review", SimulatedJudge(), simulated_prompts(N), seed=0)
        arena.evaluate(0, 1, [simulated_response(0.0, text=f"a{i}") for i in range(N)])
        arena.evaluate(1, 1, [simulated_response(1.0, text=f"b{i}") for i in range(N)])
        arena.store.close()
        secret = sa.make_url(url).set(password="hunter2").render_as_string(hide_password=False)
        command = [
            sys.executable,
            "-m",
            "optuna_pandalm.commands.cli",
            "review",
            "--storage",
            secret,
        ]
        process = subprocess.Popen(
            [*command, "--study-name", "review", "--port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            port = int(re.search(r"http://127\.0\.0\.1:(\d+)/", line).group(1))
            assert "hunter2" not in line and "***" in line
            _serves_the_page("127.0.0.1", port)
        finally:
            process.terminate()
            _, err = process.communicate(timeout=30)
        assert "hunter2" not in err


# --- hostile clients and settings ----------------------------------------------------------
@pytest.mark.parametrize("token", ["two words", "a+b", "x%20y", "é"])
def test_a_token_that_would_change_in_a_url_or_cookie_is_refused_at_start(study_url, token):
    with pytest.raises(ValueError, match="may hold only letters, digits") as error:
        ReviewServer(open_arena(study_url, "review"), port=0, token=token)
    assert token not in str(error.value)


def test_the_review_command_refuses_such_a_token_in_one_line(study_url, capsys, monkeypatch):
    from optuna_pandalm.commands.cli import main

    monkeypatch.setenv("OPTUNA_PANDALM_REVIEW_TOKEN", "open sesame")
    assert main(["review", "--storage", study_url, "--study-name", "review", "--port", "0"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "$OPTUNA_PANDALM_REVIEW_TOKEN may hold only" in error
    assert "sesame" not in error


def _raw(port: int, data: bytes, *, family: int = socket.AF_INET) -> socket.socket:
    client = socket.socket(family, socket.SOCK_STREAM)
    client.settimeout(10)
    client.connect(("127.0.0.1", port))
    client.sendall(data)
    return client


def test_a_non_ascii_digit_in_content_length_is_a_bad_request(server):
    request = (
        f"POST /vote HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
        f"X-Review-Token: {TOKEN}\r\nContent-Length: \u00b2\r\n\r\nab"
    )
    # Headers are read as Latin-1: the byte 0xB2 is "²", which str.isdigit() accepts.
    with _raw(server.port, request.encode("latin-1")) as client:
        assert client.recv(100).startswith(b"HTTP/1.0 400")


def test_clients_that_never_send_their_body_hold_a_bounded_number_of_threads(
    study_url, monkeypatch
):
    import threading
    import time

    from optuna_pandalm.review import _server

    monkeypatch.setattr(_server, "_READ_TIMEOUT_S", 1.0)
    running = ReviewServer(open_arena(study_url, "review"), port=0, token=TOKEN).start()
    before = threading.active_count()
    promise = (
        f"POST /vote HTTP/1.1\r\nHost: 127.0.0.1:{running.port}\r\n"
        f"X-Review-Token: {TOKEN}\r\nContent-Length: 100\r\n\r\n"
    )
    stalled = [_raw(running.port, promise.encode()) for _ in range(50)]
    try:
        assert threading.active_count() - before <= _server._MAX_THREADS
        deadline = time.monotonic() + 5 * _server._READ_TIMEOUT_S
        for client in stalled:  # each is answered 503 or closed by the read timeout
            client.settimeout(max(0.01, deadline - time.monotonic()))
            client.recv(100)
        status, _, _ = _request(running, "GET", "/?name=ada", headers={"X-Review-Token": TOKEN})
        assert status == 200
    finally:
        for client in stalled:
            client.close()
        running.shutdown()


@pytest.mark.parametrize("port", ["70000", "-5"])
def test_a_port_out_of_range_is_one_line_and_exit_2(study_url, capsys, port):
    from optuna_pandalm.commands.cli import main

    assert main(["review", "--storage", study_url, "--study-name", "review", "--port", port]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"port must be in 0..65535, got {port}" in error


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_the_page_is_served_on_the_ipv6_loopback(study_url):
    running = ReviewServer(open_arena(study_url, "review"), host="::1", port=0).start()
    try:
        assert running.url == f"http://[::1]:{running.port}/"
        _serves_the_page("::1", running.port)
    finally:
        running.shutdown()
