// The REST side: the API key (kept in this tab's sessionStorage) and authenticated calls.

const KEY = "grainloop.apiKey";
const LOCK_KEY = "grainloop.lockKey";

export const session = {
  get key() { return sessionStorage.getItem(KEY); },
  set key(value) { value ? sessionStorage.setItem(KEY, value) : sessionStorage.removeItem(KEY); },
  get lockKey() { return sessionStorage.getItem(LOCK_KEY); },
  set lockKey(value) { value ? sessionStorage.setItem(LOCK_KEY, value) : sessionStorage.removeItem(LOCK_KEY); },
};

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.detail = detail;
  }
}

/** Call the API with the session's key; resolves to the JSON body, rejects with ApiError. */
export async function api(path, { method = "GET", body, key = session.key } = {}) {
  const headers = { Authorization: `ApiKey ${key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!response.ok) throw new ApiError(response.status, (data && data.detail) || text || response.statusText);
  return data;
}

/** A body for calls that a lock may guard: carries the lock key this tab locked with, if any. */
export function withLockKey(body = {}) {
  return session.lockKey ? { ...body, lock_key: session.lockKey } : body;
}
