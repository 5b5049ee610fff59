// Campaign: objective vs experiment with best-so-far, the recipes explored (parallel coordinates),
// pending approvals with the agent's reasoning (approve / reject / edit), and the recipe injection form.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { api } from "./api.js";
import { $, fill, fmt, h } from "./dom.js";

const OBJECTIVE = "trapped_field_t";
const configs = new Map(); // campaign id → its CampaignConfig (fetched once)
let selected = null;
let userPicked = false;
let objectivePlot = null;

export function selectedCampaign() { return selected; }

function pickDefault(summaries) {
  const live = summaries.find((c) => c.status === "running") || summaries.find((c) => c.status === "paused");
  return (live || summaries[summaries.length - 1] || summaries[0] || {}).campaign_id || null;
}

/** The campaign selector and summary line; returns true when the selection changed. */
export function renderCampaigns(payload) {
  const summaries = payload?.campaigns || [];
  const select = $("#campaign-select");
  const before = selected;
  if (!userPicked || !summaries.some((c) => c.campaign_id === selected)) selected = pickDefault(summaries);
  fill(select, summaries.map((c) =>
    h("option", { value: c.campaign_id, selected: c.campaign_id === selected }, `${c.campaign_id} (${c.status})`)));
  select.onchange = () => { userPicked = true; selected = select.value; select.dispatchEvent(new CustomEvent("campaign-selected", { bubbles: true })); };
  const s = summaries.find((c) => c.campaign_id === selected);
  $("#campaign-summary").textContent = s
    ? `${s.status} · ${s.mode} · ${s.agent} · ${s.observations} done, ${s.in_flight} in flight · best ${fmt(s.best_trapped_field_t, 3)} T`
    : "no campaign";
  $("#campaign-summary").dataset.observations = s ? String(s.observations) : "0";
  return before !== selected;
}

async function config(campaignId) {
  if (!configs.has(campaignId)) {
    configs.set(campaignId, api(`/api/campaigns/${campaignId}/config`).then((r) => r.config).catch(() => ({})));
  }
  return configs.get(campaignId);
}

/** Objective vs experiment and parallel coordinates for the selected campaign's steps. */
export async function renderObservations(payload) {
  if (!payload || payload.campaign_id !== selected) return;
  const cfg = await config(payload.campaign_id);
  const minTc = cfg.min_tc_k ?? null;
  const steps = payload.steps || [];
  const x = [], measured = [], best = [], failed = [];
  let bestSoFar = null;
  for (const s of steps) {
    if (s.status !== "done" && s.status !== "failed") continue;
    const value = s.result?.[OBJECTIVE];
    const feasible = s.status === "done" && value !== undefined && (minTc === null || (s.result.tc_k ?? 0) >= minTc);
    if (feasible && (bestSoFar === null || value > bestSoFar)) bestSoFar = value;
    x.push(s.step);
    measured.push(s.status === "done" ? value ?? null : null);
    failed.push(s.status === "failed" ? 0 : null);
    best.push(bestSoFar);
  }
  const el = $("#objective-plot");
  el.dataset.points = String(x.length);
  if (!objectivePlot) {
    objectivePlot = new uPlot({
      width: Math.max(320, el.clientWidth || 480), height: 220, title: "trapped field (T) by experiment",
      scales: { x: { time: false } },
      axes: [{ incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500] }, {}],
      series: [
        { label: "step" },
        { label: "measured", stroke: "#2456a6", width: 0, points: { show: true, size: 7, fill: "#2456a6" } },
        { label: `best so far${minTc !== null ? ` (Tc ≥ ${minTc} K)` : ""}`, stroke: "#1f7a3f", width: 2, paths: uPlot.paths.stepped({ align: 1 }) },
        { label: "failed", stroke: "#b3261e", width: 0, points: { show: true, size: 7, fill: "#b3261e" } },
      ],
    }, [[], [], [], []], el);
    new ResizeObserver(() => objectivePlot.setSize({ width: Math.max(320, el.clientWidth), height: 220 })).observe(el);
  }
  objectivePlot.setData([x, measured, best, failed]);
  renderParcoords(steps, await recipeAxes());
}

// -- parallel coordinates (SVG) ---------------------------------------------------------------------
let schemaPromise = null;
export function recipeSchema() {
  if (!schemaPromise) schemaPromise = api("/api/recipe/schema").catch((e) => { schemaPromise = null; throw e; });
  return schemaPromise;
}

