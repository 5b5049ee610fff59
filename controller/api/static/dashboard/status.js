// The status banner: manager / RE / worker, SUSPENDED with its reason, interlock, LOCKED by whom.

import { $ } from "./dom.js";

function setState(el, text) {
  el.textContent = text ?? "—";
  el.dataset.state = text ?? "";
}

export function renderStatus(status) {
  if (!status) return;
  setState($("#st-manager"), status.manager_state);
  // RE.state reads "running" while a suspender holds the plan: the SUSPENDED badge tells the truth
  setState($("#st-re"), status.suspended ? `${status.re_state} (suspended)` : status.re_state);
  setState($("#st-worker"), status.worker_up ? "up" : "down");
  $("#st-worker").title = `pid ${status.worker_pid ?? "—"}, ${status.worker_restarts ?? 0} restarts`;
  const suspended = $("#st-suspended");
  suspended.hidden = !status.suspended;
  suspended.textContent = status.suspended ? `SUSPENDED: ${status.suspend_reason || "a suspender holds the plan"}` : "";
  const lock = $("#st-lock");
  const locked = Boolean(status.locked_by);
  const parts = Object.entries(status.lock || {}).filter(([, v]) => v).map(([k]) => k);
  lock.dataset.locked = String(locked);
  lock.textContent = locked ? `LOCKED (${parts.join(" + ")}) by ${status.locked_by}` : "unlocked";
  lock.title = status.lock_note || "";
  $("#st-queue").textContent =
    `queue ${status.items_in_queue ?? 0}${status.queue_running ? " ▶ running" : ""}${status.queue_stop_pending ? " (stop pending)" : ""}`;
}

/** The site interlock from the device readings (it trips with or without a plan to suspend). */
export function renderInterlock(devices) {
  const reading = devices && devices.devices && devices.devices.interlock && devices.devices.interlock.interlock;
  const tripped = Boolean(reading && reading.value);
  const badge = $("#st-interlock");
  badge.hidden = !tripped;
  badge.textContent = tripped ? "INTERLOCK TRIPPED" : "";
}

export function renderHealth(health) {
  const badge = $("#st-stream");
  badge.dataset.stream = health;
  badge.textContent = { connecting: "connecting…", live: "live", stale: "STALE — no data" }[health] || health;
}
