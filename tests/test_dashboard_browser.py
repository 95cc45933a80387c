"""What a user sees in Optuna Dashboard, in a real browser: headless Chromium (selenium)
on a real optuna-dashboard app served on 127.0.0.1 at an ephemeral port.

With SAVE_SCREENSHOT=1 the screenshots go to docs/ (dashboard-study.png,
dashboard-pruned-note.png); otherwise to the test's temporary folder.
"""

from __future__ import annotations

import os
import re
import socketserver
import threading
import wsgiref.simple_server
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna
import pytest

from optuna_pandalm import Arena, BradleyTerrySampler, JudgePruner, PublishCallback, Verdict
from optuna_pandalm.attributes import PRUNED_ATTR, SCORE_ATTR
from optuna_pandalm.judges import PairwiseJudge
from optuna_pandalm.publish.dashboard import CARD_HEIGHT_PX, LEADERBOARD_GRAPH_ID
from optuna_pandalm.testing import response_quality, simulated_prompts, simulated_response
from tests.browser import chromium, wait

pytest.importorskip("optuna_dashboard")
pytest.importorskip("selenium.webdriver")

ROOT = Path(__file__).resolve().parents[1]
QUALITY = [0.0, 2.0, 2.2, -3.0, 1.0, 2.5, -3.0, 2.6, 1.5, 2.7, 0.8, 2.8]  # by trial number
STEPS = (10, 20, 30, 40)


class _PandaLMStyleJudge(PairwiseJudge):
    """Prefers the better simulated response and explains itself as PandaLM does
    ("Response 1 is better ..."); equal qualities tie."""

    name = "pandalm-style"

    def judge(self, requests):
        verdicts = []
        for r in requests:
            one, two = response_quality(r.response_1), response_quality(r.response_2)
            winner = 0 if one == two else (1 if one > two else 2)
            reason = (
                "Neither response is better."
                if winner == 0
                else f"Response {winner} is better because it is more accurate."
            )
            verdicts.append(Verdict(winner=winner, reason=reason))
        return verdicts


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory) -> Iterator[dict[str, Any]]:
    """A finished study (complete and pruned trials, 20+ players) served by optuna-dashboard."""
    from optuna_dashboard import wsgi

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    folder = tmp_path_factory.mktemp("dashboard")
    url = f"sqlite:///{folder / 'study.db'}"
    prompts = simulated_prompts(8)
    arena = Arena(url, "browser", _PandaLMStyleJudge(), prompts, seed=0, min_games=8)
    study = optuna.create_study(
        study_name="browser",
        storage=url,
        direction="maximize",
        sampler=BradleyTerrySampler(arena, optuna.samplers.RandomSampler(seed=0)),
        pruner=JudgePruner(arena),
    )

    def objective(trial: optuna.Trial) -> float:
        trial.suggest_float("learning_rate", 1e-5, 1e-3, log=True)
        for step in STEPS:
            quality = QUALITY[trial.number] + step / 100
            arena.evaluate(trial, step, [simulated_response(quality)] * len(prompts))
            if trial.should_prune():
                break
        return arena.finalize(trial)

    study.optimize(objective, n_trials=len(QUALITY), callbacks=[PublishCallback(arena)])
    app = wsgi(optuna.storages.RDBStorage(url))

    class _Server(socketserver.ThreadingMixIn, wsgiref.simple_server.WSGIServer):
        daemon_threads = True

    class _Quiet(wsgiref.simple_server.WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = wsgiref.simple_server.make_server(
        "127.0.0.1", 0, app, server_class=_Server, handler_class=_Quiet
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield {
            "base": f"http://127.0.0.1:{server.server_port}/dashboard/studies/{study._study_id}",
            "study": study,
            "arena": arena,
        }
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Any]:
    driver = chromium(tmp_path_factory.mktemp("chromium-profile"), width=1400, height=1100)
    try:
        yield driver
    finally:
        driver.quit()


def _screenshot(name: str, tmp_path: Path) -> Path:
    return ROOT / "docs" / name if os.environ.get("SAVE_SCREENSHOT") else tmp_path / name


def _box(driver: Any, element: Any) -> dict[str, float]:
    box: dict[str, float] = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return {top: r.top, bottom: r.bottom, left: r.left, right: r.right};",
        element,
    )
    return box


