// The chat helpers of hubbub.js (Chat) against a real server (tests/js/test_node_sdk.py).
import assert from "node:assert/strict";
import { afterEach, test as nodeTest } from "node:test";

import { Chat, HttpError, RequestError } from "../../src/hubbub/web/hubbub.js";
import { HTTP_URL, api, disconnect, filteredSocket, framesOf, makeClient, token, until } from "./helpers.mjs";

// A failing test still closes its clients (a reconnecting client keeps Node running).
const open = [];
afterEach(() => {
  for (const client of open.splice(0)) client.close();
});
const test = (name, fn) => nodeTest(name, { timeout: 20000 }, fn);

/** Alice and Bob (names unique to one test) with a direct conversation made by the server. */
async function pair(name) {
  const alice = `chat-${name}-alice`;
  const bob = `chat-${name}-bob`;
  const { conversationId } = await api("POST", "/api/conversations", { members: [alice, bob] });
  return { alice, bob, conversationId };
}

async function connected(user, options = {}, chatOptions = {}) {
  const client = makeClient(await token(user), options);
  open.push(client);
  const chat = new Chat(client, chatOptions);
  await client.connect();
  return { client, chat };
}

/** Every payload of `kind` that `chat` hands out. */
function collect(chat, kind) {
  const seen = [];
  chat.on(kind, (payload) => seen.push(payload));
  return seen;
}

/** A WebSocket class that holds back the incoming frames `hold(frame)` picks until `release()`. */
function holdingSocket(hold) {
  const held = [];
  class HoldingSocket extends globalThis.WebSocket {
    set onmessage(fn) {
      super.onmessage = (msg) => {
        if (hold(JSON.parse(msg.data))) held.push(() => fn(msg));
        else fn(msg);
      };
    }
  }
  return { HoldingSocket, held, release: () => held.splice(0).forEach((deliver) => deliver()) };
}

const sendAs = (conversationId, senderId, content) =>
  api("POST", `/api/conversations/${conversationId}/messages`, {
    senderId,
    content,
    clientMessageId: `${senderId}-${content}`,
  });

test("a message whose answer was lost is sent again with the same clientMessageId after a reconnect and stored once", async () => {
  const { alice, conversationId } = await pair("retry");
  let swallowed = 0;
  const dropFirstAnswer = filteredSocket((frame) => {
    if (frame.type === "chat.message_delivered" && swallowed++ === 0) return [];
    return [frame];
  });
  const { client, chat } = await connected(alice, { WebSocket: dropFirstAnswer });
  const frames = framesOf(client);
  const shown = collect(chat, "new_message");
  const sent = chat.sendMessage(conversationId, "hello exactly once");
  await until(() => swallowed === 1, 5000, "the server's first answer");
  assert.equal(chat.pending.length, 1);
  await disconnect(alice);
  const answer = await sent;

  assert.equal(answer.duplicate, true);
  assert.equal(client.reconnects, 1);
  const attempts = frames.out.filter((f) => f.type === "chat.send_message");
  assert.equal(attempts.length, 2);
  assert.equal(attempts[0].payload.clientMessageId, attempts[1].payload.clientMessageId);
  assert.equal(attempts[0].payload.clientMessageId, answer.clientMessageId);
  assert.deepEqual(chat.pending, []);
  const { messages } = await api("GET", `/api/conversations/${conversationId}/messages`);
  assert.deepEqual(
    messages.map((m) => [m.serverMessageId, m.content]),
    [[answer.serverMessageId, "hello exactly once"]],
  );
  await client.ping(); // anything late has arrived by now
  assert.deepEqual(
    shown.map((m) => m.serverMessageId),
    [answer.serverMessageId],
  );
  client.close();
});

test("a message sent before connecting waits and goes out once connected; a refusal rejects", async () => {
  const { alice, conversationId } = await pair("queued");
  const client = makeClient(await token(alice));
  open.push(client);
  const chat = new Chat(client);
  const delivered = collect(chat, "message_delivered");
  const sent = chat.sendMessage(conversationId, "written offline", { clientMessageId: "offline-1" });
  assert.deepEqual(
    chat.pending.map((m) => m.clientMessageId),
    ["offline-1"],
  );
  await client.connect();
  const answer = await sent;
  assert.equal(answer.clientMessageId, "offline-1");
  assert.equal(answer.duplicate, false);
  assert.deepEqual(delivered, [answer]);

  const { conversationId: elsewhere } = await api("POST", "/api/conversations", {
    members: ["chat-queued-x", "chat-queued-y"],
  });
  await assert.rejects(chat.sendMessage(elsewhere, "not mine"), (err) => {
    assert.ok(err instanceof RequestError);
    assert.equal(err.code, "forbidden");
    return true;
  });
  assert.deepEqual(chat.pending, []);
  client.close();
});

