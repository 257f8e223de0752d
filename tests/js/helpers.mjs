// Shared helpers of the SDK tests: the server the pytest launcher started, and a
// WebSocket wrapper that lets a test drop, repeat or swallow frames on their way in.
import { Backoff, Client } from "../../src/hubbub/web/hubbub.js";

export const WS_URL = process.env.HUBBUB_URL;
export const HTTP_URL = process.env.HUBBUB_HTTP_URL;
export const API_KEY = process.env.HUBBUB_API_KEY;
// A second server whose `refresh_warning` is just under the 24 h life of a development
// token: every connection (and every refresh) gets `auth.expiring` within a second.
export const REFRESH_WS_URL = process.env.HUBBUB_REFRESH_URL;
export const REFRESH_HTTP_URL = process.env.HUBBUB_REFRESH_HTTP_URL;

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

let nonce = 0;
/** A development token unlike any issued before: tokens of one user issued within the
 * same second are otherwise equal (`exp` counts whole seconds). */
export async function freshToken(user, httpUrl = HTTP_URL) {
  const response = await fetch(`${httpUrl}/api/dev/token`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user, channels: [`js-nonce-${++nonce}`] }),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(`dev token: ${response.status} ${JSON.stringify(answer)}`);
  return answer.token;
}

export const publish = (channel, data) => api("POST", "/api/publish", { channel, data });
/** Close every connection of `user` from the server (1012 unless `body.code` says). */
export const disconnect = (user, body = {}) => api("POST", `/api/users/${user}/disconnect`, body);

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

export function makeClient(tokenOrFn, options = {}, url = WS_URL) {
  return new Client(url, {
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

/** Records every frame of `client` as it passes: `{in: [...], out: [...]}`. */
export function framesOf(client) {
  const frames = { in: [], out: [] };
  client.on("frame", (e) => frames[e.direction].push(e.frame));
  return frames;
}

/** Drops the live events 2 and 3 of `channel` and every answer to its replay_request. */
export const gapWithNoReplay = (channel) =>
  filteredSocket((frame) => {
    if (frame.channel === channel && frame.type === "message") {
      if (frame.replay) return [];
      if (frame.seq === 2 || frame.seq === 3) return [];
    }
    if (frame.type === "replay_complete" && frame.payload?.channel === channel) return [];
    return [frame];
  });
