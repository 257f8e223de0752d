// The notification center: a badge with the unread count, toasts by priority, the
// list with mark read and archive, all kept in step on every tab and device of the
// user by the events on user:<id> (docs/notifications.md). Web Push where offered.
import { Client, devToken, pageUrl } from "/static/hubbub.js";

const params = new URLSearchParams(location.search);
const user = params.get("user") || `guest-${Math.random().toString(36).slice(2, 8)}`;
const TOAST_MS = { normal: 4000, high: 8000 }; // low: no toast; critical: until dismissed
const PAGE = 20;
let countEvents = 0;

const state = {
  userId: user,
  unread: 0,
  items: new Map(), // id -> notification, as the server sent it
  order: [], // ids, newest first
  next: null,
  toasts: [],
  ready: false,
  state: "idle",
  push: "unknown",
};
window.__hubbub = state;

const $ = (id) => document.getElementById(id);
$("user").textContent = user;
let token = null;
const freshToken = async () => (token = await devToken(location.origin, user));

async function api(method, path, body) {
  const response = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${token || (await freshToken())}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const answer = await response.json();
  if (!response.ok) throw new Error(answer.error?.message || `HTTP ${response.status}`);
  return answer;
}

// -- the badge, the list, the toasts -------------------------------------------------

function setBadge(count) {
  state.unread = count;
  const badge = $("badge");
  badge.textContent = count > 99 ? "99+" : String(count);
  badge.dataset.count = String(count);
  document.title = count ? `(${count}) Hubbub notifications` : "Hubbub notifications";
}

function visible(n) {
  const filter = $("filter").value;
  if (filter === "archived") return n.state === "archived";
  if (n.state === "archived") return false;
  return filter !== "unread" || !n.read;
}

function render() {
  const list = $("list");
  list.replaceChildren();
  for (const id of state.order) {
    const n = state.items.get(id);
    if (!n || !visible(n)) continue;
    const li = document.createElement("li");
    li.dataset.id = n.id;
    li.className = `p-${n.priority} ${n.read ? "read" : "unread"} state-${n.state}`;
    const text = document.createElement("div");
    text.className = "text";
    const title = document.createElement("div");
    title.className = "title";
    title.textContent = n.title;
    const body = document.createElement("div");
    body.textContent = n.body;
    const meta = document.createElement("div");
    meta.className = "meta";
    meta.textContent = `${n.priority} · ${n.type} · ${n.state} · ${new Date(n.createdAt).toLocaleString()}`;
    text.append(title, body, meta);
    li.append(text);
    if (!n.read) li.append(button("Mark read", "mark-read", () => mark("mark_read", [n.id])));
    if (n.state !== "archived") li.append(button("Archive", "archive", () => mark("archive", [n.id])));
    list.append(li);
  }
  $("more").hidden = !state.next;
}

function button(label, action, onClick) {
  const b = document.createElement("button");
  b.textContent = label;
  b.dataset.action = action;
  b.addEventListener("click", onClick);
  return b;
}

function toast(n) {
  const ms = TOAST_MS[n.priority];
  if (n.priority === "low") return;
  const el = document.createElement("div");
  el.className = `toast p-${n.priority}`;
  el.dataset.id = n.id;
  const close = button("×", "dismiss", () => el.remove());
  const title = document.createElement("strong");
  title.textContent = n.title;
  const body = document.createElement("div");
  body.textContent = n.body;
  el.append(close, title, body);
  $("toasts").append(el);
  state.toasts.push({ id: n.id, priority: n.priority });
  if (ms) setTimeout(() => el.remove(), ms);
}

function keep(n, { front = false } = {}) {
  if (!state.items.has(n.id)) {
    if (front) state.order.unshift(n.id);
    else state.order.push(n.id);
  }
  state.items.set(n.id, n);
}

function update(ids, change) {
  for (const id of ids) {
    const n = state.items.get(id);
    if (n) state.items.set(id, { ...n, ...change(n) });
  }
  render();
}

// -- talking to the hub ----------------------------------------------------------------

