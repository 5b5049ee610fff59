// The model's view of a Bayesian campaign (GET /api/campaigns/{id}/model): posterior mean ± σ and the
// acquisition along each recipe axis through the incumbent, one small plot per axis (BOXVIA's view), and
// for a multi-objective agent the two objectives with the Pareto set highlighted.
//
// The view is fetched only when the selected campaign's observation count changes (the stream says
// when); the server computes it once per count and caches it.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { api } from "./api.js";
import { $, fill, fmt, h } from "./dom.js";

let shownKey = null; // "campaign:observations" of the view on screen (or being fetched)
const plots = [];

/** Fetch and draw the model of `summary` (a campaign summary) if it changed since the last call. */
export async function renderModel(summary) {
  const panel = $("#model");
  if (!summary || summary.agent !== "bayes") {
    shownKey = null;
    panel.dataset.state = "none";
    fill(panel, h("p", { class: "muted" }, summary ? `the ${summary.agent} agent has no model` : "no campaign"));
    fill($("#pareto"));
    return;
  }
  const key = `${summary.campaign_id}:${summary.observations}`;
  if (key === shownKey) return;
  shownKey = key;
  if (summary.observations < 2) { // the server would say 409: no model before two successes
    panel.dataset.state = "waiting";
    fill(panel, h("p", { class: "muted" }, `no model yet: it needs 2 successful observations (${summary.observations} made)`));
    fill($("#pareto"));
    return;
  }
  panel.dataset.state = "loading";
  let view;
  try {
    view = await api(`/api/campaigns/${summary.campaign_id}/model`);
  } catch (e) {
    if (shownKey !== key) return;
    panel.dataset.state = e.status === 409 ? "waiting" : "error";
    fill(panel, h("p", { class: e.status === 409 ? "muted" : "error" }, e.message));
    fill($("#pareto"));
    return;
  }
  if (shownKey !== key) return; // the selection moved on meanwhile
  drawSlices(panel, view);
  drawPareto(view.pareto);
}

function drawSlices(panel, view) {
  for (const p of plots.splice(0)) p.destroy();
  const objective = view.objective;
  const inc = view.incumbent;
  const unit = objective.name.endsWith("_t") ? " T" : "";
  const acqName = view.acquisition ? `${view.acquisition.name}${view.acquisition.log ? " (log)" : ""}` : null;
  const grid = h("div", { class: "slices" });
  fill(panel,
    h("p", { class: "hint" },
      `${objective.name} (${objective.direction}) predicted along each axis through the incumbent `,
      h("b", {}, `${inc.id}: ${fmt(inc.value, 3)}${unit}`), inc.feasible ? "" : " (no feasible observation yet: best observed)",
      ` · ${view.successes} successes, ${view.failures} failed, ${view.pending} pending · fitted at ${view.observations} observations`,
      view.held.length ? ` · held by the route: ${view.held.map((a) => `${a.name} = ${fmt(a.value, 2)}`).join(", ")}` : ""),
    grid,
    h("p", { class: "hint" }, "blue: posterior mean ± σ (latent, noise left out)",
      acqName ? `; orange: ${acqName}, right axis` : "", "; dashed: the incumbent's value of the axis"));
  panel.dataset.state = "shown";
  panel.dataset.axes = String(view.axes.length);
  panel.dataset.observations = String(view.observations);
  for (const axis of view.axes) {
    const el = h("div", { class: "slice", "data-axis": axis.name });
    grid.append(el);
    const lower = axis.mean.map((m, i) => (m === null || axis.sd[i] === null ? null : m - axis.sd[i]));
    const upper = axis.mean.map((m, i) => (m === null || axis.sd[i] === null ? null : m + axis.sd[i]));
    const series = [
      { label: axis.name },
      { label: "mean", stroke: "#2456a6", width: 2 },
      { label: "−σ", stroke: "#2456a666", width: 1 },
      { label: "+σ", stroke: "#2456a666", width: 1 },
    ];
    const data = [axis.x, axis.mean, lower, upper];
    if (axis.acquisition) {
      series.push({ label: "acq", stroke: "#c46a00", width: 1, scale: "acq" });
      data.push(axis.acquisition);
    }
    const incumbentLine = (u) => {
      const x = u.valToPos(axis.incumbent_x, "x", true);
      const { top, height } = u.bbox;
      u.ctx.save();
      u.ctx.strokeStyle = "#1d2330";
      u.ctx.setLineDash([4, 3]);
      u.ctx.beginPath();
      u.ctx.moveTo(x, top);
      u.ctx.lineTo(x, top + height);
      u.ctx.stroke();
      u.ctx.restore();
    };
    plots.push(new uPlot({
      width: 260, height: 170, title: axis.name.replace(/_/g, " "), legend: { show: false }, cursor: { show: false },
      scales: { x: { time: false, distr: axis.log_scale ? 3 : 1 }, acq: { auto: true } },
      axes: [{ size: 30 }, { size: 44 }, ...(axis.acquisition ? [{ scale: "acq", side: 1, size: 36, grid: { show: false } }] : [])],
      series,
      bands: [{ series: [3, 2], fill: "#2456a622" }],
      hooks: { draw: [incumbentLine] },
    }, data, el));
  }
}

