// Instruments: the furnace's setpoint vs readback as a live trace with its limits, and every readback.

import uPlot from "../vendor/uplot/uPlot.esm.js";
import { $, fill, fmt, h } from "./dom.js";

const WINDOW_POINTS = 600;
const trace = { t: [], temperature: [], setpoint: [], ceiling: [], route: [] };
let plot = null;
let lastTimestamp = null;

function value(devices, device, key) {
  const reading = devices?.[device]?.[key];
  return reading ? reading.value : undefined;
}

function ensurePlot() {
  if (plot) return plot;
  const el = $("#furnace-plot");
  const opts = {
    width: Math.max(320, el.clientWidth || 480),
    height: 220,
    title: "furnace °C",
    scales: { x: { time: true } },
    series: [
      {},
      { label: "readback", stroke: "#b3261e", width: 2 },
      { label: "setpoint", stroke: "#2456a6", width: 1.5, dash: [6, 4] },
      { label: "ceiling (suspender)", stroke: "#000", width: 1, dash: [2, 3] },
      { label: "route limit", stroke: "#a86400", width: 1, dash: [2, 3] },
    ],
  };
  plot = new uPlot(opts, [[], [], [], [], []], el);
  new ResizeObserver(() => plot.setSize({ width: Math.max(320, el.clientWidth), height: 220 })).observe(el);
  return plot;
}

/** Append the furnace's latest reading to the trace (once per new device timestamp). */
export function renderInstruments(payload, limits, runningItem) {
  const devices = payload?.devices || {};
  const stamp = devices.furnace?.furnace_temperature_c?.timestamp;
  const route = runningItem?.kwargs?.recipe?.route;
  if (stamp && stamp !== lastTimestamp) {
    lastTimestamp = stamp;
    trace.t.push(stamp);
    trace.temperature.push(value(devices, "furnace", "furnace_temperature_c"));
    trace.setpoint.push(value(devices, "furnace", "furnace_setpoint_c"));
    trace.ceiling.push(limits?.furnace_ceiling_c ?? null);
    trace.route.push(route && limits?.furnace_max_c ? limits.furnace_max_c[route] : null);
    for (const series of Object.values(trace)) if (series.length > WINDOW_POINTS) series.shift();
    ensurePlot().setData([trace.t, trace.temperature, trace.setpoint, trace.ceiling, trace.route]);
  }
  renderReadbacks(devices, payload?.relays, limits);
}

function kv(label, text, attrs = {}) {
  return h("div", attrs, h("span", {}, `${label} `), h("b", {}, text));
}

function renderReadbacks(devices, relays, limits) {
  const furnace = (k) => value(devices, "furnace", `furnace_${k}`);
  const mill = (k) => value(devices, "mill", `mill_${k}`);
  const stem = (k) => value(devices, "stem", `stem_${k}`);
  const props = (k) => value(devices, "properties", `properties_${k}`);
  let locations = {};
  try { locations = JSON.parse(value(devices, "store", "store_locations") || "{}"); } catch { locations = {}; }
  const errors = Object.entries(devices).filter(([, r]) => r && r.error).map(([name, r]) => `${name}: ${r.error}`);
  fill(
    $("#instruments"),
    h("div", { class: "instrument", id: "inst-furnace" }, h("h4", {}, "Furnace ", h("span", { class: "state" }, fmt(furnace("state")))),
      h("div", { class: "kv" },
        kv("readback", `${fmt(furnace("temperature_c"), 1)} °C`, { id: "furnace-temperature" }),
        kv("setpoint", `${fmt(furnace("setpoint_c"), 1)} °C`),
        kv("heater", `${fmt(furnace("heater_power_pct"), 0)} %`),
        kv("pressure", `${fmt(furnace("pressure_mpa"), 1)} MPa`),
        kv("thermocouple", furnace("thermocouple_ok") === false ? "BROKEN" : "ok"),
        kv("interlock", furnace("interlock") || "—"),
        kv("ceiling", `${fmt(limits?.furnace_ceiling_c, 0)} °C`))),
    h("div", { class: "instrument", id: "inst-mill" }, h("h4", {}, "Mill ", h("span", { class: "state" }, fmt(mill("state")))),
      h("div", { class: "kv" },
        kv("speed", `${fmt(mill("speed_rpm"), 0)} rpm`, { id: "mill-speed" }),
        kv("vial", `${fmt(mill("vial_temperature_c"), 1)} °C (limit ${fmt(limits?.mill_vial_max_c, 0)})`),
        kv("elapsed", `${fmt((mill("elapsed_s") || 0) / 3600, 2)} h`))),
    h("div", { class: "instrument", id: "inst-stem" }, h("h4", {}, "STEM ", h("span", { class: "state" }, fmt(stem("state")))),
      h("div", { class: "kv" }, kv("beam", stem("beam_blanked") ? "blanked" : "ON"), kv("SPED row", fmt(stem("sped_row"))))),
    h("div", { class: "instrument", id: "inst-properties" }, h("h4", {}, "Property station"),
      h("div", { class: "kv" },
        kv("trapped field", `${fmt(props("trapped_field_t"), 3)} T`),
        kv("Tc", `${fmt(props("tc_k"), 1)} K`),
        kv("Jc", `${fmt(props("jc_a_per_cm2"), 0)} A/cm²`),
        kv("density", fmt(props("relative_density"), 3)))),
    h("div", { class: "instrument", id: "inst-store" }, h("h4", {}, "Samples"),
      h("div", { class: "kv" },
        Object.keys(locations).length
          ? Object.entries(locations).slice(-8).map(([sample, where]) => kv(sample, String(where)))
          : kv("store", "empty"),
        kv("relays", relays ? (relays.armed ? "armed" : `CUT: ${relays.reason || ""}`) : "—"))),
    errors.length ? h("p", { class: "error" }, errors.join("; ")) : null,
  );
}
