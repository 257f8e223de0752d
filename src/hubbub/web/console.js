// The protocol console: drive a connection by hand and watch every frame pass.
import { Client, devToken, pageUrl } from "/static/hubbub.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const state = { client: null, received: [], frames: 0 };
window.__hubbub = state;

function log(kind, text) {
  const line = document.createElement("div");
  line.className = kind;
  line.textContent = `${new Date().toISOString().slice(11, 23)} ${kind === "out" ? "→" : kind === "in" ? "←" : "•"} ${text}`;
  const box = $("log");
  box.append(line);
  while (box.childElementCount > 500) box.firstElementChild.remove();
  box.scrollTop = box.scrollHeight;
}

async function connect(user) {
  state.client?.close();
  const client = new Client(pageUrl(), { token: () => devToken(location.origin, user) });
  state.client = client;
  client.on("frame", ({ direction, frame }) => {
    state.frames += 1;
    log(direction, JSON.stringify(frame));
  });
  client.on("state", ({ state: s }) => {
    $("state").textContent = s;
    $("state").className = `pill ${s}`;
  });
  client.on("message", (event) => {
    if (event.type === "message") state.received.push({ channel: event.channel, seq: event.seq, data: event.data });
  });
  client.on("reset", (e) => log("note", `reset ${e.channel}: reload (recovered: false)`));
  client.on("recoveryfailed", (e) => log("note", `lost ${e.channel} ${e.fromSeq}..${e.toSeq}`));
  await client.connect();
  $("user").textContent = client.userId;
  state.ready = true;
}

const run = (fn) => fn().catch((err) => log("note", `error: ${err.message}`));
$("connect").onsubmit = (e) => { e.preventDefault(); run(() => connect($("userInput").value)); };
$("disconnect").onclick = () => state.client?.close();
$("subscribe").onsubmit = (e) => { e.preventDefault(); run(() => state.client.subscribe($("channel").value)); };
$("unsubscribe").onclick = () => run(() => state.client.unsubscribe($("channel").value));
$("history").onclick = () => run(async () => {
  const h = await state.client.history($("channel").value, { limit: 50 });
  log("note", `history of ${h.channel}: ${h.events.length} events, newest seq ${h.seq}`);
});
$("publish").onsubmit = (e) => {
  e.preventDefault();
  run(async () => {
    const seq = await state.client.publish($("channel").value, JSON.parse($("data").value));
    log("note", `published as seq ${seq}`);
  });
};

if (params.get("user")) $("userInput").value = params.get("user");
run(() => connect($("userInput").value));