async function recipeAxes() {
  const schema = await recipeSchema();
  return Object.entries(schema.properties).map(([name, p]) =>
    p.enum ? { name, values: p.enum } : { name, min: p.minimum, max: p.maximum });
}

function colour(t) { // 0 → blue, 1 → yellow (a viridis-like ramp)
  const stops = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const f = Math.min(0.9999, Math.max(0, t)) * (stops.length - 1);
  const i = Math.floor(f), w = f - i;
  const c = stops[i].map((v, k) => Math.round(v + w * (stops[i + 1][k] - v)));
  return `rgb(${c.join(",")})`;
}

function renderParcoords(steps, axes) {
  const W = 900, H = 240, top = 28, bottom = 20, left = 30, right = 30;
  const xAt = (i) => left + (i * (W - left - right)) / (axes.length - 1);
  const yAt = (axis, v) => {
    const u = axis.values ? (axis.values.indexOf(v) + 0.5) / axis.values.length : (v - axis.min) / (axis.max - axis.min);
    return H - bottom - u * (H - top - bottom);
  };
  const done = steps.filter((s) => s.recipe);
  const values = done.map((s) => s.result?.[OBJECTIVE]).filter((v) => typeof v === "number");
  const lo = Math.min(...values, 0), hi = Math.max(...values, 1e-9);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  const add = (tag, attrs, text) => {
    const el = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (text !== undefined) el.textContent = text;
    svg.append(el);
    return el;
  };
  done.forEach((s) => {
    const value = s.result?.[OBJECTIVE];
    const points = axes.map((a, i) => `${xAt(i)},${yAt(a, s.recipe[a.name])}`).join(" ");
    const stroke = s.status === "failed" ? "#b3261e" : typeof value === "number" ? colour((value - lo) / (hi - lo)) : "#999";
    const line = add("polyline", { points, fill: "none", stroke, "stroke-width": 1.4, opacity: 0.75, "data-step": s.step });
    line.append(Object.assign(document.createElementNS(ns, "title"), { textContent: `step ${s.step}: ${s.status} ${fmt(value, 3)} T` }));
  });
  axes.forEach((a, i) => {
    add("line", { x1: xAt(i), x2: xAt(i), y1: top, y2: H - bottom, stroke: "#333" });
    add("text", { x: xAt(i), y: top - 14, "text-anchor": "middle" }, a.name.replace(/_/g, " "));
    if (a.values) a.values.forEach((v) => add("text", { x: xAt(i) + 3, y: yAt(a, v), "font-size": 9 }, v));
    else {
      add("text", { x: xAt(i), y: top - 3, "text-anchor": "middle", "font-size": 9 }, fmt(a.max, 2));
      add("text", { x: xAt(i), y: H - bottom + 12, "text-anchor": "middle", "font-size": 9 }, fmt(a.min, 2));
    }
  });
  svg.dataset.lines = String(done.length);
  fill($("#parcoords"), svg, h("p", { class: "hint" }, "colour: trapped field (blue low → yellow high); red: failed"));
}

// -- approvals ----------------------------------------------------------------------------------------
function reasoningView(reasoning) {
  if (!reasoning || typeof reasoning !== "object") return h("span", { class: "muted" }, "no reasoning given");
  const flat = [];
  const walk = (prefix, value) => {
    if (value && typeof value === "object" && !Array.isArray(value)) {
      for (const [k, v] of Object.entries(value)) walk(prefix ? `${prefix}.${k}` : k, v);
    } else flat.push([prefix, Array.isArray(value) ? JSON.stringify(value) : value]);
  };
  walk("", reasoning);
  return h("div", { class: "kv reasoning" }, flat.slice(0, 16).map(([k, v]) => h("div", {}, h("span", {}, `${k} `), h("b", {}, fmt(v, 3)))));
}

const cards = new Map(); // approval id → its card (kept across renders, so an open edit form survives)

/** Pending approvals; operators get approve / reject / edit (approve an edited recipe). */
export function renderApprovals(payload, canDecide, decide) {
  const approvals = payload?.approvals || [];
  const container = $("#approvals");
  const ids = new Set(approvals.map((a) => a.approval_id));
  for (const [id, card] of cards) if (!ids.has(id)) { card.remove(); cards.delete(id); }
  if (!approvals.length) {
    fill(container, h("p", { class: "muted", id: "no-approvals" }, "nothing waiting"));
    return;
  }
  container.querySelector("#no-approvals")?.remove();
  for (const a of approvals) {
    if (!cards.has(a.approval_id)) cards.set(a.approval_id, approvalCard(a, canDecide, decide));
    container.append(cards.get(a.approval_id)); // in the server's order (oldest first)
  }
}

