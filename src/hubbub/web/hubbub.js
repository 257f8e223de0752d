// hubbub.js: the browser (and Node) client of a Hubbub server's /ws endpoint.
// One ES module, no build step, no dependencies. It gives the Python SDK's guarantees
// (docs/client.md): every sequenced event of a channel exactly once and in order, or an
// event that says what was lost.
//
//   import { Client } from "/static/hubbub.js";
//   const client = new Client("ws://127.0.0.1:8000/ws", { token: fetchToken });
//   client.on("message", (event) => console.log(event.channel, event.seq, event.data));
//   await client.connect();
//   await client.subscribe("news");

const FINAL_CLOSES = new Set([1000, 4003]);
const STABLE_AFTER_MS = 5000;

/** The root of every error this module throws. */
export class HubbubError extends Error {
  constructor(message) {
    super(message);
    this.name = this.constructor.name;
  }
}
/** The server answered a request with `error {code, message, channel?}`. */
export class RequestError extends HubbubError {
  constructor(code, message, channel = null) {
    super(`${code}: ${message || ""}`);
    this.code = code;
    this.serverMessage = message || "";
    this.channel = channel;
  }
}
/** No answer came within the request's timeout. */
export class RequestTimeout extends HubbubError {}
/** A request was made while no connection was up. */
export class NotConnected extends HubbubError {}
/** The connection ended before the answer came; the server may or may not have acted. */
export class ConnectionLost extends HubbubError {}
/** `close()` was called. */
export class ClientClosed extends HubbubError {}
/** More publishes wait for a connection than `offlineQueueSize`. */
export class OfflineQueueFull extends HubbubError {}
/** The first connection attempt failed (`code` is the close code, 0 when none). */
export class ConnectFailed extends HubbubError {
  constructor(message, code = 0) {
    super(message);
    this.code = code;
  }
}

/** Exponential backoff with full jitter: a random delay in [0, min(cap, base * 2**failures)]. */
export class Backoff {
  constructor(base = 200, cap = 10000, random = Math.random) {
    this.base = base;
    this.cap = cap;
    this.random = random;
  }
  compute(failures) {
    return this.random() * Math.min(this.cap, this.base * 2 ** failures);
  }
}

/** What the client knows of one channel: its position and any gap being filled. */
/** Handlers by event kind, shared by `Client` and `Chat`. */
/** What Client and Chat share: event listeners, and timers cancelled together on close. */
class Emitter {
  constructor() {
    this._listeners = new Map();
    this._timers = new Set();
  }

  /** Call `fn(event)` for each event of `kind`; returns a function that removes it. */
  on(kind, fn) {
    if (!this._listeners.has(kind)) this._listeners.set(kind, new Set());
    this._listeners.get(kind).add(fn);
    return () => this._listeners.get(kind)?.delete(fn);
  }

  _emit(kind, event) {
    for (const fn of this._listeners.get(kind) ?? []) {
      try {
        fn(event);
      } catch (err) {
        console.error("hubbub handler failed", err);
      }
    }
  }

  /** Run `fn` after `ms` unless `_cancelTimers` comes first. */
  _later(ms, fn) {
    const t = setTimeout(() => {
      this._timers.delete(t);
      fn();
    }, ms);
    this._timers.add(t);
    return t;
  }

  _clearLater(t) {
    if (t) {
      clearTimeout(t);
      this._timers.delete(t);
    }
  }

  _cancelTimers() {
    for (const t of this._timers) clearTimeout(t);
    this._timers.clear();
  }
}

class ChannelState {
  constructor(name) {
    this.name = name;
    this.seq = null; // of the last event handed to the application
    this.epoch = null;
    this.wanted = false; // the application subscribed (the user channel is always wanted)
    this.pending = false; // a (re)subscription is in flight: its live events are ignored
    this.gap = null; // {from, to, timer} while a replay_request is out
    this.held = []; // live events that arrived during a gap, in arrival order
  }
}

/**
 * A connection to a Hubbub server that reconnects by itself.
 *
 * Events (`client.on(kind, fn)`, returns a function that removes `fn`):
 * `message` (every event from the server, after dedup and gap filling), `state`
 * ({state}: idle, connecting, connected, reconnecting, closed), `connected`
 * ({userId, connectionId, reconnect}), `disconnected` ({code, reason, reconnecting}),
 * `reset` ({channel, epoch, seq, lastValue}: recovered:false, reload that channel),
 * `recoveryfailed` ({channel, fromSeq, toSeq}), `subscriptionerror` ({channel, code,
 * message}), `servererror` ({code, message, channel}), `frame` ({direction, frame}: every
 * frame as it passes, for consoles).
 */
