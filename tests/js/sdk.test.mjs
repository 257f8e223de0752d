// hubbub.js against a real server (started by tests/js/test_node_sdk.py).
import assert from "node:assert/strict";
import { test } from "node:test";

import { RequestError, RequestTimeout } from "../../src/hubbub/web/hubbub.js";
import {
  disconnect,
  filteredSocket,
  makeClient,
  publish,
  range,
  seqsOf,
  token,
  until,
} from "./helpers.mjs";

test("connect welcomes the user and subscribe returns the channel position", async () => {
  const client = makeClient(await token("js-alice"));
  await client.connect();
  assert.equal(client.userId, "js-alice");
  await publish("js-pos", { n: 1 });
  const subs = await client.subscribe("js-pos");
  assert.equal(subs["js-pos"].seq, 1);
  assert.deepEqual(client.position("js-pos").seq, 1);
  client.close();
});

test("a dropped connection reconnects and resumes with since, every event once in order", async () => {
  let gate = null;
  const tok = await token("js-bob");
  const client = makeClient(async () => {
    await gate;
    return tok;
  });
  const states = [];
  client.on("state", (e) => states.push(e.state));
  const resets = [];
  client.on("reset", (e) => resets.push(e));
  const seqs = seqsOf(client, "js-recover");
  await client.connect();
  await client.subscribe("js-recover");
  for (let i = 0; i < 5; i++) await publish("js-recover", { i });
  await until(() => seqs.length === 5, 5000, "first five");
  let release;
  gate = new Promise((resolve) => (release = resolve));
  await disconnect("js-bob");
  await until(() => client.state === "reconnecting", 5000, "reconnecting");
  for (let i = 5; i < 10; i++) await publish("js-recover", { i });
  release();
  await until(() => client.state === "connected", 5000, "connected again");
  await until(() => seqs.length >= 10, 5000, "ten events");
  assert.deepEqual(seqs, range(1, 10));
  assert.deepEqual(resets, []);
  assert.equal(client.reconnects, 1);
  assert.ok(states.includes("reconnecting"));
  client.close();
});

test("a lost history surfaces as a reset event (recovered: false)", async () => {
  const client = makeClient(await token("js-carol"));
  const resets = [];
  client.on("reset", (e) => resets.push(e));
  await client.connect();
  await client.subscribe("js-reset");
  await publish("js-reset", { n: 1 });
  await until(() => client.position("js-reset")?.seq === 1, 5000, "first event");
  // Pretend the history was lost: a position of another epoch cannot be recovered.
  client._channels.get("js-reset").epoch = "gone";
  await disconnect("js-carol");
  await until(() => resets.length === 1, 5000, "reset");
  assert.equal(resets[0].channel, "js-reset");
  assert.equal(resets[0].seq, 1);
  client.close();
});

test("repeated frames are delivered once", async () => {
  const twice = filteredSocket((frame) => (frame.type === "message" ? [frame, frame] : [frame]));
  const client = makeClient(await token("js-dave"), { WebSocket: twice });
  const seqs = seqsOf(client, "js-dup");
  await client.connect();
  await client.subscribe("js-dup");
  for (let i = 0; i < 5; i++) await publish("js-dup", { i });
  await until(() => seqs.length >= 5, 5000, "five events");
  await client.ping(); // a round trip after the last repeat
  assert.deepEqual(seqs, range(1, 5));
  client.close();
});

test("a gap is filled by replay_request and delivered in order", async () => {
  const sent = [];
  const dropLive = filteredSocket((frame) =>
    frame.type === "message" && !frame.replay && (frame.seq === 2 || frame.seq === 3)
      ? []
      : [frame],
  );
  const client = makeClient(await token("js-erin"), { WebSocket: dropLive });
  client.on("frame", (e) => e.direction === "out" && sent.push(e.frame));
  const seqs = seqsOf(client, "js-gap");
  await client.connect();
  await client.subscribe("js-gap");
  for (let i = 0; i < 5; i++) await publish("js-gap", { i });
  await until(() => seqs.length >= 5, 5000, "five events");
  assert.deepEqual(seqs, range(1, 5));
  const replay = sent.find((f) => f.type === "replay_request");
  assert.deepEqual(replay.payload, { channel: "js-gap", fromSequence: 2, toSequence: 3 });
  client.close();
});

test("a request with no answer times out; an error answer rejects with its code", async () => {
  const noPong = filteredSocket((frame) => (frame.type === "pong" ? [] : [frame]));
  const client = makeClient(await token("js-frank"), { WebSocket: noPong });
  await client.connect();
  await assert.rejects(client.request("ping", {}, { timeout: 200 }), RequestTimeout);
  await assert.rejects(client.request("no.such_type", {}), (err) => {
    assert.ok(err instanceof RequestError);
    assert.equal(err.code, "unknown_type");
    return true;
  });
  client.close();
});

test("publishes made while disconnected wait in the offline queue and go out in order", async () => {
  let gate = null;
  const tok = await token("js-gina");
  const client = makeClient(async () => {
    await gate;
    return tok;
  });
  const seqs = seqsOf(client, "js-offline");
  await client.connect();
  await client.subscribe("js-offline");
  let release;
  gate = new Promise((resolve) => (release = resolve));
  await disconnect("js-gina");
  await until(() => client.state === "reconnecting", 5000, "reconnecting");
  const published = [1, 2, 3].map((n) => client.publish("js-offline", { n }));
  release();
  assert.deepEqual(await Promise.all(published), [1, 2, 3]);
  await until(() => seqs.length === 3, 5000, "three events");
  assert.deepEqual(seqs, [1, 2, 3]);
  client.close();
});

test("presence helpers list the members of a channel", async () => {
  const client = makeClient(await token("js-hal"));
  await client.connect();
  await client.subscribe("js-room");
  await client.setStatus("busy");
  const members = await client.presence("js-room");
  assert.deepEqual(
    members.map((m) => m.userId),
    ["js-hal"],
  );
  client.close();
});
