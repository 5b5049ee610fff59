// The dashboard: log in with an API key, follow /api/stream, render every panel from its topic.

import { noteStatus, renderAlerts } from "./alerts.js";
import { api, session } from "./api.js";
import { buildInjectForm, renderApprovals, renderCampaigns, renderObservations, selectedCampaign } from "./campaign.js";
import { act, buildControls, canOperate, renderControls } from "./controls.js";
import { $ } from "./dom.js";
import { renderInstruments } from "./instruments.js";
import { renderModel } from "./model.js";
import { addAnalysis, renderAnalysis, renderAudit } from "./panels.js";
import { renderHistory, renderQueue } from "./queue.js";
import { renderHealth, renderInterlock, renderStatus } from "./status.js";
import { EventStream } from "./stream.js";

const state = { topics: {}, limits: null, role: null, health: "connecting" };
let stream = null;

function observationsOf(campaignId) {
  return state.topics[`observations:${campaignId}`];
}

function selectedSummary() {
  return (state.topics.campaigns?.campaigns || []).find((c) => c.campaign_id === selectedCampaign());
}

function alerts() {
  renderAlerts(state.topics, state.limits, state.health, stream?.serverOffsetS ?? 0);
}

function render(type, campaignId) {
  const t = state.topics;
  switch (type) {
    case "status":
      noteStatus(t.status);
      alerts();
      renderStatus(t.status);
      renderControls(t.status);
      renderQueue(t.queue, t.status, t.devices);
      break;
    case "devices":
      alerts();
      renderInterlock(t.devices);
      renderInstruments(t.devices, state.limits, t.queue?.running_item);
      renderQueue(t.queue, t.status, t.devices);
      break;
    case "queue":
      renderQueue(t.queue, t.status, t.devices);
      break;
    case "history":
      renderHistory(t.history);
      break;
    case "campaigns":
      if (renderCampaigns(t.campaigns)) renderObservations(observationsOf(selectedCampaign()));
      renderModel(selectedSummary());
      alerts();
      break;
    case "agents":
      alerts();
      break;
    case "observations":
      if (campaignId === selectedCampaign()) renderObservations(observationsOf(campaignId));
      break;
    case "approvals":
      renderApprovals(t.approvals, canOperate(state.role), decide);
      break;
    case "audit":
      renderAudit(t.audit);
      break;
    case "analysis":
      renderAnalysis();
      break;
    default:
  }
}

function onEvent(type, data) {
  if (type === "snapshot") {
    state.topics = { ...data.topics };
    state.limits = data.limits;
    for (const a of data.analysis || []) addAnalysis(a);
    for (const t of ["status", "devices", "queue", "history", "campaigns", "approvals", "audit", "analysis", "agents"]) render(t);
  } else if (type === "observations") {
    state.topics[`observations:${data.campaign_id}`] = data;
    render(type, data.campaign_id);
  } else if (type === "analysis") {
    addAnalysis(data);
    render(type);
  } else {
    state.topics[type] = data;
    render(type);
  }
  window.__dashboard.renderedAt[type] = performance.now();
}

/** Approve or reject (body: {recipe, note} to approve an edited recipe); resolves to the result or null. */
async function decide(approvalId, decision, body = {}) {
  const label = `${body.recipe ? "approve edited" : decision} ${approvalId}`;
  return act(label, () => api(`/api/approvals/${approvalId}/${decision}`, { method: "POST", body }));
}

async function inject(recipe) {
  const cid = selectedCampaign();
  if (!cid) return;
  await act(`inject into ${cid}`, () => api(`/api/campaigns/${cid}/recipes`, { method: "POST", body: recipe }));
}

async function start() {
  const who = await api("/api/auth/whoami");
  state.role = who.role;
  document.body.dataset.role = who.role;
  $("#who").textContent = `${who.name} (${who.role})`;
  $("#login").hidden = true;
  $("#dash").hidden = false;
  $("#logout").hidden = false;
  buildControls(who.role, selectedCampaign);
  if (canOperate(who.role)) await buildInjectForm(inject);
  document.addEventListener("campaign-selected", () => {
    renderCampaigns(state.topics.campaigns);
    renderObservations(observationsOf(selectedCampaign()));
    renderModel(selectedSummary());
  });
  stream = new EventStream(onEvent, (health) => {
    state.health = health;
    renderHealth(health);
    alerts();
  });
  setInterval(alerts, 1000); // pending conditions turn firing with time alone
  window.__dashboard.stream = stream;
  await stream.open();
}

function showLogin(message = "") {
  $("#dash").hidden = true;
  $("#login").hidden = false;
  $("#login-error").textContent = message;
}

window.__dashboard = { state, renderedAt: {}, stream: null };

$("#login-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  session.key = $("#login-key").value.trim();
  try {
    await start();
  } catch (err) {
    session.key = null;
    showLogin(err.status === 401 ? "unknown or revoked key" : `cannot log in: ${err.message}`);
  }
});

$("#logout").addEventListener("click", () => {
  if (stream) stream.close();
  session.key = null;
  session.lockKey = null;
  location.reload();
});

if (session.key) {
  start().catch((err) => showLogin(err.status === 401 ? "unknown or revoked key" : String(err.message || err)));
} else {
  showLogin();
}
