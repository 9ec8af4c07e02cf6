"""The web console at /ui, driven in headless Debian chromium against a real gateway and tritonserver.

    .venv/bin/pytest -q tests/integration/test_console.py       # screenshots: reports/console-*.png

One tritonserver for the module, on the project's model_repository/, started with an admin
key (as `pointsman serve --admin-key` does), so that pausing an experiment really needs
it; the gateway in front of it is the real one, on a free port. Each test leaves a
screenshot of its view in reports/. Every wait is on what the page shows (tests/waiting.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pointsman.gateway.server import GatewayProcess
from pointsman.launcher.tritonserver import ServerPorts, TritonServer
from pointsman.policy.admin import ADMIN_HEADER, ADMIN_KEY_ENV
from tests.console.browser import chromium, screenshot
from tests.integration.conftest import DEMO_MODELS, MODEL_REPOSITORY, missing_demo_models, start_until_ready
from tests.waiting import wait_for, wait_until

KEY = "console-test-key"
SPARE_MODEL = "distilgpt2"
SPARE_ENGINE = "distilgpt2_stream"  # the catalog follows the engine model's readiness
STATE_WITHIN_S = 10.0  # "within seconds": the page polls every second, the catalog every 0.25 s
PAGE_WITHIN_S = 20.0


# -- fixtures ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    missing = missing_demo_models(MODEL_REPOSITORY)
    if missing:
        pytest.fail(f"demo models {', '.join(missing)} are not exported: run `make setup` first", pytrace=False)
    base = tmp_path_factory.mktemp("console")
    running = TritonServer(MODEL_REPOSITORY, ports=ServerPorts.free(), state_dir=base / "state",
                           log_file=base / "tritonserver.log", admin_key=KEY)
    try:
        start_until_ready(running)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def gateway(server: TritonServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    log_file = tmp_path_factory.mktemp("console-gateway") / "gateway.log"
    with GatewayProcess(server.grpc_url, port=ServerPorts.free().http, log_file=log_file) as process:
        yield process


@pytest.fixture(scope="module")
def http(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=120) as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator:
    with chromium() as driver:
        yield driver


# -- helpers ----------------------------------------------------------------------------
def open_view(browser, gateway: GatewayProcess, view: str) -> None:
    browser.get(f"{gateway.url}/ui/#{view}")
    wait_for(lambda: browser.execute_script("return document.body.dataset.view") == view, PAGE_WITHIN_S,
             f"the {view} view to open")


def texts(browser, css: str) -> list[str]:
    """The text of every match, read in one script (the views re-render every second)."""
    return browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent)", css)


def model_states(browser) -> dict[str, str]:
    return browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#view-models tbody tr[data-model]')]"
        ".map((r) => [r.dataset.model, r.dataset.state]))")


def banner_hidden(browser) -> bool:
    return browser.execute_script("return document.getElementById('banner').hidden")


def view_message(browser, view: str) -> str:
    return browser.execute_script(f"return document.querySelector('#view-{view} .view-message').textContent")


def repository(server: TritonServer, model: str, action: str) -> None:
    """Load or unload through Triton's repository API, which the admin key guards."""
    request = urllib.request.Request(f"http://{server.http_url}/v2/repository/models/{model}/{action}", data=b"{}",
                                     method="POST", headers={ADMIN_HEADER: KEY})
    with urllib.request.urlopen(request, timeout=120) as response:
        assert response.status == 200


def complete(http: httpx.Client, **body) -> httpx.Response:
    reply = http.post("/v1/completions", json={"max_tokens": 4, **body})
    assert reply.status_code == 200, reply.text
    return reply


def experiments(http: httpx.Client) -> dict[str, dict]:
    return {e["name"]: e for e in http.get("/ui/api/experiments").json()["experiments"]}


