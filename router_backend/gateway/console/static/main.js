// The console's shell: one view at a time (by the URL's #hash), and the connection line in the header,
// which says whether the gateway and Triton answer (checked every 2 s, and after any failed call).
import { api, describe, every } from "./common.js";
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

function connection(state, text) {
  const line = document.getElementById("connection");
  line.dataset.state = state;
  line.textContent = text;
  const banner = document.getElementById("banner");
  banner.hidden = state === "ok";
  banner.textContent = state === "ok" ? "" : text;
}

async function checkHealth() {
  try {
    const health = await api("/ui/api/health");
    if (health.triton_ready) connection("ok", `gateway ok · Triton ${health.triton} ready`);
    else connection("triton", `Server unreachable: Triton at ${health.triton} does not answer or is not ready.`);
  } catch (error) {
    connection(error.kind ?? "gateway", describe(error));
  }
}

document.addEventListener("console-failure", (event) => {
  if (event.detail.kind === "gateway" || event.detail.kind === "triton") connection(event.detail.kind,
    describe(event.detail));
});
window.addEventListener("hashchange", () => show(location.hash.slice(1)));
show(location.hash.slice(1));
every(HEALTH_MS, checkHealth);
