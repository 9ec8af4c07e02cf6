// Usage view: the usage model's summary for one window, requests per time slice by mode, model and task,
// fallback and error rates, latency percentiles, and the suggestions with the numbers they cite.
import { api, el, every, fail, number, percent, recovered, say, seconds, span } from "./common.js";

const REFRESH_MS = 5000;  // each refresh asks the usage model for six windows
const MODES = ["manual", "auto", "hybrid"];

function figure(label, value, detail = "") {
  return el("div", { class: "figure", dataset: { figure: label } },
    el("div", { class: "label" }, label), el("div", { class: "value" }, value), el("div", { class: "note" }, detail));
}

function counts(map) {
  const entries = Object.entries(map ?? {}).filter(([, n]) => n > 0);
  return entries.length ? entries.map(([k, n]) => `${k} ${n}`).join(", ") : "—";
}

function modeBar(slice, widest) {
  const width = 160;
  const bar = el("div", { class: "bar", style: `width:${width}px` });
  for (const mode of MODES) {
    const n = slice.by_mode?.[mode] ?? 0;
    if (n > 0) {
      bar.append(el("span", { class: `segment mode-${mode}`, title: `${mode} ${n}`,
                              style: `width:${Math.max(2, (n / widest) * width)}px` }));
    }
  }
  return bar;
}

function slices(list) {
  const widest = Math.max(1, ...list.map((s) => s.requests));
  const rows = list.map((s) => el("tr", {},
    el("td", {}, s.start_s === 0 ? `last ${span(s.end_s)}` : `${span(s.start_s)} to ${span(s.end_s)} ago`),
    el("td", { class: "num" }, number(s.requests, 0)),
    el("td", { class: "num" }, number(s.per_minute, 2)),
    el("td", {}, modeBar(s, widest)),
    el("td", {}, counts(s.by_mode)),
    el("td", {}, counts(s.by_model)),
    el("td", {}, counts(s.by_task)),
    el("td", { class: "num" }, number(s.fallbacks, 0)),
    el("td", { class: "num" }, number(s.errors, 0))));
  return el("table", { class: "slices" },
    el("caption", {}, "Requests over time (",
      ...MODES.map((m) => el("span", { class: `legend mode-${m}` }, m)), ")"),
    el("thead", {}, el("tr", {}, ...["when", "requests", "per minute", "", "by mode", "by model", "by task",
      "fallbacks", "errors"].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function latency(summary) {
  const names = { selection_ms: "selection (ms)", ttft_s: "time to first token", duration_s: "request duration",
                  per_token_s: "per token" };
  const show = (name, v) => (name === "selection_ms" ? number(v, 3) : seconds(v));
  const rows = Object.entries(names).map(([name, label]) => {
    const d = summary.latency?.[name] ?? { n: 0 };
    return el("tr", { dataset: { latency: name } }, el("td", {}, label), el("td", { class: "num" }, number(d.n, 0)),
      ...["p50", "p90", "p99", "max"].map((p) => el("td", { class: "num" }, d.n ? show(name, d[p]) : "—")));
  });
  return el("table", { class: "latency" },
    el("caption", {}, "Latency percentiles"),
    el("thead", {}, el("tr", {}, ...["", "n", "p50", "p90", "p99", "max"].map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function perModel(summary) {
  const rows = Object.entries(summary.per_model ?? {}).map(([name, m]) => el("tr", {},
    el("td", {}, name), el("td", { class: "num" }, number(m.requests, 0)),
    el("td", { class: "num" }, percent(m.error_rate)), el("td", { class: "num" }, number(m.tokens_per_s, 1)),
    el("td", { class: "num" }, m.ttft_s?.n ? seconds(m.ttft_s.p50) : "—"),
    el("td", { class: "num" }, m.duration_s?.n ? seconds(m.duration_s.p99) : "—")));
  return el("table", { class: "per-model" },
    el("caption", {}, "Per model"),
    el("thead", {}, el("tr", {}, ...["model", "requests", "errors", "tokens/s", "TTFT p50", "duration p99"]
      .map((h) => el("th", {}, h)))),
    el("tbody", {}, rows));
}

function routing(summary) {
  const rows = Object.entries(summary.routing_table ?? {}).map(([task, t]) => el("tr", {},
    el("td", {}, task), el("td", { class: "num" }, number(t.requests, 0)),
    el("td", {}, Object.entries(t.models).map(([m, share]) => `${m} ${percent(share)}`).join(", "))));
  return el("table", { class: "routing" },
    el("caption", {}, "Where each task went"),
    el("thead", {}, el("tr", {}, el("th", {}, "task"), el("th", {}, "requests"), el("th", {}, "models"))),
    el("tbody", {}, rows));
}

function evidence(value) {
  if (typeof value === "string") return value;
  if (value === null || typeof value !== "object") return number(value, 4);
  return Object.entries(value).map(([k, v]) => `${k} ${typeof v === "object" ? JSON.stringify(v) : number(v, 4)}`)
    .join(", ");
}

function suggestions(summary) {
  const items = (summary.suggestions ?? []).map((s) => el("li", { class: `severity-${s.severity}` },
    el("strong", {}, `${s.severity}: `), s.message,
    s.evidence ? el("div", { class: "note" }, Object.entries(s.evidence)
      .map(([k, v]) => `${k}: ${evidence(v)}`).join("; ")) : null));
  return el("div", { class: "suggestions" }, el("h3", {}, "Suggestions"),
    items.length ? el("ul", {}, items)
      : el("p", { class: "note" }, "No suggestion: each rule needs enough traffic (20 requests) before it speaks."));
}

function render(target, { summary, slices: list, window_s: windowS }) {
  const fallback = summary.fallback ?? {};
  const errors = summary.errors ?? {};
  target.replaceChildren(
    el("div", { class: "figures" },
      figure("requests", number(summary.requests, 0), `in the last ${span(windowS)}`),
      figure("fallback rate", percent(fallback.rate), `${fallback.count ?? 0} fell back: ${counts(fallback.reasons)}`),
      figure("error rate", percent(errors.rate), `${errors.count ?? 0} failed: ${counts(errors.by_kind)}`),
      figure("tokens", number(summary.tokens?.total, 0), `${number(summary.tokens?.per_request_mean, 1)} per request`),
      figure("by mode", counts(summary.by_mode)),
      figure("by task", counts(summary.by_task))),
    slices(list), latency(summary), perModel(summary), routing(summary), suggestions(summary));
}

export function start(view) {
  const target = view.querySelector(".usage");
  const form = view.querySelector("form.filters");
  const refresh = async () => {
    try {
      const data = await api(`/ui/api/usage?window_s=${form.window.value}`);
      render(target, data);
      recovered(view);
      say(view, data.summary.requests ? "" : "No requests recorded in this window.");
    } catch (error) {
      fail(view, error);
    }
  };
  form.onchange = refresh;
  return every(REFRESH_MS, refresh);
}
