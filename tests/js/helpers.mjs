// Shared helpers of the SDK tests: the server the pytest launcher started, and a
// WebSocket wrapper that lets a test drop, repeat or swallow frames on their way in.
import { Backoff, Client } from "../../src/hubbub/web/hubbub.js";

export const WS_URL = process.env.HUBBUB_URL;
export const HTTP_URL = process.env.HUBBUB_HTTP_URL;
export const API_KEY = process.env.HUBBUB_API_KEY;

export async function api(method, path, body) {
  const response = await fetch(`${HTTP_URL}${path}`, {
    method,
    headers: { Authorization: `Bearer ${API_KEY}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(answer)}`);
  return answer;
}

export async function token(user) {
  return (await api("POST", "/api/dev/token", { user })).token;
}

export const publish = (channel, data) => api("POST", "/api/publish", { channel, data });
export const disconnect = (user) => api("POST", `/api/users/${user}/disconnect`, {});

/** A WebSocket class whose incoming frames pass through `filter(frame) -> [frames]`. */
export function filteredSocket(filter) {
  return class FilteredSocket extends globalThis.WebSocket {
    set onmessage(fn) {
      super.onmessage = (msg) => {
        for (const frame of filter(JSON.parse(msg.data))) {
          fn({ data: JSON.stringify(frame) });
        }
      };
    }
  };
}

export function makeClient(tokenOrFn, options = {}) {
  return new Client(WS_URL, {
    token: tokenOrFn,
    backoff: new Backoff(10, 50),
    requestTimeout: 3000,
    ...options,
  });
}

/** Resolves when `predicate()` holds, polling each event-loop turn; rejects after `ms`. */
export function until(predicate, ms = 5000, what = "condition") {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const check = () => {
      let value;
      try {
        value = predicate();
      } catch (err) {
        return reject(err);
      }
      if (value) return resolve(value);
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(check, 5);
    };
    check();
  });
}

/** Collects the `message` events of `channel` as seqs. */
export function seqsOf(client, channel) {
  const seqs = [];
  client.on(channel, (event) => {
    if (event.type === "message") seqs.push(event.seq);
  });
  return seqs;
}

export const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
