// A small line chart on a plain canvas: title and value are HTML, axes and line are drawn.

const WINDOW_S = 60;

function niceMax(value) {
  if (value <= 0) return 1;
  const magnitude = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 4, 8, 10]) {
    if (step * magnitude >= value) return step * magnitude;
  }
  return 10 * magnitude;
}

function format(value) {
  if (value >= 1000) return `${(value / 1000).toFixed(value >= 10000 ? 0 : 1)}k`;
  return String(Number(value.toFixed(2)));
}

/** A live line chart of the last minute of `{t, value}` points. */
export class LineChart {
  constructor(canvas, { color = "#2563eb" } = {}) {
    this.canvas = canvas;
    this.color = color;
    this.points = [];
  }

  add(t, value) {
    this.points.push({ t, value });
    const oldest = t - WINDOW_S * 1000;
    while (this.points.length && this.points[0].t < oldest) this.points.shift();
    this.draw(t);
  }

  draw(now) {
    const canvas = this.canvas;
    const ratio = window.devicePixelRatio || 1;
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    canvas.width = width * ratio;
    canvas.height = height * ratio;
    const ctx = canvas.getContext("2d");
    ctx.scale(ratio, ratio);
    const left = 44, right = 16, top = 8, bottom = 22;
    const plotW = width - left - right, plotH = height - top - bottom;
    const max = niceMax(Math.max(0, ...this.points.map((p) => p.value)) * 1.1);
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#5b6475";
    ctx.strokeStyle = "#e3e7ee";
    ctx.lineWidth = 1;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const y = top + plotH - (plotH * i) / 4;
      ctx.beginPath();
      ctx.moveTo(left, Math.round(y) + 0.5);
      ctx.lineTo(left + plotW, Math.round(y) + 0.5);
      ctx.stroke();
      ctx.fillText(format((max * i) / 4), left - 6, y);
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let s = 0; s <= WINDOW_S; s += 15) {
      const x = left + plotW - (plotW * s) / WINDOW_S;
      ctx.fillText(s === 0 ? "now" : `-${s}s`, x, top + plotH + 6);
    }
    ctx.strokeStyle = "#9aa3b2";
    ctx.beginPath();
    ctx.moveTo(left + 0.5, top);
    ctx.lineTo(left + 0.5, top + plotH + 0.5);
    ctx.lineTo(left + plotW, top + plotH + 0.5);
    ctx.stroke();
    if (!this.points.length) return;
    const x = (t) => left + plotW - (plotW * (now - t)) / (WINDOW_S * 1000);
    const y = (v) => top + plotH - (plotH * v) / max;
    ctx.strokeStyle = this.color;
    ctx.lineWidth = 2;
    ctx.beginPath();
    this.points.forEach((p, i) => (i ? ctx.lineTo(x(p.t), y(p.value)) : ctx.moveTo(x(p.t), y(p.value))));
    ctx.stroke();
    const last = this.points[this.points.length - 1];
    ctx.fillStyle = this.color;
    ctx.beginPath();
    ctx.arc(x(last.t), y(last.value), 3, 0, 2 * Math.PI);
    ctx.fill();
  }
}
