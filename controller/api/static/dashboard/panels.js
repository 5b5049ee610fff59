// The latest sample's analysis (from `analysis` events, when an analysis agent publishes them) and the
// audit log.

import { session } from "./api.js";
import { $, clock, fill, fmt, h } from "./dom.js";

const latestBySample = new Map(); // sample id → {analysis name → event}
let latestSample = null;
const imageUrls = new Map(); // API path → object URL (images need the API key, so they are fetched)

async function authorisedImage(path) {
  if (!imageUrls.has(path)) {
    imageUrls.set(path, fetch(path, { headers: { Authorization: `ApiKey ${session.key}` } })
      .then((r) => (r.ok ? r.blob() : Promise.reject(new Error(r.statusText))))
      .then((blob) => URL.createObjectURL(blob)));
  }
  return imageUrls.get(path);
}

export function addAnalysis(event) {
  if (!event) return;
  const sample = event.sample_id || event.parent_uid || "unknown";
  if (!latestBySample.has(sample)) latestBySample.set(sample, {});
  latestBySample.get(sample)[event.analysis || event.agent || "analysis"] = event;
  latestSample = sample;
}

export function renderAnalysis() {
  const container = $("#analysis");
  if (!latestSample) return;
  const analyses = Object.values(latestBySample.get(latestSample));
  fill(container,
    h("p", {}, h("b", { id: "analysis-sample" }, latestSample), " ",
      h("span", { class: "muted" }, analyses[0]?.campaign_id || "")),
    analyses.map((a) => h("div", { class: "analysis", "data-analysis": a.analysis },
      h("h3", {}, `${a.analysis || a.agent} — ${a.exit_status || ""} `,
        h("span", { class: "muted" }, a.latency_s !== undefined ? `(${fmt(a.latency_s, 2)} s after the data)` : "")),
      h("div", { class: "images" }, Object.entries(a.images || {}).map(([name, path]) => {
        const img = h("img", { alt: name, title: name, "data-image": name });
        authorisedImage(path).then((url) => { img.src = url; }).catch(() => { img.alt = `${name}: not available`; });
        return img;
      })),
      a.exit_status && a.exit_status !== "success" && a.reason ? h("p", { class: "error" }, a.reason) : null,
      h("div", { class: "kv" }, orderedResults(a.data).slice(0, 24).map(([k, v]) =>
        h("div", { "data-key": k }, h("span", {}, `${k} `), h("b", {}, Array.isArray(v) ? `[${v.length} values]` : typeof v === "object" ? JSON.stringify(v) : fmt(v, 3))))))));
}

const FIRST = /grain_(count|size)|critical_deg|low_angle|porosity|texture|indexed/; // what an operator looks for first

/** An analysis's flat results, the grain-size and misorientation numbers first. */
function orderedResults(data) {
  const entries = Object.entries(data || {});
  return [...entries.filter(([k]) => FIRST.test(k)), ...entries.filter(([k]) => !FIRST.test(k))];
}

export function renderAudit(payload) {
  const entries = payload?.entries || [];
  fill($("#audit-table tbody"), entries.map((e) =>
    h("tr", {}, h("td", {}, clock(e.time_s)), h("td", {}, `${e.principal}${e.role ? ` (${e.role})` : ""}`),
      h("td", {}, e.action), h("td", { class: e.outcome?.startsWith("2") ? "" : "error" }, e.outcome))));
}

