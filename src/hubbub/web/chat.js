// The chat page: conversations with unread badges and presence, history paged on scroll,
// typing, read ticks and attachments, all on hubbub.js's Chat helpers.
import { Chat, Client, devToken, pageUrl } from "/static/hubbub.js";

const PAGE = 30;
const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);

const state = {
  ready: false,
  user: null,
  client: null,
  chat: null,
  conversations: new Map(), // conversationId -> the listing ({members, unread, lastMessage, ...})
  reads: new Map(), // conversationId -> Map(userId -> newest messageId they read)
  open: null, // {id, next, loading, shown: Map(serverMessageId -> element), pending: Map(clientMessageId -> element)}
  chips: [], // attachments uploaded for the next message
};
window.__hubbub = state;

const blobs = new Map(); // attachmentId -> object URL, fetched once

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function showError(err) {
  const box = $("error");
  box.textContent = err ? String(err.serverMessage || err.message || err) : "";
  box.hidden = !err;
}

const run = (fn) => (...args) => fn(...args).catch(showError);

// -- conversations --------------------------------------------------------------------------

const others = (c) => c.members.filter((m) => m !== state.user);
const nameOf = (c) => c.title || others(c).join(", ") || "only you";
const activity = (c) => c.lastMessage?.createdAt ?? c.createdAt;
const anyoneOnline = (c) => others(c).some((m) => state.chat.isOnline(m));

function remember(c) {
  const known = state.conversations.get(c.conversationId);
  state.conversations.set(c.conversationId, { unread: 0, lastMessage: null, ...known, ...c });
  // How far each member has read, as stored: read ticks survive a reload.
  for (const [userId, messageId] of Object.entries(c.readUpTo ?? {})) {
    onRead({ conversationId: c.conversationId, userId, messageId });
  }
}

function renderList() {
  const list = $("conversations");
  const sorted = [...state.conversations.values()].sort((a, b) => activity(b) - activity(a));
  list.replaceChildren(...sorted.map(renderItem));
}

function renderItem(c) {
  const typing = state.chat.typingUsers(c.conversationId);
  const last = c.lastMessage;
  let preview = last ? `${last.senderId === state.user ? "you" : last.senderId}: ${last.content || "(attachment)"}` : "no messages yet";
  if (typing.length) preview = `${typing.join(", ")} ${typing.length > 1 ? "are" : "is"} typing…`;
  const item = el(
    "li",
    { className: `conversation${state.open?.id === c.conversationId ? " active" : ""}` },
    el("span", { className: `dot${anyoneOnline(c) ? " online" : ""}`, title: anyoneOnline(c) ? "online" : "offline" }),
    el("span", { className: "name", textContent: nameOf(c) }),
    el("span", { className: "badge", textContent: String(c.unread), hidden: !c.unread }),
    el("span", { className: `preview${typing.length ? " typing" : ""}`, textContent: preview }),
  );
  item.dataset.id = c.conversationId;
  item.onclick = run(() => openConversation(c.conversationId));
  return item;
}

async function loadConversations() {
  const listed = await state.chat.conversations();
  state.conversations.clear();
  for (const c of listed) remember(c);
  renderList();
  await Promise.all(listed.map((c) => loadPresence(c.conversationId)));
}

async function loadPresence(conversationId) {
  await state.chat.presence(conversationId);
  renderList();
  if (state.open?.id === conversationId) renderHead();
}

async function ensureConversation(conversationId) {
  if (!state.conversations.has(conversationId)) {
    remember(await state.chat.conversation(conversationId));
    renderList();
    loadPresence(conversationId).catch(showError);
  }
  return state.conversations.get(conversationId);
}

// -- the open conversation ------------------------------------------------------------------

function renderHead() {
  const c = state.conversations.get(state.open.id);
  $("paneTitle").textContent = nameOf(c);
  $("paneMembers").replaceChildren(
    ...others(c).map((m) =>
      el("span", {}, el("span", { className: `dot${state.chat.isOnline(m) ? " online" : ""}` }), m),
    ),
  );
}