test("a message already loaded by history is not handed out again as new_message", async () => {
  const { alice, bob, conversationId } = await pair("seen");
  let holding = true;
  const { HoldingSocket, held, release } = holdingSocket(
    (frame) => holding && frame.type === "chat.new_message",
  );
  const { client, chat } = await connected(bob, { WebSocket: HoldingSocket });
  const shown = collect(chat, "new_message");
  const first = await sendAs(conversationId, alice, "first");
  await until(() => held.length === 1, 5000, "the live event");
  const page = await chat.history(conversationId);
  assert.deepEqual(
    page.messages.map((m) => m.serverMessageId),
    [first.serverMessageId],
  );
  holding = false;
  release();
  const second = await sendAs(conversationId, alice, "second");
  await until(() => shown.length >= 1, 5000, "the second message");
  await client.ping();
  assert.deepEqual(
    shown.map((m) => m.content),
    ["second"],
  );
  assert.equal(shown[0].serverMessageId, second.serverMessageId);
  client.close();
});

test("typing_start goes out at most once per 3 s while typing; the other member sees typing start and stop", async () => {
  const { alice, bob, conversationId } = await pair("typing");
  let now = 1_000_000;
  const a = await connected(alice, {}, { now: () => now });
  const b = await connected(bob);
  const frames = framesOf(a.client);
  const typing = collect(b.chat, "user_typing");

  assert.equal(a.chat.typingStart(conversationId), true);
  for (let key = 0; key < 5; key++) assert.equal(a.chat.typingStart(conversationId), false);
  await until(() => typing.length === 1, 5000, "typing shown");
  assert.deepEqual(typing[0], { conversationId, userId: alice, isTyping: true });
  assert.deepEqual(b.chat.typingUsers(conversationId), [alice]);

  now += 3000; // still typing three seconds later: one refresh keeps it alive
  assert.equal(a.chat.typingStart(conversationId), true);
  assert.equal(a.chat.typingStop(conversationId), true);
  assert.equal(a.chat.typingStop(conversationId), false); // nothing left to stop
  await until(() => typing.length === 2, 5000, "typing ended");
  assert.equal(typing[1].isTyping, false);
  assert.deepEqual(b.chat.typingUsers(conversationId), []);
  const sentTypes = frames.out.map((f) => f.type).filter((t) => t.startsWith("chat.typing"));
  assert.deepEqual(sentTypes, ["chat.typing_start", "chat.typing_start", "chat.typing_stop"]);

  // Sending ends typing on the server, so the next key starts it again at once.
  assert.equal(a.chat.typingStart(conversationId), true);
  await until(() => typing.length === 3, 5000, "typing again");
  await a.chat.sendMessage(conversationId, "done typing");
  await until(() => typing.length === 4, 5000, "typing ended by the message");
  assert.equal(typing[3].isTyping, false);
  assert.equal(a.chat.typingStart(conversationId), true);
  a.client.close();
  b.client.close();
});

test("marking read tells the sender and the reader's devices, and an older id sends nothing", async () => {
  const { alice, bob, conversationId } = await pair("read");
  const a = await connected(alice);
  const b = await connected(bob);
  const readsSeenByAlice = collect(a.chat, "message_read");
  const counts = collect(b.chat, "unread_count");
  const arrived = collect(b.chat, "new_message");
  const one = await a.chat.sendMessage(conversationId, "one");
  const two = await a.chat.sendMessage(conversationId, "two");
  await until(() => arrived.length === 2, 5000, "both messages");
  const [listed] = (await b.chat.conversations()).filter((c) => c.conversationId === conversationId);
  assert.equal(listed.unread, 2);

  const bFrames = framesOf(b.client);
  const answer = await b.chat.markRead(conversationId, two.serverMessageId);
  assert.deepEqual(answer, { conversationId, messageId: two.serverMessageId, unread: 0 });
  await until(() => readsSeenByAlice.length === 1, 5000, "alice hears of the read");
  assert.equal(readsSeenByAlice[0].userId, bob);
  assert.equal(readsSeenByAlice[0].messageId, two.serverMessageId);
  await until(() => counts.length === 1, 5000, "bob's unread count");
  assert.deepEqual(counts[0], { conversationId, unread: 0 });

  assert.equal(await b.chat.markRead(conversationId, one.serverMessageId), null);
  assert.equal(bFrames.out.filter((f) => f.type === "chat.mark_read").length, 1);
  assert.equal(b.chat.readPosition(conversationId), two.serverMessageId);
  const [after] = (await b.chat.conversations()).filter((c) => c.conversationId === conversationId);
  assert.equal(after.unread, 0);
  assert.equal(after.lastReadId, two.serverMessageId);
  a.client.close();
  b.client.close();
});