/** Both objectives of every measured design, the non-dominated feasible ones highlighted. */
export function drawPareto(pareto) {
  const el = $("#pareto");
  if (!pareto) {
    fill(el);
    el.hidden = true;
    return;
  }
  el.hidden = false;
  const [a, b] = pareto.objectives;
  const W = 420, H = 260, left = 50, right = 12, top = 12, bottom = 36;
  const xs = pareto.points.map((p) => p[a.name]), ys = pareto.points.map((p) => p[b.name]);
  const span = (v) => { const lo = Math.min(...v), hi = Math.max(...v); return [lo, hi > lo ? hi : lo + 1]; };
  const [x0, x1] = span(xs), [y0, y1] = span(ys);
  const X = (v) => left + ((v - x0) / (x1 - x0)) * (W - left - right);
  const Y = (v) => H - bottom - ((v - y0) / (y1 - y0)) * (H - top - bottom);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const add = (tag, attrs, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  add("line", { x1: left, x2: W - right, y1: H - bottom, y2: H - bottom, stroke: "#333" });
  add("line", { x1: left, x2: left, y1: top, y2: H - bottom, stroke: "#333" });
  add("text", { x: (left + W - right) / 2, y: H - 6, "text-anchor": "middle" }, `${a.name} (${a.direction})`);
  add("text", { x: 12, y: (top + H - bottom) / 2, transform: `rotate(-90 12 ${(top + H - bottom) / 2})`, "text-anchor": "middle" }, `${b.name} (${b.direction})`);
  for (const [v, x] of [[x0, X(x0)], [x1, X(x1)]]) add("text", { x, y: H - bottom + 12, "text-anchor": "middle", "font-size": 9 }, fmt(v, 2));
  for (const [v, y] of [[y0, Y(y0)], [y1, Y(y1)]]) add("text", { x: left - 4, y, "text-anchor": "end", "font-size": 9 }, fmt(v, 2));
  const front = pareto.points.filter((p) => p.front).sort((p, q) => p[a.name] - q[a.name]);
  if (front.length > 1) {
    add("polyline", { points: front.map((p) => `${X(p[a.name])},${Y(p[b.name])}`).join(" "), fill: "none", stroke: "#1f7a3f", "stroke-width": 1.5 });
  }
  for (const p of pareto.points) {
    const fillColour = p.front ? "#1f7a3f" : p.feasible ? "#9aa3b5" : "#fff";
    const dot = add("circle", { cx: X(p[a.name]), cy: Y(p[b.name]), r: p.front ? 5 : 3.5, fill: fillColour,
      stroke: p.feasible ? "#1d2330" : "#b3261e", "data-front": String(p.front) });
    dot.append(Object.assign(document.createElementNS(ns, "title"),
      { textContent: `${p.id}: ${a.name} ${fmt(p[a.name], 3)}, ${b.name} ${fmt(p[b.name], 3)}${p.front ? " (Pareto)" : ""}${p.feasible ? "" : " (infeasible)"}` }));
  }
  svg.dataset.front = String(front.length);
  fill(el, h("h3", {}, "Pareto front"), svg,
    h("p", { class: "hint" }, "green: non-dominated among the feasible designs; grey: dominated; red ring: infeasible"));
}