export class Client extends Emitter {
  constructor(url, options = {}) {
    super();
    this.url = url;
    this.token = options.token ?? null;
    this.backoff = options.backoff ?? new Backoff();
    this.requestTimeout = options.requestTimeout ?? 10000;
    this.connectTimeout = options.connectTimeout ?? 10000;
    this.heartbeat = options.heartbeat ?? 20000;
    this.offlineQueueSize = options.offlineQueueSize ?? 1000;
    this.maxHeldEvents = options.maxHeldEvents ?? 10000;
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.state = "idle";
    this.userId = null;
    this.connectionId = null;
    this.reconnects = 0;
    this._channels = new Map();
    this._requests = new Map();
    this._offline = [];
    this._nextId = 1;
    this._ws = null;
    this._ready = false; // welcomed and every channel resubscribed
    this._failures = 0;
    this._closed = true;
    this._everConnected = false;
    this._lastToken = null;
  }

  // -- events ---------------------------------------------------------------------------


  _setState(state) {
    if (this.state === state) return;
    this.state = state;
    this._emit("state", { state });
  }

  // -- connecting -----------------------------------------------------------------------

  /** Connect; resolves once welcomed and every channel is subscribed. */
  connect() {
    this._closed = false;
    return new Promise((resolve, reject) => {
      this._firstAttempt = { resolve, reject };
      this._attempt();
    });
  }

  /** Close with 1000 and stop for good. */
  close() {
    this._closed = true;
    this._cancelTimers();
    const ws = this._ws;
    this._ws = null;
    if (ws && ws.readyState <= 1) ws.close(1000, "client closing");
    this._failAll(new ClientClosed("client closed"));
    for (const item of this._offline.splice(0)) item.reject(new ClientClosed("client closed"));
    this._ready = false;
    this._setState("closed");
    this._emit("disconnected", { code: 1000, reason: "client closing", reconnecting: false });
  }

  /** The last `{seq, epoch}` handed to the application for `channel`, or null. */
  position(channel) {
    const ch = this._channels.get(channel);
    return ch && ch.seq !== null ? { seq: ch.seq, epoch: ch.epoch } : null;
  }

  get connected() {
    return this._ready;
  }

  async _getToken() {
    if (typeof this.token === "function") return await this.token();
    return this.token;
  }

  async _attempt() {
    if (this._closed) return;
    this._setState(this._everConnected ? "reconnecting" : "connecting");
    let token;
    try {
      token = await this._getToken();
    } catch (err) {
      return this._attemptFailed(4001, `token: ${err}`);
    }
    if (this._closed) return;
    this._lastToken = token;
    const sep = this.url.includes("?") ? "&" : "?";
    const url = token ? `${this.url}${sep}token=${encodeURIComponent(token)}` : this.url;
    let ws;
    try {
      ws = new this.WebSocket(url);
    } catch (err) {
      return this._attemptFailed(0, String(err));
    }
    this._ws = ws;
    this._openedAt = Date.now();
    const connectTimer = this._later(this.connectTimeout, () => {
      if (this._ws === ws && !this._ready) ws.close(4000, "connect timeout");
    });
    ws.onmessage = (msg) => {
      if (this._ws !== ws) return;
      let frame;
      try {
        frame = JSON.parse(msg.data);
      } catch {
        return;
      }
      this._emit("frame", { direction: "in", frame });
      this._onFrame(frame, connectTimer);
    };
    ws.onclose = (ev) => {
      this._clearLater(connectTimer);
      if (this._ws !== ws) return;
      this._ws = null;
      this._onClose(ev.code || 1006, ev.reason || "");
    };
    ws.onerror = () => {};
  }

  _send(frame) {
    if (!this._ws || this._ws.readyState !== 1) throw new NotConnected("not connected");
    this._ws.send(JSON.stringify(frame));
    this._emit("frame", { direction: "out", frame });
  }

  _onClose(code, reason) {
    const wasReady = this._ready;
    this._ready = false;
    this._clearLater(this._pingTimer);
    this._clearLater(this._pongTimer);
    for (const ch of this._channels.values()) this._clearGap(ch);
    this._failAll(new ConnectionLost(`connection closed (${code})`));
    if (this._closed) return;
    if (!this._everConnected) return this._attemptFailed(code, reason);
    if (Date.now() - this._openedAt >= STABLE_AFTER_MS) this._failures = 0;
    let reconnecting = !FINAL_CLOSES.has(code);
    if (code === 4001) {
      reconnecting = typeof this.token === "function";
    }
    this._emit("disconnected", { code, reason, reconnecting, wasConnected: wasReady });
    if (!reconnecting) return this._stop(code, reason);
    this._scheduleReconnect(code === 4001);
  }

  _stop(code, reason) {
    this._closed = true;
    for (const item of this._offline.splice(0)) {
      item.reject(new ConnectFailed(`closed for good: ${code} ${reason}`, code));
    }
    this._setState("closed");
  }

  _attemptFailed(code, reason) {
    const first = this._firstAttempt;
    this._firstAttempt = null;
    this._ws = null;
    this._closed = true;
    this._setState("idle");
    first?.reject(new ConnectFailed(`could not connect: ${code} ${reason}`, code));
  }