async function openConversation(conversationId) {
  if (state.open?.id === conversationId) return;
  if (state.open) state.chat.typingStop(state.open.id);
  const c = await ensureConversation(conversationId);
  state.open = { id: conversationId, next: null, loading: false, shown: new Map(), pending: new Map() };
  for (const id of ["paneHead", "messages", "composer"]) $(id).hidden = false;
  $("empty").hidden = true;
  $("list").replaceChildren();
  $("outbox").replaceChildren();
  clearChips();
  renderHead();
  renderTyping();
  renderList();
  const open = state.open;
  const page = await state.chat.history(conversationId, { limit: PAGE });
  if (state.open !== open) return;
  for (const m of page.messages) showMessage(m);
  open.next = page.next;
  const newest = page.messages.at(-1);
  if (newest && (!c.lastMessage || Chat.compareIds(newest.serverMessageId, c.lastMessage.serverMessageId) > 0)) {
    c.lastMessage = newest;
  }
  renderOlder();
  scrollToEnd();
  await fillScreen(open);
  markSeen();
  $("text").focus();
}

function renderOlder() {
  $("older").textContent = state.open.next ? "scroll up for older messages" : "the beginning of the conversation";
}

/** Load older pages while the first ones do not fill the box (there is nothing to scroll). */
async function fillScreen(open) {
  const box = $("messages");
  while (state.open === open && open.next && box.scrollHeight <= box.clientHeight) await loadOlder();
}

async function loadOlder() {
  const open = state.open;
  if (!open || !open.next || open.loading) return;
  open.loading = true;
  $("older").textContent = "loading…";
  try {
    const page = await state.chat.history(open.id, { before: open.next, limit: PAGE });
    if (state.open !== open) return;
    const box = $("messages");
    const fromBottom = box.scrollHeight - box.scrollTop;
    for (const m of page.messages) showMessage(m);
    box.scrollTop = box.scrollHeight - fromBottom; // keep what the reader looks at in place
    open.next = page.next;
  } finally {
    open.loading = false;
    if (state.open === open) renderOlder();
  }
}

const nearEnd = () => {
  const box = $("messages");
  return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
};
const scrollToEnd = () => {
  const box = $("messages");
  box.scrollTop = box.scrollHeight;
};

