import assert from "node:assert/strict";
import { test } from "node:test";
import { REFRESH_HTTP_URL, REFRESH_WS_URL, filteredSocket, framesOf, freshToken, makeClient, publish, range, seqsOf, token, until } from "./helpers.mjs";

const gapWithNoReplay = (channel) =>
  filteredSocket((frame) => {
    if (frame.channel === channel && frame.type === "message") {
      if (frame.replay) return [];
      if (frame.seq === 2 || frame.seq === 3) return [];
    }
    if (frame.type === "replay_complete" && frame.payload?.channel === channel) return [];
    return [frame];
  });

test("past maxHeldEvents only the missing events are given up; the held ones are delivered", async () => {
  const channel = "js-held-all";
  const client = makeClient(await token("js-held-hank"), { WebSocket: gapWithNoReplay(channel), maxHeldEvents: 3 });
  const seqs = seqsOf(client, channel);
  const failed = [];
  client.on("recoveryfailed", (e) => failed.push({ fromSeq: e.fromSeq, toSeq: e.toSeq }));
  await client.connect();
  await client.subscribe(channel);
  for (let n = 1; n <= 8; n++) await publish(channel, { n });
  await until(() => seqs.at(-1) === 8, 5000, "event 8");
  assert.deepEqual(failed, [{ fromSeq: 2, toSeq: 3 }]);
  assert.deepEqual(seqs, [1, ...range(4, 8)]);
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
