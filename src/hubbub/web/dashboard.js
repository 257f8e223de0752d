// The live dashboard: the server's figures on metrics:* channels (keep-last-value, conflation).
import { Backoff, Client, devToken, pageUrl } from "/static/hubbub.js";
import { LineChart } from "/static/chart.js";

const FIGURES = [
  { name: "connections", title: "Connections", unit: "", color: "#2563eb" },
  { name: "messages_in", title: "Messages in", unit: "/s", color: "#0891b2" },
  { name: "messages_out", title: "Messages out", unit: "/s", color: "#7c3aed" },
  { name: "cpu", title: "CPU", unit: "%", color: "#dc2626" },
  { name: "memory", title: "Memory (RSS)", unit: "MiB", color: "#059669" },
  { name: "loop_lag", title: "Event-loop lag", unit: "ms", color: "#d97706" },
];

const params = new URLSearchParams(location.search);
const user = params.get("user") || `dashboard-${Math.random().toString(36).slice(2, 8)}`;
// ?reconnectDelay=ms waits that long before each reconnect (to watch recovery at work).
const fixedDelay = params.get("reconnectDelay");
const backoff = fixedDelay ? { compute: () => Number(fixedDelay) } : new Backoff();

const state = {
  userId: user,
  seqs: {},
  values: {},
  recovered: [],
  resets: [],
  state: "idle",
  reconnects: 0,
};
window.__hubbub = state;

const grid = document.getElementById("grid");
const cards = {};
for (const figure of FIGURES) {
  const card = document.createElement("section");
  card.className = "card";
  card.innerHTML = `<h2>${figure.title}</h2>
    <div class="value"><span data-value>–</span><span class="unit">${figure.unit}</span></div>
    <canvas></canvas>`;
  grid.append(card);
  cards[figure.name] = {
    value: card.querySelector("[data-value]"),
    chart: new LineChart(card.querySelector("canvas"), { color: figure.color }),
  };
  state.seqs[`metrics:${figure.name}`] = [];
}

function show(name, envelope) {
  const data = envelope.payload?.data ?? envelope.data;
  if (!data) return;
  const card = cards[name];
  state.values[name] = data.value;
  card.value.textContent = String(data.value);
  card.chart.add(data.t ?? envelope.ts ?? Date.now(), data.value);
  document.getElementById("node").textContent = data.node ?? "–";
}

const client = new Client(pageUrl(), { token: () => devToken(location.origin, user), backoff });
state.client = client;
client.on("state", ({ state: s }) => {
  state.state = s;
  const pill = document.getElementById("state");
  pill.textContent = s;
  pill.className = `pill ${s}`;
});
client.on("connected", () => {
  state.reconnects = client.reconnects;
  document.getElementById("reconnects").textContent = client.reconnects;
});
client.on("frame", ({ direction, frame }) => {
  if (direction === "in" && frame.type === "subscribed" && frame.payload.recovered) {
    state.recovered.push(frame.payload.channel);
    document.getElementById("recoveries").textContent = state.recovered.length;
  }
});
client.on("reset", (event) => {
  state.resets.push(event.channel);
  document.getElementById("resets").textContent = state.resets.length;
  if (event.lastValue) show(event.channel.split(":")[1], event.lastValue);
});
client.on("message", (event) => {
  if (!event.channel?.startsWith("metrics:") || event.type !== "message") return;
  state.seqs[event.channel].push(event.seq);
  show(event.channel.slice("metrics:".length), event);
});

await client.connect();
const subs = await client.subscribe(...FIGURES.map((f) => `metrics:${f.name}`));
for (const [channel, sub] of Object.entries(subs)) {
  state.seqs[channel].push(...(sub.lastValue ? [sub.lastValue.seq] : []));
  if (sub.lastValue) show(channel.slice("metrics:".length), sub.lastValue);
}
state.ready = true;
