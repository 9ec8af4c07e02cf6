// Models view: every routable model, its state and live figures, from the catalog, every second.
import { ago, api, el, every, fail, number, recovered, seconds } from "./common.js";

const REFRESH_MS = 1000;

function specialisation(scores) {
  return Object.entries(scores)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 2)
    .map(([task, score]) => `${task} ${number(score, 2)}`)
    .join(", ");
}

function row(model) {
  return el("tr", { dataset: { model: model.name, state: model.state }, class: model.down ? "down" : null },
    el("th", { scope: "row" }, model.name),
    el("td", {}, el("span", { class: `state state-${model.state}`, "data-role": "state" }, model.state)),
    el("td", { class: "num" }, number(model.queue, 0)),
    el("td", { class: "num" }, number(model.in_flight, 0)),
    el("td", { class: "num" }, number(model.tokens_per_s, 1)),
    el("td", { class: "num" }, seconds(model.ttft_s)),
    el("td", {}, ago(model.last_used)),
    el("td", { class: "num" }, number(model.requests_served, 0)),
    el("td", { class: "num" }, number(model.errors, 0)),
    el("td", {}, model.family ?? "—"),
    el("td", { class: "num" }, number(model.context_length, 0)),
    el("td", {}, specialisation(model.specialization)),
  );
}

function downMessage(down) {
  if (!down.length) return "";
  const names = down.map((m) => {
    const why = m.status.reason ?? m.status.message ?? m.status.detail;
    return why ? `${m.name} is ${m.state} (${why})` : `${m.name} is ${m.state}`;
  });
  return `Model down: ${names.join("; ")}. Requests naming it get 503 with Retry-After; `
    + "auto and hybrid requests go to the models that are ready.";
}

export function start(view) {
  const body = view.querySelector("tbody");
  const banner = view.querySelector(".down-message");
  return every(REFRESH_MS, async () => {
    try {
      const { models } = await api("/ui/api/models");
      body.replaceChildren(...models.map(row));
      if (!models.length) body.append(el("tr", {}, el("td", { colspan: 12 }, "The catalog lists no models.")));
      const text = downMessage(models.filter((m) => m.down));
      banner.textContent = text;
      banner.hidden = !text;
      recovered(view);
    } catch (error) {
      fail(view, error);
    }
  });
}