function time(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** One message, stored (with serverMessageId) or still on its way (pending). */
function messageElement(m, pending = false) {
  const mine = m.senderId === state.user;
  const node = el(
    "div",
    { className: `msg${mine ? " mine" : ""}${pending ? " pending" : ""}` },
    el(
      "div",
      { className: "meta" },
      el("span", { className: "sender", textContent: mine ? "you" : m.senderId }),
      el("span", { textContent: time(m.createdAt ?? Date.now()) }),
      mine ? el("span", { className: "ticks" }) : null,
    ),
  );
  if (m.replyTo) {
    const quoted = state.open.shown.get(m.replyTo)?.querySelector(".body")?.textContent;
    node.append(el("div", { className: "reply", textContent: `↪ ${quoted ?? "an earlier message"}` }));
  }
  if (m.content) node.append(el("div", { className: "body", textContent: m.content }));
  for (const a of m.attachments ?? []) node.append(attachmentElement(m.conversationId, a));
  node.dataset.sender = m.senderId;
  if (m.serverMessageId) node.dataset.id = m.serverMessageId;
  return node;
}

function attachmentElement(conversationId, a) {
  if (a.contentType.startsWith("image/")) {
    const img = el("img", { className: "attachment-image", alt: a.name, title: a.name });
    objectUrl(conversationId, a.attachmentId).then((url) => (img.src = url), showError);
    return img;
  }
  const link = el("a", {
    className: "attachment-file",
    href: "#",
    textContent: `download ${a.name} (${Math.max(1, Math.round(a.size / 1024))} KiB)`,
  });
  link.onclick = run(async (event) => {
    event.preventDefault();
    // Downloads need the Authorization header: fetch the bytes, then save them.
    const save = el("a", { href: await objectUrl(conversationId, a.attachmentId), download: a.name });
    save.click();
  });
  return link;
}

async function objectUrl(conversationId, attachmentId) {
  if (!blobs.has(attachmentId)) {
    const blob = await state.chat.download(conversationId, attachmentId);
    blobs.set(attachmentId, URL.createObjectURL(blob));
  }
  return blobs.get(attachmentId);
}

/** Show a stored message of the open conversation in id order, once. */
function showMessage(m) {
  const open = state.open;
  if (open.shown.has(m.serverMessageId)) return open.shown.get(m.serverMessageId);
  let node = open.pending.get(m.clientMessageId);
  if (node && m.senderId === state.user) {
    open.pending.delete(m.clientMessageId);
    node.classList.remove("pending");
    node.dataset.id = m.serverMessageId;
  } else {
    node = messageElement(m);
  }
  const list = $("list");
  const after = [...list.children].find((n) => Chat.compareIds(n.dataset.id, m.serverMessageId) > 0);
  list.insertBefore(node, after ?? null);
  open.shown.set(m.serverMessageId, node);
  renderTicks(node);
  return node;
}

/** ✓ stored (sent and delivered), ✓✓ read by every other member; pending shows a clock. */
function renderTicks(node) {
  const ticks = node.querySelector(".ticks");
  if (!ticks) return;
  const id = node.dataset.id;
  if (!id) {
    ticks.textContent = "…";
    ticks.title = "sending";
    ticks.className = "ticks";
    return;
  }
  const c = state.conversations.get(state.open.id);
  const reads = state.reads.get(state.open.id) ?? new Map();
  const readers = others(c).filter((m) => reads.has(m) && Chat.compareIds(reads.get(m), id) >= 0);
  const all = readers.length === others(c).length && readers.length > 0;
  ticks.textContent = all ? "✓✓" : "✓";
  ticks.className = all ? "ticks read" : "ticks";
  ticks.title = readers.length ? `read by ${readers.join(", ")}` : "delivered";
}

function renderAllTicks() {
  for (const node of $("list").querySelectorAll(".msg.mine")) renderTicks(node);
}

function renderTyping() {
  const users = state.open ? state.chat.typingUsers(state.open.id) : [];
  $("typing").textContent = users.length ? `${users.join(", ")} ${users.length > 1 ? "are" : "is"} typing…` : "";
}

/** The open conversation is read up to its newest message while the page is visible. */
function markSeen() {
  const open = state.open;
  if (!open || document.visibilityState !== "visible") return;
  const newest = $("list").lastElementChild?.dataset.id;
  if (!newest) return;
  state.chat.markRead(open.id, newest).then((answer) => {
    const c = state.conversations.get(open.id);
    if (answer && c) {
      c.unread = answer.unread;
      renderList();
    }
  }, showError);
}

// -- sending --------------------------------------------------------------------------------

async function send(event) {
  event.preventDefault();
  const open = state.open;
  const content = $("text").value.trim();
  const attachments = state.chips.filter((chip) => chip.attachment).map((chip) => chip.attachment);
  if (!open || (!content && !attachments.length)) return;
  if (state.chips.some((chip) => !chip.attachment)) return showError("wait for the uploads to finish");
  $("text").value = "";
  clearChips();
  const clientMessageId = crypto.randomUUID?.() ?? `${Date.now()}-${Math.random()}`;
  const draft = { conversationId: open.id, senderId: state.user, clientMessageId, content, attachments };
  const node = messageElement(draft, true);
  open.pending.set(clientMessageId, node);
  $("outbox").append(node);
  renderTicks(node);
  scrollToEnd();
  let delivered;
  try {
    delivered = await state.chat.sendMessage(open.id, content, { attachments, clientMessageId });
  } catch (err) {
    open.pending.delete(clientMessageId);
    node.classList.add("failed");
    node.querySelector(".ticks").textContent = "not sent";
    throw err;
  }
  // The new_message event usually came first; if not, the answer places the message.
  if (state.open === open && open.pending.has(clientMessageId)) {
    showMessage({ ...draft, serverMessageId: delivered.serverMessageId, createdAt: delivered.timestamp });
  }
}

async function attach() {
  const open = state.open;
  const files = [...$("file").files];
  $("file").value = "";
  for (const file of files) {
    const chip = { name: file.name, attachment: null };
    state.chips.push(chip);
    renderChips();
    try {
      chip.attachment = await state.chat.upload(open.id, file);
    } catch (err) {
      state.chips = state.chips.filter((c) => c !== chip);
      showError(err);
    }
    renderChips();
  }
}

function renderChips() {
  $("chips").replaceChildren(
    ...state.chips.map((chip) => {
      const remove = el("button", { type: "button", textContent: "×", title: "remove" });
      remove.onclick = () => {
        state.chips = state.chips.filter((c) => c !== chip);
        renderChips();
      };
      return el("span", { className: "chip" }, chip.attachment ? `attached ${chip.name}` : `uploading ${chip.name}…`, remove);
    }),
  );
}

function clearChips() {
  state.chips = [];
  renderChips();
}

// -- events ---------------------------------------------------------------------------------

function onNewMessage(m) {
  ensureConversation(m.conversationId).then((c) => {
    if (!c.lastMessage || Chat.compareIds(m.serverMessageId, c.lastMessage.serverMessageId) > 0) {
      c.lastMessage = m;
    }
    const isOpen = state.open?.id === m.conversationId;
    if (isOpen) {
      const stick = nearEnd() || m.senderId === state.user;
      showMessage(m);
      if (stick) scrollToEnd();
      markSeen();
    }
    if (m.senderId !== state.user && !(isOpen && document.visibilityState === "visible")) c.unread += 1;
    renderList();
  }, showError);
}

function onRead(p) {
  if (!state.reads.has(p.conversationId)) state.reads.set(p.conversationId, new Map());
  const reads = state.reads.get(p.conversationId);
  const held = reads.get(p.userId);
  if (!held || Chat.compareIds(p.messageId, held) > 0) reads.set(p.userId, p.messageId);
  if (state.open?.id === p.conversationId) renderAllTicks();
}

function onPresence() {
  renderList();
  if (state.open) renderHead();
}

function wire(chat) {
  chat.on("new_message", onNewMessage);
  chat.on("message_read", onRead);
  chat.on("unread_count", (p) => {
    const c = state.conversations.get(p.conversationId);
    if (c) {
      c.unread = p.unread;
      renderList();
    }
  });
  chat.on("user_typing", (p) => {
    if (state.open?.id === p.conversationId) renderTyping();
    renderList();
  });
  chat.on("conversation_created", run(async (p) => {
    remember({ unread: 0, lastMessage: null, ...p });
    renderList();
    await loadPresence(p.conversationId);
  }));
  chat.on("member_added", run(async (p) => {
    const c = await state.chat.conversation(p.conversationId);
    remember(c);
    onPresence();
  }));
  chat.on("member_removed", (p) => {
    if (p.userId === state.user) {
      state.conversations.delete(p.conversationId);
      renderList();
    } else state.chat.conversation(p.conversationId).then((c) => (remember(c), onPresence()), showError);
  });
  chat.on("user_online", onPresence);
  chat.on("user_offline", onPresence);
  // The user channel could not be recovered after a long outage: reload what it carried.
  chat.on("reset", run(async () => {
    const openId = state.open?.id;
    await loadConversations();
    if (openId) {
      state.open = null;
      await openConversation(openId);
    }
  }));
}

// -- starting -------------------------------------------------------------------------------

async function start(user) {
  state.user = user;
  const client = new Client(pageUrl(), { token: () => devToken(location.origin, user) });
  const chat = new Chat(client);
  Object.assign(state, { client, chat });
  client.on("state", ({ state: s }) => {
    $("state").textContent = s;
    $("state").className = `pill ${s}`;
  });
  wire(chat);
  $("login").hidden = true;
  await client.connect();
  $("user").textContent = client.userId;
  $("app").hidden = false;
  await loadConversations();
  state.ready = true;
}

$("login").onsubmit = run(async (event) => {
  event.preventDefault();
  const user = $("loginUser").value.trim();
  history.replaceState(null, "", `?user=${encodeURIComponent(user)}`);
  await start(user);
});
$("newConversation").onsubmit = run(async (event) => {
  event.preventDefault();
  const members = $("newMembers").value.split(",").map((m) => m.trim()).filter(Boolean);
  const id = await state.chat.createConversation(members, $("newTitle").value.trim() || null);
  $("newMembers").value = "";
  $("newTitle").value = "";
  showError(null);
  await openConversation(id);
});
$("composer").onsubmit = run(send);
$("file").onchange = run(attach);
$("text").oninput = () => {
  if (!state.open) return;
  if ($("text").value.trim()) state.chat.typingStart(state.open.id);
  else state.chat.typingStop(state.open.id);
};
$("messages").onscroll = () => {
  if ($("messages").scrollTop < 60) loadOlder().catch(showError);
};
document.addEventListener("visibilitychange", markSeen);
window.addEventListener("focus", markSeen);

const given = params.get("user");
if (given) run(start)(given);
else $("login").hidden = false;