test("history pages back with before and forward with after, oldest first in each page", async () => {
  const { alice, bob, conversationId } = await pair("pages");
  const sent = [];
  for (let n = 1; n <= 7; n++) sent.push(await sendAs(conversationId, n % 2 ? alice : bob, `m${n}`));
  const { client, chat } = await connected(alice);
  assert.equal(chat.httpUrl, HTTP_URL);
  const contents = (page) => page.messages.map((m) => m.content);

  const newest = await chat.history(conversationId, { limit: 3 });
  assert.deepEqual(contents(newest), ["m5", "m6", "m7"]);
  const older = await chat.history(conversationId, { before: newest.next, limit: 3 });
  assert.deepEqual(contents(older), ["m2", "m3", "m4"]);
  const oldest = await chat.history(conversationId, { before: older.next, limit: 3 });
  assert.deepEqual(contents(oldest), ["m1"]);
  assert.equal(oldest.next, null);

  const later = await chat.history(conversationId, { after: sent[0].serverMessageId, limit: 4 });
  assert.deepEqual(contents(later), ["m2", "m3", "m4", "m5"]);
  const rest = await chat.history(conversationId, { after: later.next, limit: 4 });
  assert.deepEqual(contents(rest), ["m6", "m7"]);
  assert.equal(rest.next, null);

  await assert.rejects(chat.history(conversationId, { limit: 0 }), (err) => {
    assert.ok(err instanceof HttpError);
    assert.equal(err.status, 400);
    assert.equal(err.code, "bad_request");
    return true;
  });
  client.close();
});

test("a new group conversation reaches its members; attachments upload, arrive and download intact; search finds", async () => {
  const alice = "chat-group-alice";
  const bob = "chat-group-bob";
  const a = await connected(alice);
  const b = await connected(bob);
  const created = collect(b.chat, "conversation_created");
  const arrived = collect(b.chat, "new_message");
  const conversationId = await a.chat.createConversation([bob], "Plans");
  await until(() => created.length === 1, 5000, "bob hears of the conversation");
  assert.equal(created[0].conversationId, conversationId);
  assert.equal(created[0].title, "Plans");
  assert.deepEqual(created[0].members, [alice, bob]);

  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3, 4, 5]);
  const file = new Blob([png], { type: "image/png" });
  const attachment = await a.chat.upload(conversationId, file, { name: "plan.png" });
  assert.equal(attachment.size, png.length);
  await a.chat.sendMessage(conversationId, "the floor plan attached", {
    attachments: [attachment],
  });
  await until(() => arrived.length === 1, 5000, "the message with its attachment");
  assert.deepEqual(arrived[0].attachments, [attachment]);
  const blob = await b.chat.download(conversationId, attachment.attachmentId);
  assert.deepEqual(new Uint8Array(await blob.arrayBuffer()), png);
  assert.equal(blob.type, "image/png");

  const found = await b.chat.search(conversationId, "floo");
  assert.deepEqual(
    found.map((m) => m.content),
    ["the floor plan attached"],
  );
  const [listed] = (await b.chat.conversations()).filter((c) => c.conversationId === conversationId);
  assert.equal(listed.title, "Plans");
  assert.equal(listed.lastMessage.content, "the floor plan attached");
  assert.equal(listed.unread, 1);

  await assert.rejects(a.chat.upload(conversationId, new Blob(["not a png"], { type: "image/png" })), (err) => {
    assert.ok(err instanceof HttpError);
    assert.equal(err.code, "bad_request");
    return true;
  });
  a.client.close();
  b.client.close();
});

test("people who share a conversation see each other come online and go offline", async () => {
  const { alice, bob, conversationId } = await pair("presence");
  const a = await connected(alice);
  const online = collect(a.chat, "user_online");
  const offline = collect(a.chat, "user_offline");
  const members = await a.chat.presence(conversationId);
  assert.deepEqual(members, [
    { userId: alice, online: true },
    { userId: bob, online: false },
  ]);
  assert.equal(a.chat.isOnline(bob), false);

  const b = await connected(bob);
  await until(() => online.length === 1, 5000, "bob online");
  assert.equal(online[0].userId, bob);
  assert.equal(a.chat.isOnline(bob), true);
  b.client.close();
  // After the presence grace period (5 s by default).
  await until(() => offline.length === 1, 10000, "bob offline");
  assert.equal(offline[0].userId, bob);
  assert.equal(a.chat.isOnline(bob), false);
  a.client.close();
});
