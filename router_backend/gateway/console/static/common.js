// Shared by every view: calling the gateway, telling failures apart, building DOM safely, formatting.
//   const data = await api("/ui/api/models");            // throws ConsoleError
//   const stop = every(1000, refresh);                     // polls until stop()
// Prompts and reasons are user or server text: they are only ever set as textContent.

const TIMEOUT_MS = 8000;

// kind: "gateway" (no answer at all), "triton" (the gateway cannot reach Triton), "unavailable"
// (503: a model down, overload), "server" (another server fault), "client" (4xx: the request)
export class ConsoleError extends Error {
  constructor(kind, message, status = null, body = null, detail = "") {
    super(message);
    this.kind = kind;
    this.status = status;
    this.body = body;
    this.detail = detail;
  }
}

export function failureKind(status, message) {
  if (status === 503) return /unreachable/i.test(message) ? "triton" : "unavailable";
  return status >= 500 ? "server" : "client";
}

export async function answerError(response) {
  let body = null;
  try { body = await response.json(); } catch { /* not JSON: the status says enough */ }
  const message = body?.error?.message ?? `HTTP ${response.status} ${response.statusText}`;
  return new ConsoleError(failureKind(response.status, message), message, response.status, body);
}

export async function send(path, options = {}) {
  try {
    return await fetch(path, { cache: "no-store", signal: AbortSignal.timeout(TIMEOUT_MS), ...options });
  } catch (error) {
    if (error.name === "AbortError" && options.signal) throw error;  // the caller stopped it
    throw new ConsoleError("gateway", `the console cannot reach the gateway at ${location.host}`, null, null,
      error.message);
  }
}

export async function api(path, options = {}) {
  const response = await send(path, options);
  if (!response.ok) throw await answerError(response);
  return response.json();
}

// one line a person can act on; the raw words of the failure go to detail()
export function describe(error) {
  const text = error instanceof ConsoleError ? error.message : String(error.message ?? error);
  switch (error.kind) {
    case "gateway": return `Server unreachable: ${text}. Retrying.`;
    case "triton": {
      const where = /Triton at (\S+?):? (is|does)/.exec(text)?.[1];
      return `Server unreachable: the gateway cannot reach Triton${where ? ` at ${where}` : ""}. Retrying.`;
    }
    case "unavailable": return `Server unavailable: ${text}`;
    case "server": return `Server fault: ${text}`;
    default: return text;
  }
}

export function detail(error) {
  if (error.kind === "triton") return error.message;
  return error.detail ?? "";
}

// a view's own message line: problem (red), or plain information; empty hides it
export function say(view, text, problem = false, more = "") {
  const line = view.querySelector(".view-message");
  line.replaceChildren(text || "", more ? el("span", { class: "detail" }, more) : "");
  line.classList.toggle("problem", Boolean(text) && problem);
  line.hidden = !text;
}

export function fail(view, error) {
  say(view, describe(error), true, detail(error));
  view.dataset.failure = error.kind ?? "unknown";
  view.classList.add("stale");  // what is still shown is the last answer, not the current state
  document.dispatchEvent(new CustomEvent("console-failure", { detail: error }));
}

export function recovered(view) {
  if (view.dataset.failure) say(view, "");
  delete view.dataset.failure;
  view.classList.remove("stale");
  const updated = view.querySelector(".updated");
  if (updated) updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
}

// call fn now and then every `ms` after each call ends (never two at once); returns stop()
export function every(ms, fn) {
  let stopped = false;
  let timer = null;
  const tick = async () => {
    if (stopped) return;
    try { await fn(); } finally { if (!stopped) timer = setTimeout(tick, ms); }
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function number(value, digits = 2) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  return Number(value).toLocaleString(undefined, { maximumFractionDigits: digits });
}

export function seconds(value) {
  if (value === null || value === undefined) return "—";
  return value < 1 ? `${number(value * 1000, 1)} ms` : `${number(value, 2)} s`;
}

export function percent(value) {
  return value === null || value === undefined ? "—" : `${number(value * 100, 1)}%`;
}

export function ago(when) {
  if (!when) return "never";
  const stamp = typeof when === "number" ? when * 1000 : Date.parse(when);
  const s = Math.max(0, (Date.now() - stamp) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${number(s / 3600, 1)} h ago`;
}

export function span(seconds_) {
  if (seconds_ < 60) return `${seconds_} s`;
  if (seconds_ < 3600) return `${seconds_ / 60} min`;
  return `${seconds_ / 3600} h`;
}