  _scheduleReconnect(authFailed) {
    this._setState("reconnecting");
    const delay = this.backoff.compute(this._failures);
    this._failures += 1;
    this._later(delay, async () => {
      if (this._closed) return;
      if (authFailed) {
        let token;
        try {
          token = await this._getToken();
        } catch {
          token = this._lastToken;
        }
        if (token === this._lastToken) return this._stop(4001, "token refused");
      }
      this._attempt();
    });
  }

  async _onWelcome(frame) {
    const reconnect = this._everConnected;
    this._everConnected = true;
    this.userId = frame.payload.userId;
    this.connectionId = frame.payload.connectionId;
    const userChannel = this._channel(`user:${this.userId}`);
    userChannel.wanted = true;
    const wanted = [...this._channels.values()].filter((ch) => ch.wanted);
    // The server subscribes the user channel by itself; a known position must be resumed.
    const resume = wanted.filter((ch) => ch !== userChannel || ch.seq !== null);
    if (reconnect) this.reconnects += 1;
    this._startHeartbeat();
    try {
      if (resume.length) await this._subscribeNow(resume.map((ch) => ch.name), true);
    } catch (err) {
      if (!(err instanceof RequestError)) {
        // A resume that gets no answer: drop the connection and recover on the next one.
        if (this._ws) this._ws.close(4000, "resume failed");
        return;
      }
    }
    this._ready = true;
    this._setState("connected");
    this._emit("connected", { userId: this.userId, connectionId: this.connectionId, reconnect });
    const first = this._firstAttempt;
    this._firstAttempt = null;
    first?.resolve();
    this._flushOffline();
  }

  _startHeartbeat() {
    const beat = () => {
      this._pingTimer = this._later(this.heartbeat, () => {
        this.request("ping", {}, { timeout: this.heartbeat }).then(beat, (err) => {
          if (err instanceof RequestTimeout && this._ws) this._ws.close(4002, "no pong");
        });
      });
    };
    beat();
  }

  // -- frames ---------------------------------------------------------------------------

  _onFrame(frame, connectTimer) {
    const type = frame.type;
    if (type === "welcome") {
      this._clearLater(connectTimer);
      this._onWelcome(frame);
      return;
    }
    if (type === "auth.expiring" && typeof this.token === "function") {
      this._getToken().then(
        (token) => {
          this._lastToken = token;
          this.request("auth.refresh", { token }).catch(() => {});
        },
        // No new token now: the server closes with 4001 at expiry and reconnecting asks again.
        () => {},
      );
      return;
    }
    if (frame.re !== undefined && frame.re !== null && this._requests.has(frame.re)) {
      this._onAnswer(frame);
      return;
    }
    if (type === "subscribed") {
      // The automatic subscription of the user channel (protocol 16.2).
      const ch = this._channel(frame.payload.channel);
      if (!ch.pending && ch.seq === null) {
        ch.seq = frame.payload.seq;
        ch.epoch = frame.payload.epoch;
      }
      return;
    }
    if (type === "replay_complete") {
      this._onReplayComplete(frame.payload);
      return;
    }
    if (type === "error") {
      const p = frame.payload || {};
      this._emit("servererror", { code: p.code, message: p.message, channel: p.channel ?? null });
      return;
    }
    if (frame.channel && typeof frame.seq === "number") {
      this._onSequenced(frame);
      return;
    }
    this._deliver(frame);
  }

  _deliver(frame) {
    const event = {
      type: frame.type,
      channel: frame.channel ?? null,
      seq: frame.seq ?? null,
      ts: frame.ts ?? null,
      payload: frame.payload ?? {},
      data: frame.payload?.data,
    };
    this._emit("message", event);
    if (event.channel) this._emit(event.channel, event);
  }

  _onSequenced(frame) {
    const ch = this._channel(frame.channel);
    if (ch.pending) return; // the (re)subscription's replay carries it (protocol 16.3)
    if (frame.replay) {
      if (ch.seq === null || frame.seq === ch.seq + 1) this._accept(ch, frame);
      return;
    }
    if (ch.gap) {
      if (ch.held.length >= this.maxHeldEvents) {
        this._giveUpGap(ch);
        this._onSequenced(frame);
        return;
      }
      ch.held.push(frame);
      return;
    }
    if (ch.seq === null || frame.seq === ch.seq + 1 || (frame.conflated && frame.seq > ch.seq)) {
      this._accept(ch, frame);
      return;
    }
    if (frame.seq <= ch.seq) return; // already delivered
    this._startGap(ch, ch.seq + 1, frame.seq - 1);
    ch.held.push(frame);
  }

  _accept(ch, frame) {
    ch.seq = frame.seq;
    this._deliver(frame);
  }

  _startGap(ch, from, to) {
    const id = this._id();
    ch.gap = { from, to, id, timer: null };
    ch.gap.timer = this._later(this.requestTimeout, () => {
      // No answer: reconnect, which resumes with `since` (docs/client.md).
      if (ch.gap && ch.gap.id === id && this._ws) this._ws.close(4000, "replay timeout");
    });
    try {
      this._send({
        type: "replay_request",
        id,
        payload: { channel: ch.name, fromSequence: from, toSequence: to },
      });
    } catch {
      // Not connected: the reconnect's resume fills the gap.
    }
  }