async function load() {
  const filter = $("filter").value;
  const query = { limit: PAGE, archived: filter === "archived" ? "only" : "exclude" };
  if (filter === "unread") query.unread = true;
  const counted = countEvents;
  const page = await client.request("notifications.list", query);
  state.items.clear();
  state.order = [];
  page.notifications.forEach((n) => keep(n));
  state.next = page.next ?? null;
  if (countEvents === counted) setBadge(page.unread); // else a newer count came meanwhile
  render();
}

async function older() {
  const filter = $("filter").value;
  const query = { limit: PAGE, before: state.next, archived: filter === "archived" ? "only" : "exclude" };
  if (filter === "unread") query.unread = true;
  const page = await client.request("notifications.list", query);
  page.notifications.forEach((n) => keep(n));
  state.next = page.next ?? null;
  render();
}

async function mark(kind, ids) {
  // The badge follows the `notifications.unread_count` event that every tab gets, this
  // one too: the answer's count may be older than a change made meanwhile elsewhere.
  await client.request(`notifications.${kind}`, ids ? { notificationIds: ids } : {});
}

const client = new Client(pageUrl(), { token: freshToken });
state.client = client;
client.on("state", ({ state: s }) => {
  state.state = s;
  const pill = $("state");
  pill.textContent = s;
  pill.className = `pill ${s}`;
});
client.on("connected", async () => {
  await load();
  state.ready = true;
});
client.on("message", (event) => {
  const p = event.payload;
  switch (event.type) {
    case "notification":
      keep(p, { front: true });
      render();
      toast(p);
      break;
    case "notifications.unread_count":
      countEvents += 1;
      setBadge(p.count);
      break;
    case "notifications_read":
      update(p.notificationIds, (n) => ({ read: true, state: n.state === "archived" ? n.state : "read" }));
      break;
    case "notifications_seen":
      update(p.notificationIds, (n) => ({ state: n.state === "unseen" ? "seen" : n.state }));
      break;
    case "notifications_archived":
      update(p.notificationIds, () => ({ state: "archived" }));
      break;
  }
});

$("send").addEventListener("submit", async (e) => {
  e.preventDefault();
  const form = new FormData(e.target);
  await api("POST", "/api/notifications", {
    userId: user,
    type: form.get("type") || "demo.message",
    priority: form.get("priority"),
    title: form.get("title"),
    body: form.get("body") || "",
  });
  e.target.elements.title.value = "";
});
$("read-all").addEventListener("click", () => mark("mark_all_read", null));
$("filter").addEventListener("change", () => load());
$("more").addEventListener("click", () => older());
$("bell").addEventListener("click", () => {
  const unseen = state.order.filter((id) => state.items.get(id)?.state === "unseen");
  if (unseen.length) mark("mark_seen", unseen.slice(0, 1000));
});

// -- Web Push, where the browser offers it ---------------------------------------------

function applicationServerKey(base64url) {
  const raw = atob(base64url.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (base64url.length % 4)) % 4));
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

async function enablePush() {
  const shown = $("push-state");
  try {
    if ((await Notification.requestPermission()) !== "granted") throw new Error("permission not granted");
    const registration = await navigator.serviceWorker.register("/static/notifications-sw.js");
    await navigator.serviceWorker.ready;
    const { publicKey } = await api("GET", "/api/notifications/vapid-key");
    const subscription = await registration.pushManager.subscribe({
      userVisibleOnly: true,
      applicationServerKey: applicationServerKey(publicKey),
    });
    await api("POST", "/api/notifications/push-subscriptions", subscription.toJSON());
    state.push = "on";
    shown.textContent = "push is on for this device";
  } catch (err) {
    state.push = `unavailable: ${err.message}`;
    shown.textContent = `push unavailable here (${err.message})`;
  }
}

if ("serviceWorker" in navigator && "PushManager" in window && "Notification" in window) {
  $("enable-push").hidden = false;
  $("enable-push").addEventListener("click", enablePush);
  state.push = "offered";
} else {
  state.push = "not offered";
  $("push-state").textContent = "this browser offers no Web Push";
}

client.connect();
