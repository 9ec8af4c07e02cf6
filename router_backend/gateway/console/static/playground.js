// Playground view: the request a client sends (POST /v1/completions with stream: true on this gateway),
// its text as it streams in, and the router's decision beside it (response headers, then the decision log).
import { answerError, api, describe, el, fail, number, recovered, say, send } from "./common.js";

const DECISION_HEADERS = [
  ["mode", "x-pointsman-selection-mode"], ["model", "x-pointsman-selected-model"],
  ["task", "x-pointsman-task"], ["reason", "x-pointsman-selection-reason"],
  ["fallback", "x-pointsman-fallback-used"], ["request id", "x-pointsman-request-id"],
];

export function requestBody(form) {
  const mode = form.mode.value;
  const body = { model: mode === "manual" ? form.model.value : "auto", prompt: form.prompt.value, stream: true };
  if (mode === "hybrid") {
    body.preferred_model = form.preferred_model.value;
    body.fallback_mode = form.fallback_mode.value;
  }
  if (form.max_tokens.value !== "") body.max_tokens = Number(form.max_tokens.value);
  if (form.temperature.value !== "") body.temperature = Number(form.temperature.value);
  if (mode !== "manual") {
    if (form.max_response_time.value !== "") body.max_response_time = Number(form.max_response_time.value);
    if (form.min_quality.value !== "") body.min_quality = Number(form.min_quality.value);
    if (form.prefer_speed.checked) body.prefer_speed = true;
  }
  return body;
}

function showDecision(list, pairs) {
  list.replaceChildren(...pairs.flatMap(([name, value]) => [
    el("dt", {}, name), el("dd", { dataset: { field: name } }, value ?? "—")]));
}

function decisionFromHeaders(headers) {
  return DECISION_HEADERS.map(([name, header]) => [name, headers.get(header)]);
}

// server-sent events of OpenAI's chunk format -> onText(piece); throws ConsoleError on an error event
async function readStream(response, onText) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const chunk = JSON.parse(data);
        if (chunk.error) {
          const error = new Error(chunk.error.message);
          error.kind = chunk.error.type === "invalid_request_error" ? "client" : "server";
          throw error;
        }
        const piece = chunk.choices?.[0]?.text ?? "";
        if (piece) onText(piece);
      }
    }
  }
}

function offerModels(form, names) {
  for (const select of [form.model, form.preferred_model]) {
    const chosen = select.value;
    select.replaceChildren(...names.map((n) => el("option", { value: n }, n)));
    if (names.includes(chosen)) select.value = chosen;
  }
}

function showFieldsFor(form) {
  const mode = form.mode.value;
  for (const label of form.querySelectorAll("[data-for]")) label.hidden = !label.dataset.for.split(" ").includes(mode);
}

export function start(view) {
  const form = view.querySelector("form.request");
  const output = view.querySelector(".output");
  const message = view.querySelector(".answer-message");
  const decision = view.querySelector(".decision dl");
  const sent = view.querySelector(".sent");
  let controller = null;

  const loadModels = async () => {
    try {
      const { models } = await api("/ui/api/models");
      offerModels(form, models.map((m) => m.name));
      const down = models.filter((m) => m.down).map((m) => `${m.name} (${m.state})`);
      recovered(view);
      say(view, down.length ? `Model down: ${down.join(", ")}. Manual requests to it get 503.` : "", down.length > 0);
    } catch (error) {
      fail(view, error);
    }
  };

  const run = async (event) => {
    event.preventDefault();
    controller?.abort();
    controller = new AbortController();
    const body = requestBody(form);
    sent.textContent = `POST ${location.origin}/v1/completions\n${JSON.stringify(body, null, 2)}`;
    output.textContent = "";
    output.dataset.pieces = "0";
    output.dataset.state = "waiting";
    message.textContent = "";
    message.classList.remove("problem");
    showDecision(decision, []);
    form.send.disabled = true;
    form.stop.disabled = false;
    try {
      const response = await send("/v1/completions", {
        method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
        signal: controller.signal });
      if (!response.ok) throw await answerError(response);
      recovered(view);
      showDecision(decision, decisionFromHeaders(response.headers));
      output.dataset.state = "streaming";
      await readStream(response, (piece) => {
        output.append(piece);
        output.dataset.pieces = String(Number(output.dataset.pieces) + 1);
      });
      output.dataset.state = "done";
      message.textContent = `${output.dataset.pieces} pieces streamed.`;
      const requestId = response.headers.get("x-pointsman-request-id");
      const { decisions } = await api(`/ui/api/decisions?limit=500`);
      const logged = decisions.find((d) => d.request_id === requestId);
      if (logged) {
        showDecision(decision, [...decisionFromHeaders(response.headers),
          ["selection time", `${number(logged.selection_ms, 3)} ms`], ["latency", `${number(logged.latency_ms, 0)} ms`],
          ["tokens", number(logged.tokens, 0)]]);
      }
    } catch (error) {
      output.dataset.state = error.name === "AbortError" ? "stopped" : "failed";
      message.textContent = error.name === "AbortError" ? "Stopped." : describe(error);
      message.classList.toggle("problem", error.name !== "AbortError");
      if (error.kind === "gateway" || error.kind === "triton") fail(view, error);
    } finally {
      form.send.disabled = false;
      form.stop.disabled = true;
    }
  };

  // handlers as properties: starting the view again replaces them rather than adding more
  form.onsubmit = run;
  form.stop.onclick = () => controller?.abort();
  form.onchange = () => showFieldsFor(form);
  showFieldsFor(form);
  loadModels();
  const timer = setInterval(loadModels, 5000);
  return () => clearInterval(timer);
}
