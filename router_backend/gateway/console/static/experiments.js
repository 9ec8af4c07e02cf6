// Experiments view: each experiment's arms with the mean and 95% interval of its primary metric drawn
// in SVG, the verdict and its statistics, and pause/resume/stop (which need the admin key).
import { api, describe, el, every, fail, number, recovered, say, send, answerError } from "./common.js";

const REFRESH_MS = 2000;
const KEY_STORE = "pointsman-admin-key";
const SVG = "http://www.w3.org/2000/svg";
const WIDTH = 640;
const LABEL_W = 170;
const ROW_H = 30;
const PAD = 24;

function svg(tag, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

function ticks(low, high, count = 5) {
  const step = (high - low) / (count - 1);
  return Array.from({ length: count }, (_, i) => low + i * step);
}

// the plot: one row per arm, a line from ci_low to ci_high and a dot at the mean; the control's mean dashed
export function intervalPlot(plot) {
  const arms = plot.arms.filter((a) => a.mean !== null && a.mean !== undefined);
  const height = arms.length ? PAD * 2 + ROW_H * plot.arms.length : 40;
  const root = svg("svg", { viewBox: `0 0 ${WIDTH} ${height}`, width: WIDTH, height, class: "interval-plot",
                            role: "img", "data-metric": plot.metric,
                            "aria-label": `${plot.metric}: mean and 95% interval per arm` });
  if (!arms.length) {
    root.append(svg("text", { x: WIDTH / 2, y: height / 2, "text-anchor": "middle", class: "empty" },
      `no ${plot.metric} samples yet`));
    return root;
  }
  const values = arms.flatMap((a) => [a.mean, a.ci_low ?? a.mean, a.ci_high ?? a.mean]);
  let low = Math.min(...values);
  let high = Math.max(...values);
  const margin = (high - low) * 0.08 || Math.abs(high) * 0.1 || 1;
  low -= margin;
  high += margin;
  const x = (v) => LABEL_W + ((v - low) / (high - low)) * (WIDTH - LABEL_W - PAD);
  const bottom = height - PAD;
  root.append(svg("line", { x1: LABEL_W, x2: WIDTH - PAD, y1: bottom, y2: bottom, class: "axis" }));
  for (const t of ticks(low, high)) {
    root.append(svg("line", { x1: x(t), x2: x(t), y1: PAD / 2, y2: bottom, class: "grid" }));
    root.append(svg("text", { x: x(t), y: bottom + 14, "text-anchor": "middle", class: "tick" }, number(t, 3)));
  }
  const control = plot.arms.find((a) => a.name === plot.control);
  if (control && control.mean !== null && control.mean !== undefined) {
    root.append(svg("line", { x1: x(control.mean), x2: x(control.mean), y1: PAD / 2, y2: bottom,
                              class: "control-mean" }));
  }
  plot.arms.forEach((arm, i) => {
    const y = PAD + ROW_H * i + ROW_H / 2;
    const group = svg("g", { class: "arm", "data-arm": arm.name });
    group.append(svg("text", { x: LABEL_W - 8, y: y + 4, "text-anchor": "end", class: "label" },
      `${arm.name}${arm.name === plot.control ? " (control)" : ""} n=${arm.n}`));
    if (arm.mean !== null && arm.mean !== undefined) {
      if (arm.ci_low !== null && arm.ci_high !== null && arm.ci_low !== undefined) {
        group.append(svg("line", { x1: x(arm.ci_low), x2: x(arm.ci_high), y1: y, y2: y, class: "interval" }));
        for (const end of [arm.ci_low, arm.ci_high]) {
          group.append(svg("line", { x1: x(end), x2: x(end), y1: y - 6, y2: y + 6, class: "interval" }));
        }
      }
      group.append(svg("circle", { cx: x(arm.mean), cy: y, r: 5, class: "mean" }));
      group.append(svg("title", {}, `${arm.name}: mean ${number(arm.mean, 4)}, 95% interval `
        + `${number(arm.ci_low, 4)} to ${number(arm.ci_high, 4)} (n=${arm.n})`));
    }
    root.append(group);
  });
  return root;
}

function verdict(decision) {
  const parts = [el("strong", { class: `verdict verdict-${decision.state}` }, decision.state)];
  if (decision.winner) parts.push(` — winner ${decision.winner}`);
  parts.push(el("div", { class: "reason" }, decision.reason ?? ""));
  for (const warning of decision.guardrails ?? []) parts.push(el("div", { class: "problem" }, warning));
  return el("div", { class: "decision-state" }, ...parts);
}

function comparisons(experiment) {
  const metric = experiment.plot.metric;
  const rows = experiment.primary_comparisons.map((c) => {
    const r = c.result;
    return el("tr", {},
      el("td", {}, `${c.arm} vs ${c.vs}`),
      el("td", { class: "num" }, r ? number(r.diff, 4) : "—"),
      el("td", { class: "num" }, r ? number(r.p_adjusted, 4) : "—"),
      el("td", {}, r ? (r.significant ? (r.better ? "better" : "worse") : "not significant") : "too few samples"),
      el("td", { class: "num" }, c.plan ? number(c.plan.samples_per_arm, 0) : "—"));
  });
  return el("table", { class: "comparisons" },
    el("thead", {}, el("tr", {}, el("th", {}, `on ${metric}`), el("th", {}, "difference"),
      el("th", {}, "adjusted p"), el("th", {}, "verdict"), el("th", {}, "samples/arm for 80% power"))),
    el("tbody", {}, rows));
}

function arms(experiment) {
  const metric = experiment.plot.metric;
  const rows = experiment.plot.arms.map((a, i) => el("tr", {},
    el("td", {}, a.name),
    el("td", {}, a.model ? `model ${a.model}` : `policy ${a.policy}`),
    el("td", { class: "num" }, number(experiment.arms[i]?.weight, 2)),
    el("td", { class: "num" }, number(experiment.arms[i]?.requests, 0)),
    el("td", { class: "num" }, number(a.mean, 4)),
    el("td", { class: "num" }, a.ci_low === null || a.ci_low === undefined ? "—"
      : `${number(a.ci_low, 4)} to ${number(a.ci_high, 4)}`)));
  return el("table", { class: "arms" },
    el("thead", {}, el("tr", {}, el("th", {}, "arm"), el("th", {}, "serves"), el("th", {}, "weight"),
      el("th", {}, "requests"), el("th", {}, `mean ${metric}`), el("th", {}, "95% interval"))),
    el("tbody", {}, rows));
}

function card(view, experiment, refresh) {
  const actions = el("div", { class: "actions" },
    ...["pause", "resume", "stop"].map((action) => el("button", { type: "button", name: action }, action)),
    el("span", { class: "action-message", role: "status" }));
  const node = el("article", { class: "experiment", dataset: { name: experiment.name } },
    el("div", { class: "body" }), actions);
  actions.addEventListener("click", (event) => {
    const action = event.target.closest("button")?.name;
    if (action) act(view, node, action, refresh);
  });
  return node;
}

function fill(node, experiment) {
  node.dataset.status = experiment.status;
  const filter = experiment.filter ?? {};
  const better = experiment.plot.better ? ` (${experiment.plot.better} is better)` : "";
  node.querySelector(".body").replaceChildren(
    el("h3", {}, experiment.name, " ", el("span", { class: `status status-${experiment.status}` }, experiment.status)),
    el("p", { class: "note" }, experiment.description || "",
      ` Traffic: ${(filter.selection_mode ?? ["auto"]).join(", ")} requests`
      + `${filter.task?.length ? ` with task ${filter.task.join(", ")}` : ""}. `
      + `${experiment.requests} requests. Primary metric ${experiment.plot.metric}${better}.`),
    intervalPlot(experiment.plot),
    arms(experiment),
    verdict(experiment.decision),
    comparisons(experiment));
  for (const button of node.querySelectorAll(".actions button")) {
    const allowed = { pause: "active", resume: "paused", stop: null }[button.name];
    button.disabled = experiment.status === "stopped" || (allowed !== null && experiment.status !== allowed);
  }
}

async function act(view, node, action, refresh) {
  const message = node.querySelector(".action-message");
  const key = view.querySelector("input[name=admin-key]").value;
  message.textContent = `${action}…`;
  message.classList.remove("problem");
  try {
    const response = await send(`/ui/api/experiments/${encodeURIComponent(node.dataset.name)}/${action}`, {
      method: "POST", headers: key ? { "pointsman-admin-key": key } : {} });
    if (!response.ok) throw await answerError(response);
    const { experiment } = await response.json();
    await refresh();  // the card redrawn from the server's state, not patched here
    message.textContent = `${action}: now ${experiment.status}`;
  } catch (error) {
    message.textContent = error.status === 403
      ? `Refused: ${action} needs the admin key. ${error.message}` : describe(error);
    message.classList.add("problem");
  }
}

export function start(view) {
  const list = view.querySelector(".experiments");
  const keyInput = view.querySelector("input[name=admin-key]");
  keyInput.value = sessionStorage.getItem(KEY_STORE) ?? "";
  keyInput.onchange = () => sessionStorage.setItem(KEY_STORE, keyInput.value);
  list.replaceChildren();  // this start's cards only
  const cards = new Map();
  const refresh = async () => {
    try {
      const { experiments } = await api("/ui/api/experiments");
      const seen = new Set();
      for (const experiment of experiments) {
        if (!cards.has(experiment.name)) cards.set(experiment.name, card(view, experiment, refresh));
        const node = cards.get(experiment.name);
        fill(node, experiment);
        list.append(node);  // keeps the server's order; moving a node keeps its listeners
        seen.add(experiment.name);
      }
      for (const [name, node] of cards) if (!seen.has(name)) { node.remove(); cards.delete(name); }
      recovered(view);
      say(view, experiments.length ? "" : "No experiments yet: create one with `pointsman experiments create`.");
    } catch (error) {
      fail(view, error);
    }
  };
  return every(REFRESH_MS, refresh);
}
