// Queue and history: the running item with its stage and elapsed time, the queue, recent results.

import { $, describeItem, fill, fmt, h } from "./dom.js";

const STAGES = [["mill", "mill_state"], ["furnace", "furnace_state"], ["stem", "stem_state"], ["properties", "properties_state"]];

/** Which instrument of a make_sample is busy now (from the readbacks). */
function stage(devices) {
  for (const [device, key] of STAGES) {
    const state = devices?.[device]?.[key]?.value;
    if (state && state !== "idle" && state !== "done") return `${device}: ${state}`;
  }
  return null;
}

export function renderQueue(queue, status, devices) {
  if (!queue) return;
  const running = queue.running_item;
  if (running) {
    const elapsed = running.started_s ? Math.max(0, Date.now() / 1000 - running.started_s) : null;
    const where = running.name === "make_sample" ? stage(devices?.devices) : null;
    fill($("#running"), h("p", { id: "running-item" },
      h("b", {}, "running: "), `${running.name} ${describeItem(running)} `,
      h("span", { class: "muted" }, `${elapsed === null ? "" : `${fmt(elapsed, 0)} s`}${where ? ` · ${where}` : ""}`),
      status?.suspended ? h("b", { class: "error" }, " — held by a suspender") : null));
  } else {
    fill($("#running"), h("p", { id: "running-item", class: "muted" }, "nothing running"));
  }
  fill($("#queue-table tbody"), (queue.items || []).map((item, i) =>
    h("tr", {}, h("td", {}, i + 1), h("td", {}, item.name), h("td", {}, describeItem(item)), h("td", {}, item.user || ""))));
}

export function renderHistory(history) {
  if (!history) return;
  const rows = [...(history.items || [])].reverse().map((entry) => {
    const r = entry.result || {};
    const seconds = r.time_stop && r.time_start ? r.time_stop - r.time_start : null;
    return h("tr", { "data-exit": r.exit_status },
      h("td", {}, entry.name), h("td", {}, describeItem(entry)),
      h("td", { class: `exit-${r.exit_status}` }, r.exit_status || "—"),
      h("td", { class: "num" }, fmt(seconds, 1)), h("td", {}, (r.msg || "").slice(0, 120)));
  });
  fill($("#history-table tbody"), rows);
}
