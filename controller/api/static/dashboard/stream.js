// The event stream: /api/stream through EventSource, resumed by event id, with a stale watch.
//
// EventSource cannot send headers: a stream token is fetched with the API key first. EventSource's own
// reconnects send Last-Event-ID; when the token has expired (the server answers 401 and EventSource
// gives up) a new token is fetched and a new EventSource opened with ?last_event_id=, so nothing is lost
// either way. A `snapshot` event replaces the whole state; any other numbered event replaces one topic.

import { api } from "./api.js";

const TYPES = ["snapshot", "status", "devices", "queue", "history", "campaigns", "observations", "approvals",
  "audit", "analysis", "agents", "heartbeat"];

export class EventStream {
  /** onEvent(type, data, id) for every event; onHealth("connecting"|"live"|"stale") when that changes. */
  constructor(onEvent, onHealth) {
    this.onEvent = onEvent;
    this.onHealth = onHealth;
    this.lastId = null;
    this.lastMessageAt = 0;
    this.heartbeatS = 2;
    this.serverOffsetS = 0; // the server's clock − this browser's (from snapshots and heartbeats)
    this.counts = { snapshots: 0, events: 0, gaps: 0, opens: 0, errors: 0 };
    this.health = null;
    this.source = null;
    this.stopped = false;
    this.watch = setInterval(() => this.checkStale(), 500);
  }

  async open() {
    this.stopped = false;
    this.setHealth("connecting");
    const { token } = await api("/api/stream/token");
    const params = new URLSearchParams({ token });
    if (this.lastId !== null) params.set("last_event_id", String(this.lastId));
    const source = new EventSource(`/api/stream?${params}`);
    this.source = source;
    source.onopen = () => { this.counts.opens += 1; };
    source.onerror = () => {
      this.counts.errors += 1;
      if (source.readyState === EventSource.CLOSED && !this.stopped && this.source === source) {
        setTimeout(() => this.open().catch(() => this.retryLater()), 500);
      }
    };
    for (const type of TYPES) source.addEventListener(type, (e) => this.receive(type, e));
  }

  retryLater() {
    if (!this.stopped) setTimeout(() => this.open().catch(() => this.retryLater()), 2000);
  }

  receive(type, e) {
    this.lastMessageAt = performance.now();
    const data = JSON.parse(e.data);
    if (type === "heartbeat" || type === "snapshot") this.serverOffsetS = data.server_time_s - Date.now() / 1000;
    if (type === "heartbeat") {
      this.setHealth("live");
      return;
    }
    const id = e.lastEventId ? Number(e.lastEventId) : null;
    if (type === "snapshot") {
      this.counts.snapshots += 1;
      this.heartbeatS = data.heartbeat_s || this.heartbeatS;
    } else {
      this.counts.events += 1;
      if (this.lastId !== null && id !== this.lastId + 1) this.counts.gaps += 1;
    }
    if (id !== null) this.lastId = id;
    this.setHealth("live");
    this.onEvent(type, data, id);
  }

  checkStale() {
    if (this.health === "live" && performance.now() - this.lastMessageAt > 3000 * this.heartbeatS) {
      this.setHealth("stale");
    }
  }

  setHealth(health) {
    if (health !== this.health) {
      this.health = health;
      this.onHealth(health);
    }
  }

  /** Close the stream (the id is kept, so `open()` resumes from it). */
  close() {
    this.stopped = true;
    if (this.source) this.source.close();
    this.source = null;
  }
}