  _onReplayComplete(p) {
    const ch = this._channels.get(p.channel);
    if (!ch || !ch.gap) return;
    if (ch.seq !== null && ch.seq < p.toSequence) {
      this._emit("recoveryfailed", { channel: ch.name, fromSeq: ch.seq + 1, toSeq: p.toSequence });
      ch.seq = p.toSequence;
    }
    this._endGap(ch);
  }

  _giveUpGap(ch) {
    // Lost: only what lies before the first event already in hand.
    const to = Math.min(...ch.held.map((frame) => frame.seq)) - 1;
    if (ch.seq < to) {
      this._emit("recoveryfailed", { channel: ch.name, fromSeq: ch.seq + 1, toSeq: to });
      ch.seq = to;
    }
    this._endGap(ch);
  }

  _endGap(ch) {
    this._clearGap(ch);
    const held = ch.held.splice(0);
    for (const frame of held) this._onSequenced(frame);
  }

  _clearGap(ch) {
    if (ch.gap) this._clearLater(ch.gap.timer);
    ch.gap = null;
    if (!this._ready) ch.held = [];
  }

  _channel(name) {
    let ch = this._channels.get(name);
    if (!ch) {
      ch = new ChannelState(name);
      this._channels.set(name, ch);
    }
    return ch;
  }

  // -- requests -------------------------------------------------------------------------

  _id() {
    return String(this._nextId++);
  }

  /** Send `{type, id, payload}`; resolves with the answer's payload (matched by `re`). */
  request(type, payload = {}, { timeout } = {}) {
    return this._request(type, payload, timeout ?? this.requestTimeout, null);
  }

  _request(type, payload, timeout, expect) {
    return new Promise((resolve, reject) => {
      const id = this._id();
      try {
        this._send({ type, id, payload });
      } catch (err) {
        reject(err);
        return;
      }
      const timer = this._later(timeout, () => {
        this._requests.delete(id);
        reject(new RequestTimeout(`${type}: no answer within ${timeout} ms`));
      });
      this._requests.set(id, { resolve, reject, timer, expect, answers: [] });
    });
  }

  _onAnswer(frame) {
    const pending = this._requests.get(frame.re);
    const p = frame.payload ?? {};
    if (pending.expect) {
      // One answer per channel (subscribe): `subscribed` or `error` with `channel`.
      if (frame.type === "error" && !p.channel) return this._finish(frame.re, frame);
      pending.answers.push(frame);
      pending.expect.onAnswer(frame);
      pending.expect.channels.delete(p.channel);
      if (pending.expect.channels.size === 0) this._finish(frame.re, null);
      return;
    }
    this._finish(frame.re, frame);
  }

  _finish(id, frame) {
    const pending = this._requests.get(id);
    this._requests.delete(id);
    this._clearLater(pending.timer);
    if (frame && frame.type === "error") {
      const p = frame.payload ?? {};
      pending.reject(new RequestError(p.code, p.message, p.channel ?? null));
    } else {
      pending.resolve(frame ? (frame.payload ?? {}) : pending.answers);
    }
  }

  _failAll(err) {
    for (const [id, pending] of this._requests) {
      this._clearLater(pending.timer);
      pending.reject(err);
      this._requests.delete(id);
    }
  }

  // -- channels -------------------------------------------------------------------------

  /**
   * Subscribe `channels`; resolves with `{channel: {seq, epoch, recovered, lastValue}}`.
   * While disconnected, remembers them (subscribed on the next connection) and resolves `{}`.
   */
  async subscribe(...channels) {
    for (const name of channels) this._channel(name).wanted = true;
    if (!this._ready) return {};
    return this._subscribeNow(channels, false);
  }

  async _subscribeNow(names, resuming) {
    const since = {};
    for (const name of names) {
      const ch = this._channel(name);
      ch.pending = true;
      this._clearGap(ch);
      ch.held = [];
      if (ch.seq !== null && ch.epoch !== null) since[name] = { seq: ch.seq, epoch: ch.epoch };
    }
    const payload = { channels: names };
    if (Object.keys(since).length) payload.since = since;
    // Each channel's answer is applied as it arrives: its replay follows it at once.
    const onAnswer = (frame) => {
      const p = frame.payload;
      const ch = this._channel(p.channel);
      ch.pending = false;
      if (frame.type === "error") {
        ch.wanted = false;
        if (resuming) {
          this._emit("subscriptionerror", { channel: p.channel, code: p.code, message: p.message });
        }
        return;
      }
      this._onSubscribed(ch, p, since[p.channel] !== undefined);
    };
    let answers;
    try {
      answers = await this._request("subscribe", payload, this.requestTimeout, {
        channels: new Set(names),
        onAnswer,
      });
    } finally {
      for (const name of names) this._channel(name).pending = false;
    }
    const result = {};
    let refused = null;
    for (const frame of answers) {
      const p = frame.payload;
      if (frame.type === "error") {
        refused = refused ?? new RequestError(p.code, p.message, p.channel);
        continue;
      }
      result[p.channel] = {
        seq: p.seq,
        epoch: p.epoch,
        recovered: p.recovered,
        lastValue: p.lastValue ?? null,
      };
    }
    if (refused && !resuming) throw refused;
    return result;
  }

