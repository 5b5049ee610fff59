// Alerts: the conditions of the Prometheus rules (deploy/prometheus/alerts.yml), plus worker and analysis
// agents down, as *this page* derives them from the stream. Not Prometheus's alerts: a condition counts
// from when this page first saw it (or from the server's own time where the stream carries one), and
// is "pending" until it has held for the rule's `for:` duration, then "firing" — as Prometheus would.

import { $, clock, fill, fmt, h } from "./dom.js";

const MIN = 60, HOUR = 3600;
const STALL_S = 24 * HOUR; // alerts.yml: no experiment finished for 24 h
const RESTART_WINDOW_S = 15 * MIN, RESTART_LOOP = 3; // increase(grainloop_worker_restarts_total[15m]) >= 3

const firstSeen = new Map(); // condition key → epoch seconds this page first saw it
let restartSamples = []; // [epoch s, worker_restarts] as the stream reported them

/** Remember the worker's restart count (the restart-loop rule looks at its increase over 15 min). */
export function noteStatus(status) {
  if (!status) return;
  const now = Date.now() / 1000;
  restartSamples.push([now, status.worker_restarts ?? 0]);
  restartSamples = restartSamples.filter(([t]) => now - t <= RESTART_WINDOW_S);
}

/** Every condition that holds now: {key, rule, severity, forS, text, sinceS (server time, optional)}. */
function conditions(t, limits, health, nowS) {
  const out = [];
  const add = (key, rule, severity, forS, text, sinceS) => out.push({ key, rule, severity, forS, text, sinceS });
  if (health === "stale") {
    add("stream", "GrainloopServiceDown", "critical", MIN, "no data from the service (the stream is stale)");
  }
  const s = t.status;
  if (s && !s.worker_up) add("worker-down", "worker down", "critical", 0, `the worker does not answer (pid ${s.worker_pid ?? "—"})`);
  if (s?.suspended) add("suspended", "GrainloopSuspended", "warning", MIN, `a suspender holds the plan: ${s.suspend_reason || "?"}`);
  if (restartSamples.length) {
    const increase = restartSamples[restartSamples.length - 1][1] - Math.min(...restartSamples.map(([, n]) => n));
    if (increase >= RESTART_LOOP) {
      add("restart-loop", "GrainloopWorkerRestartLoop", "critical", 0, `the watchdog replaced the worker ${increase} times in 15 min`);
    }
  }
  const readings = t.devices?.devices || {};
  const furnace = readings.furnace?.furnace_temperature_c?.value;
  const ceiling = limits?.furnace_ceiling_c;
  if (typeof furnace === "number" && typeof ceiling === "number" && furnace > ceiling) {
    add("furnace", "GrainloopFurnaceOverTemperature", "critical", 0, `furnace at ${fmt(furnace, 0)} °C, above its ${ceiling} °C maximum`);
  }
  for (const [name, reading] of Object.entries(readings)) {
    if (reading && reading.error) add(`device:${name}`, "GrainloopDeviceDisconnected", "critical", MIN, `${name} cannot be read: ${reading.error}`);
  }
  for (const c of t.campaigns?.campaigns || []) {
    if (c.status !== "running" && c.status !== "paused") continue;
    const last = c.last_finished_s ?? c.created_s;
    if (typeof last === "number" && nowS - last > STALL_S) {
      add(`stall:${c.campaign_id}`, "GrainloopCampaignStalled", "warning", 15 * MIN,
        `campaign ${c.campaign_id} (${c.status}) finished no experiment since ${new Date(last * 1000).toLocaleString()}`, last + STALL_S);
    }
  }
  for (const [name, agent] of Object.entries(t.agents?.agents || {})) {
    if (!agent.up) add(`agent:${name}`, "analysis agent down", "warning", 0, `the ${name} agent's process is not running (${agent.restarts} restarts)`);
  }
  return out;
}

/** Redraw the alerts panel from the topics; `serverOffsetS` = server clock − this browser's clock. */
export function renderAlerts(topics, limits, health, serverOffsetS = 0) {
  const now = Date.now() / 1000;
  const active = conditions(topics, limits, health, now + serverOffsetS);
  const keys = new Set(active.map((c) => c.key));
  for (const key of [...firstSeen.keys()]) if (!keys.has(key)) firstSeen.delete(key);
  const items = active.map((c) => {
    if (!firstSeen.has(c.key)) firstSeen.set(c.key, c.sinceS !== undefined ? c.sinceS - serverOffsetS : now);
    const since = firstSeen.get(c.key);
    const state = now - since >= c.forS ? "firing" : "pending";
    return h("li", { class: `alert ${c.severity}`, "data-alert": c.rule, "data-state": state },
      h("b", {}, c.rule), ` — ${c.text} `,
      h("span", { class: "muted" }, `· ${state}${state === "pending" ? ` (fires after ${fmt(c.forS / 60, 0)} min)` : ""} · since ${clock(since)}`,
        c.sinceS === undefined ? " (first seen by this page)" : ""));
  });
  const list = $("#alerts");
  list.dataset.count = String(items.length);
  fill(list, items.length ? items : h("li", { class: "muted", id: "no-alerts" }, "no alert conditions in the stream"));
  const agents = Object.entries(topics.agents?.agents || {});
  fill($("#agents-line"), agents.length
    ? agents.map(([name, a]) => h("span", { class: "agent", "data-agent": name, "data-up": String(Boolean(a.up)) },
      `${name} ${a.up ? "up" : "DOWN"} (${a.restarts} restarts)`))
    : h("span", { class: "muted" }, "no analysis agents reported"));
}