@pytest.fixture
def spare_model_down(server: TritonServer, http: httpx.Client) -> Iterator[None]:
    """SPARE_MODEL's engine unloaded (restored afterwards); yields once the router routes around it."""
    repository(server, SPARE_ENGINE, "unload")
    try:
        wait_for(lambda: complete(http, model="auto", prompt="Is it?", preferred_model=SPARE_MODEL,
                                  fallback_mode="auto").headers["x-pointsman-fallback-used"] == "true",
                 STATE_WITHIN_S, f"hybrid requests preferring {SPARE_MODEL} to fall back")
        yield
    finally:
        repository(server, SPARE_ENGINE, "load")
        wait_for(lambda: http.post("/v1/completions", json={"model": SPARE_MODEL, "prompt": "x", "max_tokens": 1})
                 .status_code == 200, STATE_WITHIN_S * 3, f"{SPARE_MODEL} to serve again")


# -- Models -----------------------------------------------------------------------------
def test_models_table_lists_the_demo_models_and_shows_an_unloaded_one_down_within_seconds(
        browser, gateway, server, http):
    open_view(browser, gateway, "models")
    wait_for(lambda: all(model_states(browser).get(m) == "ready" for m in DEMO_MODELS), PAGE_WITHIN_S,
             "every demo model listed as ready")
    complete(http, model="gpt2", prompt="Hello")  # so the live figures have something to show

    repository(server, SPARE_ENGINE, "unload")
    try:
        state = wait_for(lambda: model_states(browser).get(SPARE_MODEL) not in (None, "ready")
                         and model_states(browser)[SPARE_MODEL], STATE_WITHIN_S, f"{SPARE_MODEL} shown down")
        assert {m: s for m, s in model_states(browser).items() if m != SPARE_MODEL} == {"gpt2": "ready",
                                                                                       "codegen": "ready"}
        down = texts(browser, "#view-models .down-message")[0]
        assert f"{SPARE_MODEL} is {state}" in down and "503" in down  # today's catalog says: unavailable
        wait_for(lambda: f"Model down: {SPARE_MODEL} ({state})" in texts(browser, "#banner")[0], STATE_WITHIN_S,
                 "the banner every view shows")
        assert wait_until(lambda: texts(browser, "#view-models tr[data-model=gpt2] td")[5] != "never",
                          STATE_WITHIN_S)  # last use
        screenshot(browser, "models")
    finally:
        repository(server, SPARE_ENGINE, "load")
    wait_for(lambda: model_states(browser).get(SPARE_MODEL) == "ready", STATE_WITHIN_S * 3,
             f"{SPARE_MODEL} shown ready again")
    assert browser.execute_script("return document.querySelector('#view-models .down-message').hidden")
    wait_for(lambda: banner_hidden(browser), STATE_WITHIN_S, "the banner to clear")


# -- Playground -------------------------------------------------------------------------
def test_playground_streams_text_and_shows_the_decision(browser, gateway):
    open_view(browser, gateway, "playground")
    form = browser.find_element("css selector", "#view-playground form.request")
    prompt = form.find_element("name", "prompt")
    prompt.clear()
    prompt.send_keys("def fibonacci(n):")
    form.find_element("css selector", "input[name=mode][value=auto]").click()
    tokens = form.find_element("name", "max_tokens")
    tokens.clear()
    tokens.send_keys("24")

    form.find_element("name", "send").click()

    state = wait_for(lambda: browser.execute_script(
        "const s = document.querySelector('#view-playground .output').dataset.state;"
        "return ['done', 'failed'].includes(s) && s"), 60, "the answer to finish")
    message = texts(browser, "#view-playground .answer-message")[0]
    assert state == "done", message
    output = browser.execute_script("const o = document.querySelector('#view-playground .output');"
                                    "return {text: o.textContent, pieces: Number(o.dataset.pieces)}")
    assert output["text"].strip() and output["pieces"] > 1  # it arrived as several server-sent events
    decision = wait_for(lambda: (d := browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('#view-playground .decision dd')]"
        ".map((e) => [e.dataset.field, e.textContent]))")).get("selection time") and d, 10, "the logged decision")
    assert decision["mode"] == "auto" and decision["model"] == "codegen" and decision["task"] == "coding"
    assert decision["reason"].startswith("auto: coding prompt") and decision["fallback"] == "false"
    assert decision["selection time"].endswith(" ms") and decision["request id"]
    sent = json.loads(texts(browser, "#view-playground pre.sent")[0].split("\n", 1)[1])
    assert sent == {"model": "auto", "prompt": "def fibonacci(n):", "stream": True, "max_tokens": 24,
                    "temperature": 0}
    browser.execute_script("document.querySelector('#view-playground details').open = true")
    screenshot(browser, "playground")