  _onSubscribed(ch, p, hadPosition) {
    if (hadPosition && p.recovered) return; // the missed events follow, in order
    if (hadPosition) {
      this._emit("reset", {
        channel: ch.name,
        epoch: p.epoch,
        seq: p.seq,
        lastValue: p.lastValue ?? null,
      });
    }
    ch.seq = p.seq;
    ch.epoch = p.epoch;
  }

  /** Stop `channels`; events already in flight are dropped. */
  async unsubscribe(...channels) {
    for (const name of channels) {
      const ch = this._channel(name);
      this._clearGap(ch);
      this._channels.delete(name);
    }
    if (!this._ready) return;
    await this.request("unsubscribe", { channels });
  }

  // -- publishing -----------------------------------------------------------------------

  /** Publish `data` on `channel`; resolves with its `seq`. Waits in the offline queue while
   * disconnected (rejects at once with OfflineQueueFull past `offlineQueueSize`). */
  publish(channel, data) {
    if (this._closed && this.state === "closed") {
      return Promise.reject(new ClientClosed("client closed"));
    }
    if (this._ready && this._offline.length === 0) return this._publishNow(channel, data);
    if (this._offline.length >= this.offlineQueueSize) {
      return Promise.reject(new OfflineQueueFull(`${this._offline.length} publishes waiting`));
    }
    return new Promise((resolve, reject) => {
      this._offline.push({ channel, data, resolve, reject });
    });
  }

  async _publishNow(channel, data) {
    const answer = await this.request("publish", { channel, data });
    return answer.seq;
  }

  _flushOffline() {
    while (this._ready && this._offline.length) {
      const item = this._offline.shift();
      this._publishNow(item.channel, item.data).then(item.resolve, item.reject);
    }
  }

  // -- helpers --------------------------------------------------------------------------

  /** `history {channel, fromSequence?, toSequence?, limit?}`: `{channel, epoch, seq, events}`. */
  history(channel, { fromSequence, toSequence, limit } = {}) {
    const payload = { channel };
    if (fromSequence !== undefined) payload.fromSequence = fromSequence;
    if (toSequence !== undefined) payload.toSequence = toSequence;
    if (limit !== undefined) payload.limit = limit;
    return this.request("history", payload);
  }

  /** Who is present on `channel`: `[{userId, status, connections}]`. */
  async presence(channel) {
    const answer = await this.request("presence.get", { channel });
    return answer.members;
  }

  /** Set this user's status (`online`, `away`, `busy`, ...). */
  async setStatus(status) {
    await this.request("presence.update", { status });
  }

  /** Round trip to the server; resolves with the server time in ms. */
  async ping() {
    const answer = await this.request("ping", {});
    return answer.serverTime;
  }
}

/** A development token from a loopback server (`POST /api/dev/token`). */
export async function devToken(baseUrl, user, claims = {}) {
  const response = await fetch(`${baseUrl}/api/dev/token`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user, ...claims }),
  });
  if (!response.ok) throw new HubbubError(`dev token: HTTP ${response.status}`);
  return (await response.json()).token;
}

