// Controls by role: RunEngine pause / resume / stop / abort / halt ("software stop", confirmed), queue
// start / stop, lock / unlock, the selected campaign's pause / resume, and (admin, simulated lab) the
// site interlock. The server enforces every role; this only mirrors it. Observers get no controls.

import { api, session, withLockKey } from "./api.js";
import { $, fill, h } from "./dom.js";

const ROLE_RANK = { observer: 0, operator: 1, admin: 2 };
export const canOperate = (role) => (ROLE_RANK[role] ?? -1) >= 1;
const buttons = {};

function say(text, isError = false) {
  const msg = $("#control-msg");
  msg.textContent = text;
  msg.classList.toggle("error", isError);
}

/** Run a call, report its outcome under the controls; resolves to the result or null. */
export async function act(label, call) {
  try {
    const result = await call();
    say(`${label}: done`);
    return result;
  } catch (e) {
    say(`${label}: ${e.status ? `${e.status} ` : ""}${e.message}`, true);
    return null;
  }
}

function confirmDialog(text) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
  });
}

function button(action, label, onclick, cls) {
  const b = h("button", { type: "button", "data-action": action, class: cls, onclick }, label);
  buttons[action] = b;
  return b;
}

export function buildControls(role, getCampaign) {
  if (!canOperate(role)) {
    fill($("#controls"));
    $("#readonly-note").hidden = false;
    $("#inject-col").hidden = true;
    return;
  }
  const re = (what, body) => act(`RE ${what}`, () => api(`/api/re/${what}`, { method: "POST", body: withLockKey(body) }));
  const lockKeyInput = h("input", { id: "lock-key", placeholder: "lock key", value: session.lockKey || "", "aria-label": "lock key" });
  const lockNote = h("input", { id: "lock-note", placeholder: "note", "aria-label": "lock note" });
  const campaignAction = (what) => {
    const cid = getCampaign();
    if (!cid) return say("no campaign selected", true);
    return act(`campaign ${what}`, () => api(`/api/campaigns/${cid}/${what}`, { method: "POST" }));
  };
  const groups = [
    h("div", { class: "group" }, h("span", {}, "RunEngine"),
      button("pause-deferred", "pause (deferred)", () => re("pause", { option: "deferred" })),
      button("pause-immediate", "pause (immediate)", () => re("pause", { option: "immediate" })),
      button("resume", "resume", () => re("resume")),
      button("stop", "stop", () => re("stop")),
      button("abort", "abort", () => re("abort")),
      button("halt", "software stop", async () => {
        const ok = await confirmDialog(
          "Software stop (RunEngine halt): the plan ends at once, without its cleanup. It is not the hardware " +
          "emergency stop — instruments keep their last commands. Halt now?");
        if (ok) await re("halt");
      }, "danger")),
    h("div", { class: "group" }, h("span", {}, "Queue"),
      button("queue-start", "start", () => act("queue start", () => api("/api/queue/start", { method: "POST", body: withLockKey() }))),
      button("queue-stop", "stop after item", () => act("queue stop", () => api("/api/queue/stop", { method: "POST", body: withLockKey() })))),
    h("div", { class: "group" }, h("span", {}, "Lock"), lockKeyInput, lockNote,
      button("lock", "lock", () => {
        const key = lockKeyInput.value || crypto.randomUUID().slice(0, 8);
        lockKeyInput.value = key;
        return act("lock", async () => {
          const r = await api("/api/lock", { method: "POST", body: { environment: true, queue: true, lock_key: key, note: lockNote.value || null } });
          session.lockKey = key;
          return r;
        });
      }),
      button("unlock", "unlock", () => act("unlock", async () => {
        const r = await api("/api/unlock", { method: "POST", body: { lock_key: lockKeyInput.value || session.lockKey || null } });
        session.lockKey = null;
        return r;
      }))),
    h("div", { class: "group" }, h("span", {}, "Campaign"),
      button("campaign-pause", "pause", () => campaignAction("pause")),
      button("campaign-resume", "resume", () => campaignAction("resume")),
      button("campaign-stop", "stop", () => campaignAction("stop"))),
  ];
  if (role === "admin") {
    const interlock = (tripped) => act(`interlock ${tripped ? "trip" : "reset"}`,
      () => api("/api/sim/interlock", { method: "POST", body: { tripped } }));
    groups.push(h("div", { class: "group" }, h("span", {}, "Simulated lab"),
      button("interlock-trip", "trip interlock", () => interlock(true)),
      button("interlock-reset", "reset interlock", () => interlock(false))));
  }
  fill($("#controls"), groups);
}

/** Enable what the RunEngine's state allows (the server refuses the rest anyway). */
export function renderControls(status) {
  if (!status || !buttons.resume) return;
  const re = status.re_state;
  const running = re === "running";
  const paused = re === "paused";
  buttons["pause-deferred"].disabled = !running;
  buttons["pause-immediate"].disabled = !running;
  for (const what of ["resume", "stop", "abort", "halt"]) buttons[what].disabled = !paused;
  buttons["queue-start"].disabled = status.queue_running || !status.worker_up;
  buttons["queue-stop"].disabled = !status.queue_running;
  buttons.lock.disabled = Boolean(status.locked_by);
  buttons.unlock.disabled = !status.locked_by;
}