def test_leaderboard_figure_shows_every_row_and_its_axis_inside_its_card(
    dashboard, browser, tmp_path
):
    from selenium.webdriver.common.by import By

    rows = dashboard["arena"].leaderboard(top=20)
    assert (
        len(rows) == 20 and len(dashboard["arena"].players()) > 20
    )  # the case that was clipped: 20 rows in a 450 px card
    browser.get(dashboard["base"])
    card = wait(
        browser, lambda d: d.find_element(By.ID, f"user-defined-plot:{LEADERBOARD_GRAPH_ID}")
    )
    wait(browser, lambda d: card.find_elements(By.CSS_SELECTOR, ".ytick text"))
    frame = _box(browser, card)
    assert frame["bottom"] - frame["top"] == pytest.approx(CARD_HEIGHT_PX, abs=2)
    labels = card.find_elements(By.CSS_SELECTOR, ".ytick text")
    boxes = sorted(((_box(browser, e), e.text) for e in labels), key=lambda b: b[0]["top"])
    assert [text for _, text in boxes] == [row.label for row in rows]  # leader on top
    outside = [
        text for box, text in boxes if box["top"] < frame["top"] or box["bottom"] > frame["bottom"]
    ]
    assert not outside, f"rows drawn outside the card: {outside}"
    axis_title = card.find_element(By.CSS_SELECTOR, ".xtitle")
    assert _box(browser, axis_title)["bottom"] <= frame["bottom"]
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", card)
    shot = _screenshot("dashboard-study.png", tmp_path)
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 20_000


def test_a_pruned_trials_note_says_which_loss_pruned_it_from_the_trials_side(
    dashboard, browser, tmp_path
):
    from selenium.webdriver.common.by import By

    study = dashboard["study"]
    pruned = [t for t in study.trials if t.state == optuna.trial.TrialState.PRUNED]
    assert pruned, "the study must have a pruned trial to show"
    trial = pruned[0]
    reason = trial.user_attrs[PRUNED_ATTR]
    assert reason.startswith("pruned at step") and "sign test p =" in reason
    browser.get(f"{dashboard['base']}/trials?numbers={trial.number}")
    wait(browser, lambda d: "pruned at step" in d.find_element(By.TAG_NAME, "body").text)
    page = browser.find_element(By.TAG_NAME, "body").text
    assert f"Trial {trial.number}: pruned" in page
    assert reason in page  # the loss: opponent, W-T-L record, p-value and step
    assert "this trial's answer" in page and "the incumbent's answer" in page.lower()
    assert "Response 1" not in page and "Response 2" not in page
    assert re.search(rf"{SCORE_ATTR}\s+[-+]?\d", page)  # user attribute: its score when pruned
    shot = _screenshot("dashboard-pruned-note.png", tmp_path)
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 20_000


def test_on_the_best_trial_cards_page_the_user_reads_who_leads_now(dashboard, browser, tmp_path):
    """The card shows a frozen value (a trial's score when it finished); the first row of
    the Study User Attributes table on the same page says who leads now, with its current
    score, in full.
    SAVE_SCREENSHOT=1 writes docs/dashboard-best-trial.png."""
    from selenium.webdriver.common.by import By

    study, arena = dashboard["study"], dashboard["arena"]
    leader = next(r for r in arena.leaderboard() if r.trial is not None)
    best = study.best_trial
    browser.get(dashboard["base"])
    card = wait(
        browser,
        lambda d: d.find_element(By.XPATH, f"//*[text()='Best Trial (number={best.number})']"),
    )
    said = f"Leader now: {leader.label}, score {leader.score:+.3f}"
    cell = wait(browser, lambda d: d.find_element(By.XPATH, f"//*[starts-with(text(), '{said}')]"))
    assert "frozen by Optuna, not its score now" in cell.text
    table = cell.find_element(By.XPATH, "ancestor::table")
    first_row = table.find_elements(By.CSS_SELECTOR, "tbody tr")[0]
    assert first_row.text.startswith("pandalm_best_now")
    # the whole sentence is on screen, not cut off by its table cell
    assert browser.execute_script(
        "const e = arguments[0]; return e.scrollWidth <= e.clientWidth + 1"
        " && e.scrollHeight <= e.clientHeight + 1;",
        cell,
    )
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'});", card)
    browser.execute_script("window.scrollBy(0, -120);")  # the card's title under the app bar
    shot = _screenshot("dashboard-best-trial.png", tmp_path)
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 20_000