/** The `/ws` URL of the page's own server. */
export function pageUrl(path = "/ws") {
  const proto = globalThis.location.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${globalThis.location.host}${path}`;
}

// == Chat (PROTOCOL.md section 12, docs/protocol.md 16.12) ==================================
//
//   const chat = new Chat(client);              // on a Client, before or after connect()
//   chat.on("new_message", (m) => show(m));     // once per serverMessageId
//   const { serverMessageId } = await chat.sendMessage(conversationId, "hi");

const TYPING_REFRESH_MS = 3000; // one typing_start per conversation this often while typing
const TYPING_SHOWN_MS = 6000; // the server ends typing 5 s after the last start; a lost stop ends here
const SEEN_MESSAGES = 10000; // serverMessageIds remembered for dedup
const RETRY_LATER = new Set(["unavailable", "rate_limited"]);
const enc = encodeURIComponent;

/** An HTTP call of the chat API failed: `status`, and `code` and `message` from the server. */
export class HttpError extends RequestError {
  constructor(status, code, message) {
    super(code, message);
    this.status = status;
  }
}

/** A random UUID; pages served over plain HTTP from another host have no `randomUUID`. */
function randomId() {
  const c = globalThis.crypto;
  if (typeof c.randomUUID === "function") return c.randomUUID();
  const b = c.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The HTTP base of the server whose `/ws` is `wsUrl` (a mounted prefix is kept). */
function httpBase(wsUrl) {
  const url = new URL(wsUrl);
  url.protocol = url.protocol === "wss:" ? "https:" : "http:";
  return `${url.origin}${url.pathname.replace(/\/ws\/?$/, "")}`;
}

/**
 * Chat on a `Client`: sending with retries that cannot duplicate, typing, read receipts,
 * presence of the people one shares a conversation with, and the `/api/conversations` calls.
 *
 * Events (`chat.on(kind, fn)`, returns a function that removes `fn`), each with the
 * server's payload: `new_message` (once per serverMessageId, also when history already
 * had it), `message_delivered`, `user_typing` ({conversationId, userId, isTyping}; a
 * start not refreshed ends by itself with `expired: true`), `message_read`,
 * `unread_count`, `conversation_created`, `member_added`, `member_removed`,
 * `user_online`, `user_offline`, and `reset` (the user channel could not be recovered:
 * reload conversations and history).
 */
export class Chat extends Emitter {
  constructor(client, options = {}) {
    super();
    this.client = client;
    this.httpUrl = options.httpUrl ?? httpBase(client.url);
    this.now = options.now ?? (() => Date.now());
    this._fetch = options.fetch ?? ((url, init) => globalThis.fetch(url, init));
    this._outbox = new Map(); // clientMessageId -> {payload, promise, resolve, reject, ...}
    this._seen = new Set(); // serverMessageIds already handed out, oldest first
    this._typingSent = new Map(); // conversationId -> when this user's last typing_start went
    this._typing = new Map(); // conversationId -> Map(userId -> timer ending their typing)
    this._read = new Map(); // conversationId -> this user's read position
    this._presence = new Map(); // userId -> {online, status?, lastSeen?}
    this._off = [
      client.on("message", (event) => this._onEvent(event)),
      client.on("connected", () => this._flush()),
      client.on("reset", (event) => {
        if (event.channel === `user:${client.userId}`) this._emit("reset", event);
      }),
      client.on("state", ({ state }) => {
        if (state === "closed") this._fail(new ClientClosed("client closed"));
      }),
    ];
  }

  /** Compare two message ids (decimal strings): negative, zero or positive. */
  static compareIds(a, b) {
    const x = String(a);
    const y = String(b);
    return x.length - y.length || (x < y ? -1 : x > y ? 1 : 0);
  }


  /** Stop listening to the client; messages still waiting are rejected with ClientClosed. */
  close() {
    for (const off of this._off.splice(0)) off();
    this._fail(new ClientClosed("chat closed"));
  }

  _fail(err) {
    for (const item of [...this._outbox.values()]) {
      this._outbox.delete(item.payload.clientMessageId);
      item.reject(err);
    }
    this._cancelTimers();
    for (const users of this._typing.values()) for (const t of users.values()) clearTimeout(t);
    this._typing.clear();
  }

  // -- sending ----------------------------------------------------------------------------

  /**
   * Send a message; resolves with `chat.message_delivered` ({clientMessageId,
   * serverMessageId, conversationId, timestamp, duplicate}) once it is stored. Until then
   * the same clientMessageId is sent again after every reconnect (the server stores it
   * once). Rejects on a refusal (RequestError: forbidden, bad_request, not_found, conflict).
   */
  sendMessage(conversationId, content, { replyTo, attachments, clientMessageId } = {}) {
    const id = clientMessageId ?? randomId();
    const waiting = this._outbox.get(id);
    if (waiting) return waiting.promise;
    const payload = { conversationId, clientMessageId: id, content };
    if (replyTo !== undefined && replyTo !== null) payload.replyTo = replyTo;
    if (attachments?.length) {
      payload.attachments = attachments.map((a) => (typeof a === "string" ? a : a.attachmentId));
    }
    // The server ends this user's typing when the message is stored: the next key restarts it.
    this._typingSent.delete(conversationId);
    const item = { payload, sending: false, attempts: 0 };
    item.promise = new Promise((resolve, reject) => {
      item.resolve = resolve;
      item.reject = reject;
    });
    this._outbox.set(id, item);
    this._trySend(item);
    return item.promise;
  }

  /** Messages given to `sendMessage` and not yet stored, oldest first. */
  get pending() {
    return [...this._outbox.values()].map((item) => ({ ...item.payload }));
  }

  _flush() {
    for (const item of this._outbox.values()) this._trySend(item);
  }

  _trySend(item) {
    if (item.sending || !this.client.connected) return; // `connected` sends it again
    const id = item.payload.clientMessageId;
    item.sending = true;
    item.attempts += 1;
    this.client.request("chat.send_message", item.payload).then(
      (answer) => {
        item.sending = false;
        if (!this._outbox.delete(id)) return;
        this._emit("message_delivered", answer);
        item.resolve(answer);
      },
      (err) => {
        item.sending = false;
        if (!this._outbox.has(id)) return;
        if (err instanceof ClientClosed) return; // `state: closed` rejects it
        if (err instanceof RequestError && !RETRY_LATER.has(err.code)) {
          this._outbox.delete(id);
          item.reject(err);
          return;
        }
        if (err instanceof RequestError) {
          this._later(this.client.backoff.compute(item.attempts), () => this._trySend(item));
          return;
        }
        // Lost or timed out: the answer may have been lost after the server stored it;
        // the same id again gets the stored message. A reconnect's `connected` resends it.
        if (this.client.connected) this._trySend(item);
      },
    );
  }

  // -- typing and reading -----------------------------------------------------------------

  /** This user is typing in `conversationId`: call on every key; sends `chat.typing_start`
   * at most once per 3 s. Returns whether a frame went out. */
  typingStart(conversationId) {
    const last = this._typingSent.get(conversationId);
    const now = this.now();
    if (last !== undefined && now - last < TYPING_REFRESH_MS) return false;
    if (!this._fire("chat.typing_start", { conversationId })) return false;
    this._typingSent.set(conversationId, now);
    return true;
  }

  /** This user stopped typing (cleared the box, left): sends `chat.typing_stop` if a start
   * went out. Returns whether a frame went out. */
  typingStop(conversationId) {
    if (!this._typingSent.has(conversationId)) return false;
    this._typingSent.delete(conversationId);
    return this._fire("chat.typing_stop", { conversationId });
  }

  /** Who is typing in `conversationId` now (other users). */
  typingUsers(conversationId) {
    return [...(this._typing.get(conversationId)?.keys() ?? [])];
  }

  _fire(type, payload) {
    // Typing is ephemeral and answered only on error (`servererror`): no request id.
    if (!this.client.connected) return false;
    try {
      this.client._send({ type, payload });
      return true;
    } catch {
      return false;
    }
  }

  /**
   * Mark `conversationId` read up to and including `messageId`; resolves with
   * `{conversationId, messageId, unread}`, or null when the position is already there
   * (nothing is sent). Over the WebSocket when connected, otherwise over HTTP.
   */
  async markRead(conversationId, messageId) {
    const held = this._read.get(conversationId);
    if (held !== undefined && Chat.compareIds(messageId, held) <= 0) return null;
    this._read.set(conversationId, messageId);
    const payload = { conversationId, messageId };
    try {
      if (this.client.connected) {
        try {
          return await this.client.request("chat.mark_read", payload);
        } catch (err) {
          if (err instanceof RequestError) throw err;
        }
      }
      return await this._http("POST", `/api/conversations/${enc(conversationId)}/read`, {
        body: { messageId },
      });
    } catch (err) {
      if (this._read.get(conversationId) === messageId) {
        if (held === undefined) this._read.delete(conversationId);
        else this._read.set(conversationId, held);
      }
      throw err;
    }
  }

  /** This user's read position in `conversationId` as far as this client knows, or null. */
  readPosition(conversationId) {
    return this._read.get(conversationId) ?? null;
  }

  _noteRead(conversationId, messageId) {
    const held = this._read.get(conversationId);
    if (messageId && (held === undefined || Chat.compareIds(messageId, held) > 0)) {
      this._read.set(conversationId, messageId);
    }
  }

  /** Whether `userId` is online as far as this client knows (events and `presence`), or
   * null when unknown. */
  isOnline(userId) {
    return this._presence.get(userId)?.online ?? null;
  }

  // -- events -----------------------------------------------------------------------------

  _onEvent(event) {
    if (event.channel !== `user:${this.client.userId}`) return;
    const p = event.payload;
    switch (event.type) {
      case "chat.new_message":
        if (this._see(p.serverMessageId)) this._emit("new_message", p);
        return;
      case "chat.user_typing":
        this._onTyping(p);
        return;
      case "chat.message_read":
        if (p.userId === this.client.userId) this._noteRead(p.conversationId, p.messageId);
        this._emit("message_read", p);
        return;
      case "chat.unread_count":
      case "chat.conversation_created":
      case "chat.member_added":
      case "chat.member_removed":
        this._emit(event.type.slice("chat.".length), p);
        return;
      case "presence.user_online":
        this._presence.set(p.userId, { online: true, status: p.status });
        this._emit("user_online", p);
        return;
      case "presence.user_offline":
        this._presence.set(p.userId, { online: false, lastSeen: p.lastSeen });
        this._emit("user_offline", p);
        return;
    }
  }

  /** True the first time `serverMessageId` is seen. */
  _see(serverMessageId) {
    if (this._seen.has(serverMessageId)) return false;
    this._seen.add(serverMessageId);
    if (this._seen.size > SEEN_MESSAGES) this._seen.delete(this._seen.values().next().value);
    return true;
  }

  _onTyping(p) {
    let users = this._typing.get(p.conversationId);
    const timer = users?.get(p.userId);
    this._clearLater(timer);
    if (p.isTyping) {
      if (!users) this._typing.set(p.conversationId, (users = new Map()));
      const end = { ...p, isTyping: false, expired: true };
      users.set(p.userId, this._later(TYPING_SHOWN_MS, () => this._onTyping(end)));
    } else if (users) {
      users.delete(p.userId);
      if (users.size === 0) this._typing.delete(p.conversationId);
    }
    this._emit("user_typing", p);
  }

  // -- HTTP -------------------------------------------------------------------------------

  async _http(method, path, { body, raw, query, contentType } = {}) {
    let url = `${this.httpUrl}${path}`;
    if (query) {
      const given = Object.entries(query).filter(([, v]) => v !== undefined && v !== null);
      const qs = new URLSearchParams(given.map(([k, v]) => [k, String(v)])).toString();
      if (qs) url += `?${qs}`;
    }
    const headers = {};
    let payload;
    if (raw !== undefined) {
      payload = raw;
      headers["Content-Type"] = contentType;
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers["Content-Type"] = "application/json";
    }
    const call = async (token) => {
      if (token) headers.Authorization = `Bearer ${token}`;
      return this._fetch(url, { method, headers, body: payload });
    };
    // The token of the live connection; a fresh one when that one has expired.
    let response = await call(this.client._lastToken ?? (await this.client._getToken()));
    if (response.status === 401 && typeof this.client.token === "function") {
      response = await call(await this.client._getToken());
    }
    if (!response.ok) {
      let error = {};
      try {
        error = (await response.json()).error ?? {};
      } catch {
        // not JSON: the status says enough
      }
      throw new HttpError(response.status, error.code ?? `http_${response.status}`, error.message);
    }
    return response;
  }

  async _json(method, path, options) {
    return (await this._http(method, path, options)).json();
  }

  /** This user's conversations, most recently active first: `[{conversationId, kind,
   * title, members, unread, lastReadId, lastMessage, createdAt}]`. */
  async conversations() {
    const answer = await this._json("GET", "/api/conversations");
    for (const c of answer.conversations) this._noteRead(c.conversationId, c.lastReadId);
    return answer.conversations;
  }

  /** One conversation as `conversations()` lists it. */
  async conversation(conversationId) {
    const c = await this._json("GET", `/api/conversations/${enc(conversationId)}`);
    this._noteRead(c.conversationId, c.lastReadId);
    return c;
  }

  /** Make a conversation of this user and `members` (two people and no title: the one
   * direct conversation of the pair); resolves with its id. */
  async createConversation(members, title) {
    const body = { members };
    if (title) body.title = title;
    return (await this._json("POST", "/api/conversations", { body })).conversationId;
  }

  /** A page of messages, oldest first: `{messages, next}`. No cursor: the newest page;
   * `before: next` pages back, `after: next` catches up. Messages seen here do not come
   * again as `new_message`. */
  async history(conversationId, { before, after, limit } = {}) {
    const answer = await this._json("GET", `/api/conversations/${enc(conversationId)}/messages`, {
      query: { before, after, limit },
    });
    for (const m of answer.messages) this._see(m.serverMessageId);
    return { messages: answer.messages, next: answer.next ?? null };
  }

  /** Messages of the conversation holding every word of `q`, newest first. */
  async search(conversationId, q) {
    const path = `/api/conversations/${enc(conversationId)}/search`;
    return (await this._json("GET", path, { query: { q } })).messages;
  }

  /** Upload a file (a File, Blob, ArrayBuffer or typed array) to the conversation;
   * resolves with `{attachmentId, name, contentType, size}` for `sendMessage`. */
  async upload(conversationId, file, { name, contentType } = {}) {
    const path = `/api/conversations/${enc(conversationId)}/attachments`;
    return this._json("POST", path, {
      query: { name: name ?? file.name ?? "file" },
      raw: file,
      contentType: contentType || file.type || "application/octet-stream",
    });
  }

  /** The bytes of an attachment as a Blob (downloads need the Authorization header). */
  async download(conversationId, attachmentId) {
    const path = `/api/conversations/${enc(conversationId)}/attachments/${enc(attachmentId)}`;
    return (await this._http("GET", path)).blob();
  }

  /** Who of the conversation is online: `[{userId, online}]` (also kept for `isOnline`). */
  async presence(conversationId) {
    const path = `/api/conversations/${enc(conversationId)}/presence`;
    const answer = await this._json("GET", path);
    for (const m of answer.members) {
      if (m.userId !== this.client.userId) {
        this._presence.set(m.userId, { ...this._presence.get(m.userId), online: m.online });
      }
    }
    return answer.members;
  }

  /** Add `userId` to a group conversation; resolves with the members. */
  async addMember(conversationId, userId) {
    const path = `/api/conversations/${enc(conversationId)}/members`;
    return (await this._json("POST", path, { body: { userId } })).members;
  }

  /** Remove `userId` (this user: leave); resolves with the members left. */
  async removeMember(conversationId, userId) {
    const path = `/api/conversations/${enc(conversationId)}/members/${enc(userId)}`;
    return (await this._json("DELETE", path)).members;
  }
}
