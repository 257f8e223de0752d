// hubbub.js against a real server: token refresh, the final closes (4001, 4003) and the
// bound on events held during a gap (started by tests/js/test_node_sdk.py).
import assert from "node:assert/strict";
import { test } from "node:test";

import { ClientClosed } from "../../src/hubbub/web/hubbub.js";
import {
  REFRESH_HTTP_URL,
  REFRESH_WS_URL,
  disconnect,
  framesOf,
  freshToken,
  gapWithNoReplay,
  makeClient,
  publish,
  seqsOf,
  token,
  until,
} from "./helpers.mjs";

const statesOf = (client) => {
  const states = [];
  client.on("state", (e) => states.push(e.state));
  return states;
};

const disconnectsOf = (client) => {
  const events = [];
  client.on("disconnected", (e) => events.push(e));
  return events;
};

// -- auth.expiring ------------------------------------------------------------------------

test("auth.expiring is answered with auth.refresh and a fresh token from the token function", async () => {
  const tokens = [];
  const client = makeClient(
    async () => {
      const tok = await freshToken("js-refresh-ann", REFRESH_HTTP_URL);
      tokens.push(tok);
      return tok;
    },
    {},
    REFRESH_WS_URL,
  );
  const frames = framesOf(client);
  const errors = [];
  client.on("servererror", (e) => errors.push(e));
  await client.connect();
  await until(
    () => frames.in.some((f) => f.type === "auth.refreshed"),
    5000,
    "auth.refreshed",
  );
  assert.ok(frames.in.some((f) => f.type === "auth.expiring"), "the server warned");
  const refresh = frames.out.find((f) => f.type === "auth.refresh");
  assert.ok(refresh, "the client sent auth.refresh");
  // The first call connected; the second answered the warning, with a token of its own.
  assert.ok(tokens.length >= 2, `token function called ${tokens.length} times`);
  assert.equal(refresh.payload.token, tokens[1]);
  assert.notEqual(tokens[1], tokens[0]);
  const refreshed = frames.in.find((f) => f.type === "auth.refreshed");
  assert.equal(refreshed.re, refresh.id);
  assert.equal(typeof refreshed.payload.exp, "number");
  // The connection stays up and usable: no close, no reconnect, no error.
  assert.equal(typeof (await client.ping()), "number");
  assert.equal(client.state, "connected");
  assert.equal(client.reconnects, 0);
  assert.deepEqual(errors, []);
  client.close();
});

test("with a fixed token string auth.expiring goes unanswered and the connection stays up", async () => {
  const tok = await freshToken("js-refresh-bo", REFRESH_HTTP_URL);
  const client = makeClient(tok, {}, REFRESH_WS_URL);
  const frames = framesOf(client);
  await client.connect();
  await until(() => frames.in.some((f) => f.type === "auth.expiring"), 5000, "auth.expiring");
  assert.equal(typeof (await client.ping()), "number"); // a round trip after the warning
  assert.deepEqual(
    frames.out.filter((f) => f.type === "auth.refresh"),
    [],
  );
  assert.equal(client.state, "connected");
  client.close();
});

// -- 4001 ---------------------------------------------------------------------------------

test("after a 4001 close a token function is called again and the client reconnects and resumes", async () => {
  let calls = 0;
  const client = makeClient(async () => {
    calls += 1;
    return freshToken("js-auth-cy");
  });
  const states = statesOf(client);
  const closes = disconnectsOf(client);
  const seqs = seqsOf(client, "js-auth-resume");
  await client.connect();
  await client.subscribe("js-auth-resume");
  await publish("js-auth-resume", { n: 1 });
  await until(() => seqs.length === 1, 5000, "first event");
  const callsBefore = calls;
  const firstConnection = client.connectionId;

  await disconnect("js-auth-cy", { code: 4001, reason: "token revoked" });
  await until(() => client.reconnects === 1 && client.state === "connected", 5000, "reconnected");

  assert.equal(closes.length, 1);
  assert.equal(closes[0].code, 4001);
  assert.equal(closes[0].reason, "token revoked");
  assert.equal(closes[0].reconnecting, true);
  assert.ok(calls > callsBefore, "the token function was called again");
  assert.notEqual(client.connectionId, firstConnection);
  assert.deepEqual(states.slice(-2), ["reconnecting", "connected"]);
  // The new connection works and the channel was resumed.
  await publish("js-auth-resume", { n: 2 });
  await until(() => seqs.length === 2, 5000, "second event");
  assert.deepEqual(seqs, [1, 2]);
  client.close();
});