def test_playground_manual_request_to_a_model_that_is_down_says_so(browser, gateway, spare_model_down):
    open_view(browser, gateway, "playground")
    wait_for(lambda: "Model down: distilgpt2" in view_message(browser, "playground"), STATE_WITHIN_S * 2,
             "the playground to say the model is down")
    form = browser.find_element("css selector", "#view-playground form.request")
    form.find_element("css selector", "input[name=mode][value=manual]").click()
    wait_for(lambda: SPARE_MODEL in texts(browser, "#view-playground select[name=model] option"), 10,
             "the model list")
    browser.execute_script("document.querySelector('#view-playground select[name=model]').value = arguments[0]",
                           SPARE_MODEL)

    form.find_element("name", "send").click()

    wait_for(lambda: browser.execute_script(
        "return document.querySelector('#view-playground .output').dataset.state === 'failed'"), 30,
        "the request to fail")
    message = texts(browser, "#view-playground .answer-message")[0]
    assert message.startswith("Server unavailable:") and SPARE_MODEL in message


# -- Decisions --------------------------------------------------------------------------
def test_decisions_view_shows_each_decision_and_filters_by_mode_and_model(browser, gateway, http):
    complete(http, model="codegen", prompt="manual marker: def add(a, b):")
    complete(http, model="auto", prompt="auto marker: Write a poem about autumn leaves")
    complete(http, model="auto", prompt="hybrid marker: What is the capital of France?", preferred_model="gpt2",
             fallback_mode="fastest")
    open_view(browser, gateway, "decisions")
    rows = "#view-decisions tbody tr"
    wait_for(lambda: sum("marker" in t for t in texts(browser, f"{rows} td.prompt")) >= 3, PAGE_WITHIN_S,
             "the three decisions listed")
    by_prompt = {r["prompt"]: r for r in browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((r) => ({prompt: r.children[1].textContent,"
        " mode: r.dataset.mode, model: r.dataset.model, reason: r.children[5].textContent,"
        " selection: r.children[7].textContent}))", rows)}
    manual = by_prompt["manual marker: def add(a, b):"]
    assert (manual["mode"], manual["model"]) == ("manual", "codegen")
    assert manual["reason"] == "manual: model codegen requested"
    assert by_prompt["hybrid marker: What is the capital of France?"]["mode"] == "hybrid"
    assert by_prompt["auto marker: Write a poem about autumn leaves"]["mode"] == "auto"
    assert all(r["selection"].endswith(" ms") for p, r in by_prompt.items() if "marker" in p)
    wait_for(lambda: banner_hidden(browser), STATE_WITHIN_S, "no banner: every model is back")
    screenshot(browser, "decisions")

    browser.execute_script("const s = document.querySelector('#view-decisions select[name=mode]');"
                           "s.value = 'manual'; s.dispatchEvent(new Event('change', {bubbles: true}));")
    wait_for(lambda: set(browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((r) => r.dataset.mode)", rows)) == {"manual"},
             10, "only manual decisions")
    assert "manual marker: def add(a, b):" in texts(browser, f"{rows} td.prompt")

    browser.execute_script("const f = document.querySelector('#view-decisions form');"
                           "f.mode.value = ''; f.model.value = 'gpt2';"
                           "f.dispatchEvent(new Event('change', {bubbles: true}));")
    wait_for(lambda: set(browser.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((r) => r.dataset.model)", rows)) == {"gpt2"},
             10, "only gpt2's decisions")
    assert "hybrid marker: What is the capital of France?" in texts(browser, f"{rows} td.prompt")


# -- Experiments ------------------------------------------------------------------------
def pointsman_cli(server: TritonServer, *args: str, key: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != ADMIN_KEY_ENV} | ({ADMIN_KEY_ENV: key} if key else {})
    command = [str(Path(sys.executable).with_name("pointsman")), *args, "--url", server.grpc_url, "--protocol", "grpc"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


def test_experiment_created_with_the_cli_appears_with_its_plot_and_pause_needs_the_key(
        browser, gateway, server, http):
    made = pointsman_cli(server, "experiments", "create", "console-ab", "--task", "creative",
                         "--arm", "big=model:gpt2:50", "--arm", "small=model:distilgpt2:50",
                         "--metric", "duration_s", "--min-samples", "3", key=KEY)
    assert made.returncode == 0, made.stderr
    users = iter(range(1000))

    def both_arms_have_an_interval() -> bool:
        complete(http, model="auto", prompt="Write a poem about the sea", user=f"user-{next(users)}")
        arms = experiments(http)["console-ab"]["plot"]["arms"]
        return all(arm["n"] >= 4 for arm in arms)

    wait_for(both_arms_have_an_interval, 120, "four samples in each arm")
    open_view(browser, gateway, "experiments")
    card = "#view-experiments article[data-name='console-ab']"
    wait_for(lambda: browser.execute_script(
        "return document.querySelectorAll(arguments[0] + ' svg.interval-plot g.arm line.interval').length", card)
        >= 6, PAGE_WITHIN_S, "both arms' intervals drawn")  # a line and two caps per arm
    plot = browser.execute_script(
        "const svg = document.querySelector(arguments[0] + ' svg.interval-plot');"
        "return {metric: svg.dataset.metric, arms: [...svg.querySelectorAll('g.arm')].map((g) => g.dataset.arm),"
        " means: svg.querySelectorAll('circle.mean').length}", card)
    assert plot == {"metric": "duration_s", "arms": ["big", "small"], "means": 2}
    assert texts(browser, f"{card} .status")[0] == "active"
    assert texts(browser, f"{card} .verdict")[0] in ("collecting", "continue", "winner")

    browser.execute_script("document.querySelector(arguments[0]).scrollIntoView()", card)
    browser.find_element("css selector", f"{card} button[name=pause]").click()  # no key typed yet
    refusal = wait_for(lambda: (t := texts(browser, f"{card} .action-message")[0]).startswith("Refused") and t, 10,
                       "the refusal")
    assert "admin key" in refusal and ADMIN_HEADER in refusal
    assert experiments(http)["console-ab"]["status"] == "active"  # the server did not pause it

    browser.find_element("css selector", "#view-experiments input[name=admin-key]").send_keys(KEY)
    browser.find_element("css selector", f"{card} button[name=pause]").click()
    wait_for(lambda: texts(browser, f"{card} .action-message")[0] == "pause: now paused", 10, "the pause")
    assert experiments(http)["console-ab"]["status"] == "paused"
    assert texts(browser, f"{card} .status")[0] == "paused"  # redrawn from the server's answer
    screenshot(browser, "experiments")


# -- Usage ------------------------------------------------------------------------------
def test_usage_view_shows_the_summary_over_time_and_a_suggestion_with_its_numbers(
        browser, gateway, http, spare_model_down):
    for _ in range(20):  # hybrid requests whose preferred model is down: all fall back
        complete(http, model="auto", prompt="What is two plus two?", preferred_model=SPARE_MODEL, fallback_mode="auto")
    open_view(browser, gateway, "usage")
    wanted = f"hybrid requests preferring {SPARE_MODEL} fell back in "
    suggestion = wait_for(lambda: next((t for t in texts(browser, ".suggestions li") if wanted in t), None),
                          PAGE_WITHIN_S, "the fallback suggestion")
    assert "%" in suggestion and "fallbacks" in suggestion  # the numbers it cites, and its evidence
    figures = dict(zip(texts(browser, ".figure .label"), texts(browser, ".figure .value"), strict=True))
    assert int(figures["requests"].replace(",", "")) >= 20 and figures["fallback rate"] != "0%"
    newest = texts(browser, "table.slices tbody tr:first-child td")
    assert newest[0] == "last 1 min" and "hybrid" in newest[4]
    latency = texts(browser, "table.latency tbody tr[data-latency=duration_s] td")
    assert int(latency[1]) >= 20 and latency[2].endswith(("ms", "s"))
    screenshot(browser, "usage")


# -- the JSON routes --------------------------------------------------------------------
@pytest.mark.parametrize(("method", "path", "param", "accepted"), [
    ("GET", "/ui/api/decisions?mode=bogus", "mode", "manual, auto, hybrid"),
    ("GET", "/ui/api/usage?window_s=7", "window_s", "60, 300, 900, 3600, 21600, 86400"),
    ("POST", "/ui/api/experiments/console-ab/delete", "action", "pause, resume, stop"),
])
def test_console_api_refuses_bad_filters_naming_the_parameter(http, method, path, param, accepted):
    reply = http.request(method, path)

    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == param and f"invalid '{param}': must be one of {accepted}" in error["message"]


def test_a_stream_the_client_leaves_is_logged_as_such(http):
    body = {"model": "gpt2", "prompt": "left early", "max_tokens": 200, "ignore_eos": True, "stream": True}
    with http.stream("POST", "/v1/completions", json=body) as reply:
        assert reply.status_code == 200
        request_id = reply.headers["x-pointsman-request-id"]
        next(reply.iter_lines())  # the first event, then hang up

    def logged() -> dict | None:
        decisions = http.get("/ui/api/decisions", params={"model": "gpt2"}).json()["decisions"]
        return next((d for d in decisions if d["request_id"] == request_id), None)

    decision = wait_for(logged, 30, "the decision of the abandoned stream")
    assert decision["error"] == "the client left before the end" and decision["prompt_preview"] == "left early"
    assert decision["mode"] == "manual" and decision["tokens"] < 200


# -- unreachable ------------------------------------------------------------------------
def test_every_view_says_the_server_is_unreachable_when_it_is_stopped(browser, tmp_path):
    stopped = ServerPorts.free()  # nothing listens there: a Triton that was stopped
    with GatewayProcess(f"127.0.0.1:{stopped.grpc}", port=ServerPorts.free().http,
                        log_file=tmp_path / "gateway.log") as lonely:
        for view in ("models", "decisions", "experiments", "usage", "playground"):
            open_view(browser, lonely, view)
            message = wait_for(lambda v=view: (m := view_message(browser, v)).startswith("Server unreachable") and m,
                               PAGE_WITHIN_S, f"the {view} view's unreachable message")
            assert "cannot reach Triton" in message and f"127.0.0.1:{stopped.grpc}" in message
        open_view(browser, lonely, "models")
        wait_for(lambda: "Server unreachable" in view_message(browser, "models"), PAGE_WITHIN_S, "the message")
        assert not browser.find_element("id", "banner").get_attribute("hidden")
        screenshot(browser, "unreachable")
        lonely.stop()  # now the gateway too: the page, still open, cannot reach anything
        message = wait_for(lambda: (m := view_message(browser, "models")).startswith("Server unreachable: the console "
                                                                                   "cannot reach the gateway") and m,
                           PAGE_WITHIN_S, "the gateway-unreachable message")
        assert lonely.url.removeprefix("http://") in message
        screenshot(browser, "gateway-unreachable")
