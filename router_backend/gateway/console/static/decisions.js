// Decisions view: the routing decisions of requests through this gateway, newest first, every second.
import { ConsoleError, api, el, every, fail, number, recovered, say, span } from "./common.js";

const REFRESH_MS = 1000;

function outcome(decision) {
  return decision.error ? el("span", { class: "problem", title: decision.error }, decision.error) : "ok";
}

function row(d) {
  return el("tr", { dataset: { requestId: d.request_id, mode: d.mode, model: d.model },
                    class: d.error ? "failed" : null },
    el("td", {}, new Date(d.timestamp * 1000).toLocaleTimeString()),
    el("td", { class: "prompt", title: d.endpoint }, d.prompt_preview),
    el("td", {}, d.mode || "—"),
    el("td", {}, d.task || "—"),
    el("td", {}, d.model || "—"),
    el("td", { class: "reason" }, d.reason || "—"),
    el("td", {}, d.fallback_used ? "yes" : "no"),
    el("td", { class: "num" }, d.selection_ms === null ? "—" : `${number(d.selection_ms, 2)} ms`),
    el("td", { class: "num" }, `${number(d.latency_ms, 0)} ms`),
    el("td", { class: "num" }, number(d.tokens, 0)),
    el("td", {}, outcome(d)),
  );
}

function offerModels(select, names) {
  const have = new Set([...select.options].map((o) => o.value));
  for (const name of names) {
    if (name && !have.has(name)) select.append(el("option", { value: name }, name));
  }
}

export function start(view) {
  const body = view.querySelector("tbody");
  const form = view.querySelector("form.filters");
  const retention = view.querySelector(".retention");
  api("/ui/api/models").then(({ models }) => offerModels(form.model, models.map((m) => m.name)),
    () => { /* the poll below reports the failure */ });
  const refresh = async () => {
    const query = new URLSearchParams();
    if (form.mode.value) query.set("mode", form.mode.value);
    if (form.model.value) query.set("model", form.model.value);
    try {
      const { decisions, retention_s: kept, triton, triton_live: live } = await api(`/ui/api/decisions?${query}`);
      offerModels(form.model, decisions.map((d) => d.model));
      body.replaceChildren(...decisions.map(row));
      if (!live) {
        fail(view, new ConsoleError("triton", `Triton at ${triton} is unreachable: `
          + "the decisions shown were made before"));
      } else {
        recovered(view);
        say(view, decisions.length ? "" : query.toString() ? "No decision matches these filters."
          : "No decisions yet: send a request through this gateway (/v1, /inference or the Playground).");
      }
      retention.textContent = `Requests through this gateway only. Prompt previews are held in the gateway's `
        + `memory for at most ${span(Math.round(kept))} (never longer than the usage store keeps its records) `
        + "and never written to disk.";
    } catch (error) {
      fail(view, error);
    }
  };
  form.onchange = refresh;
  return every(REFRESH_MS, refresh);
}