test("after a 4001 close a fixed token string stops the client for good", async () => {
  const client = makeClient(await token("js-auth-dee"));
  const states = statesOf(client);
  const closes = disconnectsOf(client);
  await client.connect();
  const queued = [];
  const off = client.on("disconnected", () => {
    off();
    // Settled into a value at once: the rejection comes before the test looks at it.
    queued.push(client.publish("js-auth-x", { n: 1 }).then(() => null, (err) => err));
  });

  await disconnect("js-auth-dee", { code: 4001, reason: "token revoked" });
  await until(() => client.state === "closed", 5000, "closed");

  assert.deepEqual(states, ["connecting", "connected", "closed"]); // never "reconnecting"
  assert.equal(closes.length, 1);
  assert.equal(closes[0].code, 4001);
  assert.equal(closes[0].reconnecting, false);
  assert.equal(client.reconnects, 0);
  assert.equal(client.connected, false);
  // A publish queued while the close was being handled fails; later ones reject at once.
  const failure = await queued[0];
  assert.equal(failure?.name, "ConnectFailed");
  assert.equal(failure.code, 4001);
  await assert.rejects(client.publish("js-auth-x", { n: 2 }), ClientClosed);
  client.close();
});

test("after a 4001 close a token function that returns the refused token again stops the client", async () => {
  const tok = await token("js-auth-eve");
  let calls = 0;
  const client = makeClient(async () => {
    calls += 1;
    return tok;
  });
  const states = statesOf(client);
  const closes = disconnectsOf(client);
  await client.connect();
  const callsBefore = calls;

  await disconnect("js-auth-eve", { code: 4001, reason: "token revoked" });
  await until(() => client.state === "closed", 5000, "closed");

  assert.ok(calls > callsBefore, "the token function was asked for a new token");
  assert.equal(closes.length, 1);
  assert.equal(closes[0].code, 4001);
  assert.equal(client.reconnects, 0);
  assert.deepEqual(states, ["connecting", "connected", "reconnecting", "closed"]);
  client.close();
});

// -- 4003 ---------------------------------------------------------------------------------

test("a 4003 close ends the client, even with a token function", async () => {
  let calls = 0;
  const client = makeClient(async () => {
    calls += 1;
    return freshToken("js-auth-fay");
  });
  const states = statesOf(client);
  const closes = disconnectsOf(client);
  await client.connect();
  const callsBefore = calls;

  await disconnect("js-auth-fay", { code: 4003, reason: "banned" });
  await until(() => client.state === "closed", 5000, "closed");

  assert.deepEqual(states, ["connecting", "connected", "closed"]); // never "reconnecting"
  assert.equal(closes.length, 1);
  assert.equal(closes[0].code, 4003);
  assert.equal(closes[0].reason, "banned");
  assert.equal(closes[0].reconnecting, false);
  assert.equal(calls, callsBefore, "no new token was asked for");
  assert.equal(client.reconnects, 0);
  await assert.rejects(client.publish("js-auth-y", { n: 1 }), ClientClosed);
  await assert.rejects(client.ping(), (err) => err.name === "NotConnected");
  client.close();
});

// -- maxHeldEvents ------------------------------------------------------------------------

test("past maxHeldEvents the gap is given up: recoveryfailed, then delivery goes on in order", async () => {
  const channel = "js-held";
  const client = makeClient(await token("js-held-gus"), {
    WebSocket: gapWithNoReplay(channel),
    maxHeldEvents: 3,
  });
  const frames = framesOf(client);
  const seqs = seqsOf(client, channel);
  const failed = [];
  client.on("recoveryfailed", (e) => failed.push(e));
  await client.connect();
  await client.subscribe(channel);
  for (let n = 1; n <= 8; n++) await publish(channel, { n });
  await until(() => seqs.at(-1) === 8, 5000, "event 8");

  const replay = frames.out.find((f) => f.type === "replay_request");
  assert.deepEqual(replay.payload, { channel, fromSequence: 2, toSequence: 3 });
  // Only the missing events are given up; those already held are delivered, in order,
  // without waiting for the replay timeout: no reconnect.
  assert.deepEqual(
    failed.map((e) => [e.channel, e.fromSeq, e.toSeq]),
    [[channel, 2, 3]],
  );
  assert.deepEqual(seqs, [1, 4, 5, 6, 7, 8]);
  assert.equal(client.position(channel).seq, 8);
  await client.ping();
  assert.equal(client.reconnects, 0);
  assert.equal(client.state, "connected");
  client.close();
});

test("a token function that fails on auth.expiring leaves the connection up", async () => {
  let calls = 0;
  const client = makeClient(async () => {
    calls += 1;
    if (calls > 1) throw new Error("token service down");
    return freshToken("js-refresh-ida", REFRESH_HTTP_URL);
  }, {}, REFRESH_WS_URL);
  const frames = framesOf(client);
  await client.connect();
  await until(() => calls >= 2, 5000, "second token call");
  assert.equal(typeof (await client.ping()), "number");
  assert.deepEqual(frames.out.filter((f) => f.type === "auth.refresh"), []);
  assert.equal(client.state, "connected");
  client.close();
});
