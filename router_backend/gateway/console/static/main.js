// The console's shell: one view at a time (by the URL's #hash), and the connection line in the header,
// which says whether the gateway and Triton answer (checked every 2 s, and after any failed call).
import { ConsoleError, api, describe, every } from "./common.js";
import * as decisions from "./decisions.js";
import * as experiments from "./experiments.js";
import * as models from "./models.js";
import * as playground from "./playground.js";
import * as usage from "./usage.js";

const VIEWS = { models, decisions, experiments, usage, playground };
const HEALTH_MS = 2000;
let stopView = null;

function show(name) {
  const chosen = name in VIEWS ? name : "models";
  stopView?.();
  for (const [key] of Object.entries(VIEWS)) {
    document.getElementById(`view-${key}`).hidden = key !== chosen;
  }
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.dataset.view === chosen);
  document.body.dataset.view = chosen;
  stopView = VIEWS[chosen].start(document.getElementById(`view-${chosen}`));
}

// state: ok, down (the catalog says a model is not ready), notready (Triton answers but is not ready),
// triton or gateway (unreachable)
const PILL = { ok: "gateway ok · Triton ready", down: "model down", notready: "Triton not ready",
               triton: "Triton unreachable", gateway: "gateway unreachable" };

function connection(state, text) {
  const pill = document.getElementById("connection");
  pill.dataset.state = state;
  pill.textContent = PILL[state] ?? state;
  pill.title = text;
  const banner = document.getElementById("banner");
  banner.hidden = state === "ok";
  banner.dataset.state = state;
  banner.textContent = state === "ok" ? "" : text;
}

async function checkHealth() {
  try {
    const health = await api("/ui/api/health");
    const down = health.models_down ?? [];
    if (health.triton_live && down.length) {
      connection("down", `Model down: ${down.map((m) => `${m.name} (${m.state})`).join(", ")}. Requests naming it `
        + "get 503 with Retry-After; auto and hybrid requests go to the models that are ready.");
    } else if (health.triton_ready) connection("ok", "");
    else if (health.triton_live) {
      connection("notready", `Triton at ${health.triton} answers but is not ready: a model is loading, unloading `
        + "or failed (see Models).");
    } else {
      connection("triton", describe(new ConsoleError("triton", `Triton at ${health.triton} is unreachable`)));
    }
  } catch (error) {
    connection(error.kind === "triton" ? "triton" : "gateway", describe(error));
  }
}

document.addEventListener("console-failure", (event) => {
  if (event.detail.kind === "gateway" || event.detail.kind === "triton") connection(event.detail.kind,
    describe(event.detail));
});
window.addEventListener("hashchange", () => { show(location.hash.slice(1)); checkHealth(); });
show(location.hash.slice(1));
every(HEALTH_MS, checkHealth);