function approvalCard(a, canDecide, decide) {
  const r = a.recipe || {};
  const msg = h("p", { class: "msg", role: "status" });
  const editor = h("form", { class: "edit-form", hidden: true });
  const card = h("div", { class: "approval", "data-approval": a.approval_id },
    h("div", {}, h("b", {}, `${a.campaign_id} step ${a.step}`), " — ",
      `${r.route} · ${fmt(r.dwell_temperature_c, 0)} °C × ${fmt(r.dwell_time_h, 2)} h · ${fmt(r.pressure_mpa, 0)} MPa · `,
      `mill ${fmt(r.mill_rpm, 0)} rpm × ${fmt(r.milling_time_h, 2)} h · K +${fmt(r.k_excess, 3)}`),
    reasoningView(a.reasoning));
  if (!canDecide) return card;
  const report = async (result) => {
    msg.textContent = result ? "" : $("#control-msg").textContent;
    msg.classList.toggle("error", !result);
  };
  card.append(
    h("div", { class: "actions" },
      h("button", { type: "button", class: "primary", "data-decision": "approve", onclick: async () => report(await decide(a.approval_id, "approve")) }, "approve"),
      h("button", { type: "button", "data-decision": "reject", onclick: async () => report(await decide(a.approval_id, "reject")) }, "reject"),
      h("button", { type: "button", "data-decision": "edit", onclick: async () => {
        if (!editor.childElementCount) await buildEditor(editor, a, decide, report);
        editor.hidden = !editor.hidden;
      } }, "edit…")),
    editor, msg);
  return card;
}

async function buildEditor(form, approval, decide, report) {
  const schema = await recipeSchema();
  const prefix = `edit-${approval.approval_id.replace(/[^\w-]/g, "_")}-`;
  const note = h("input", { name: "__note", id: `${prefix}note`, placeholder: "why (kept with the decision)", maxlength: 2000 });
  fill(form, recipeFields(schema, prefix, approval.recipe || {}),
    h("label", { for: `${prefix}note` }, "note"), note,
    h("button", { type: "submit", class: "primary", "data-decision": "approve-edited" }, "approve edited recipe"));
  form.onsubmit = async (e) => {
    e.preventDefault();
    const body = { recipe: readRecipe(form, schema) };
    if (note.value.trim()) body.note = note.value.trim();
    report(await decide(approval.approval_id, "approve", body));
  };
}

/** Label, input and bounds of every Recipe field (from its JSON schema), filled with `values`. */
function recipeFields(schema, prefix, values = {}) {
  return Object.entries(schema.properties).map(([name, p]) => {
    const id = `${prefix}${name}`;
    const value = values[name] ?? (p.enum ? p.enum[0] : ((p.minimum + p.maximum) / 2).toPrecision(3));
    const input = p.enum
      ? h("select", { id, name }, p.enum.map((v) => h("option", { value: v, selected: v === value }, v)))
      : h("input", { id, name, type: "number", step: "any", min: p.minimum, max: p.maximum, required: true, value });
    return [h("label", { for: id, title: p.description || "" }, name), input,
      p.enum ? null : h("span", { class: "bounds" }, `${p.minimum} … ${p.maximum}${p.description ? ` · ${p.description}` : ""}`)];
  });
}

function readRecipe(form, schema) {
  const recipe = {};
  for (const [name, p] of Object.entries(schema.properties)) {
    const raw = form.elements[name].value;
    recipe[name] = p.enum ? raw : Number(raw);
  }
  return recipe;
}

// -- the injection form, generated from the Recipe's JSON schema -------------------------------------------
export async function buildInjectForm(onSubmit) {
  const schema = await recipeSchema();
  const form = $("#inject-form");
  fill(form, recipeFields(schema, "inject-"), h("button", { type: "submit", class: "primary", "data-action": "inject" }, "inject into campaign"));
  form.onsubmit = (e) => {
    e.preventDefault();
    onSubmit(readRecipe(form, schema));
  };
}
