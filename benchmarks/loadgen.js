'use strict';
// Load generator of the Hubbub benchmark suite (benchmarks/run.py starts it).
//
// One Node.js process, meant to be pinned to its own CPU (`taskset -c 1`) while the server under
// test runs on CPU 0. Its WebSocket client is RawWs below (--client raw, the default: a minimal
// RFC 6455 client, cheaper per message) or the `ws` package with bufferutil (--client ws); no
// permessage-deflate either way. It speaks three protocols, so that Hubbub and the reference
// peers are driven by the same code:
//
//   --proto hubbub  the Hubbub wire protocol (docs/protocol.md): JWT in `Authorization: Bearer`,
//                   `welcome`, `subscribe`/`subscribed`, `publish`/`published`, `ping`/`pong`,
//                   `message` events with `channel` and `seq`, presence events.
//   --proto raw     the bare broadcast hubs of ../shared/peers/servers: a text frame starting with
//                   {"type":"pub" goes to every client, anything else is echoed.
//   --proto sio     the same over Socket.IO v5 / Engine.IO v4 (python-socketio peer).
//
// Modes (each prints "PHASE <name> <json>" lines and ends with one "RESULT <json>" line):
//   fanout    --subs N --rates 0,5,50 [--window 32] [--rate-window 2000]
//             N subscribers on one channel and one publisher. Rate 0: publish k is sent only when
//             every subscriber has received k - window ("max"); rate R: R publishes per second
//             ("rateR"). Reports deliveries/s and end-to-end latency (publisher timestamp in the
//             payload vs. receive time, one process clock), gaps, losses.
//   echo      --conns 1,100 [--op ping|publish]
//             one request in flight per connection; Hubbub: `ping` -> `pong` (or `publish` ->
//             `published` on a channel of its own); peers: echo.
//   idle      --conns N: open N connections (Hubbub: each authenticated, subscribed to its
//             `user:` channel and --channel), print "PHASE connected", hold until a line arrives
//             on stdin (the orchestrator reads the server's RSS meanwhile).
//   recovery  --conns N [--missed 20] [--drop api|client]: N clients on one channel; all are
//             dropped at once (api: POST /api/users/{id}/disconnect for every client, all in
//             flight together; client: the sockets are cut) while the publisher sends --missed
//             events; each client reconnects at once and resubscribes with `since`. Reports the
//             time until every client has recovered every event.
//   presence  --conns N: one observer joins a channel with presence on, then N - 1 more members
//             join; reports the time until the observer has seen every `presence.join`, and
//             checks `presence.get`.
//
// Tokens (Hubbub): --tokens FILE, JSON {"users": [...], "tokens": [...], "publisher": {...}}
// written by the orchestrator (signed with PyJWT); connection i uses tokens[i].

const WebSocket = require('ws');
const http = require('http');
const net = require('net');
const crypto = require('crypto');
const fs = require('fs');
const { EventEmitter } = require('events');
const { performance } = require('perf_hooks');

// ---------------------------------------------------------------- arguments
const args = {};
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a.startsWith('--')) {
    const k = a.slice(2);
    const v = process.argv[i + 1];
    if (v === undefined || v.startsWith('--')) args[k] = true; else { args[k] = v; i++; }
  }
}
const num = (v, d) => (v === undefined || v === true ? d : Number(v));
const list = (v, d) => String(v === undefined ? d : v).split(',').filter((s) => s !== '').map(Number);

const MODE = args.mode || 'fanout';
const URL_ = args.url || 'ws://127.0.0.1:8000/ws';
const PROTO = args.proto || 'hubbub';
const HTTP_BASE = args.http || '';
const API_KEY = args['api-key'] || '';
const CHANNEL = args.channel || 'bench:fanout';
const SUBS = num(args.subs, 1000);
const CONNS = list(args.conns, MODE === 'echo' ? '1,100' : '1000');
const WINDOW = num(args.window, 32);
const RATE_WINDOW = num(args['rate-window'], 2000);
const RATES = list(args.rates, '0');
const WARMUP = num(args.warmup, 2) * 1000;
const DURATION = num(args.duration, 8) * 1000;
const DRAIN = num(args.drain, 3) * 1000;
const HOLD = num(args.hold, 60) * 1000;
const SIZE = num(args.size, 100);          // bytes of the application object that is published
const CONC = num(args.conc, 200);          // handshakes in flight while connecting
const STALL = num(args.stall, 5) * 1000;   // no progress for this long = stall
const TIMEOUT = num(args.timeout, 60) * 1000;
const LAT_CAP = num(args.latcap, 4000000);
const SRC_ADDRS = num(args['src-addrs'], 1);  // spread connections over 127.0.0.1..N
const MISSED = num(args.missed, 20);
const DROP = args.drop || 'api';
const OP = args.op || 'ping';
const RECOVERY_LIMIT = num(args['recovery-limit'], 60) * 1000;
const CLIENT = args.client || 'raw';       // raw: the minimal client below; ws: the `ws` package

const TOKENS = args.tokens ? JSON.parse(fs.readFileSync(args.tokens, 'utf8')) : null;
if (PROTO === 'hubbub' && !TOKENS) { console.error('--tokens FILE is required with --proto hubbub'); process.exit(2); }

const nowMs = () => performance.now();
const nowUs = () => Math.round(performance.now() * 1000);
const out = (s) => process.stdout.write(s + '\n');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const cpuNow = () => { const u = process.cpuUsage(); return (u.user + u.system) / 1e6; };

let errors = 0;
let lastError = null;
let closedUnexpectedly = 0;
let closeCodes = {};
let shuttingDown = false;
const allConns = new Set();

const hardTimer = setTimeout(() => {
  out('RESULT ' + JSON.stringify({ mode: MODE, error: 'hard timeout', errors, last_error: lastError }));
  process.exit(2);
}, TIMEOUT);

// ---------------------------------------------------------------- frames
const K_KEY = Buffer.from('"k":');
const T0_KEY = Buffer.from('"t0":');
const SEQ_KEY = Buffer.from('"seq":');
const MSG_PREFIX = Buffer.from('{"type":"message"');
const SEQ_AT = `{"type":"message","channel":"${CHANNEL}","seq":`.length;
const JOIN_PREFIX = Buffer.from('{"type":"presence.join"');
const PRESENCE_PREFIX = Buffer.from('{"type":"presence",');
function intAfter(buf, key, from) {
  let i = buf.indexOf(key, from || 0);
  if (i < 0) return -1;
  i += key.length;
  while (buf[i] === 0x20) i++;
  let n = 0, c, any = false;
  while ((c = buf[i]) >= 48 && c <= 57) { n = n * 10 + (c - 48); i++; any = true; }
  return any ? n : -1;
}
// digits at buf[i...]; the index after them is left in intEnd
let intEnd = 0;
function intAt(buf, i) {
  let n = 0, c;
  const start = i;
  while ((c = buf[i]) >= 48 && c <= 57) { n = n * 10 + (c - 48); i++; }
  intEnd = i;
  return i > start ? n : -1;
}
const startsWith = (buf, p) => buf.length >= p.length && buf.compare(p, 0, p.length, 0, p.length) === 0;

// The application object every protocol carries is `{"k":K,"t0":T,"pad":"..."}`, padded to SIZE
// bytes (the raw peers get the same object with a leading "type":"pub").
function padFor(probe) { return 'x'.repeat(Math.max(0, SIZE - probe.length)); }
const PAD_DATA = padFor('{"k":123456,"t0":12345678901,"pad":""}');
const PAD_RAW = padFor('{"type":"pub","k":123456,"t0":12345678901,"pad":""}');
const PAD_ECHO_RAW = padFor('{"type":"echo","k":123456,"t0":12345678901,"pad":""}');
const PAD_PING = padFor('{"type":"ping","id":"123456","payload":{"pad":""}}');

function pubFrame(k, t0, id) {
  if (PROTO === 'hubbub') {
    return `{"type":"publish","id":"${id}","payload":{"channel":"${CHANNEL}","data":{"k":${k},"t0":${t0},"pad":"${PAD_DATA}"}}}`;
  }
  if (PROTO === 'sio') return `42["pub",{"k":${k},"t0":${t0},"pad":"${PAD_DATA}"}]`;
  return `{"type":"pub","k":${k},"t0":${t0},"pad":"${PAD_RAW}"}`;
}
function echoFrame(c, seq) {
  if (PROTO === 'hubbub') {
    if (OP === 'publish') {
      return `{"type":"publish","id":"${seq}","payload":{"channel":"bench:echo.${c.idx}","data":{"k":${seq},"t0":0,"pad":"${PAD_DATA}"}}}`;
    }
    return `{"type":"ping","id":"${seq}","payload":{"pad":"${PAD_PING}"}}`;
  }
  if (PROTO === 'sio') return `42["echo",{"k":${seq},"t0":0,"pad":"${PAD_DATA}"}]`;
  return `{"type":"echo","k":${seq},"t0":0,"pad":"${PAD_ECHO_RAW}"}`;
}

class Lat {
  constructor(cap) { this.a = new Float64Array(cap); this.n = 0; this.dropped = 0; }
  reset() { this.n = 0; this.dropped = 0; }
  add(v) { if (this.n < this.a.length) this.a[this.n++] = v; else this.dropped++; }
  summary() {
    if (this.n === 0) return null;
    const s = this.a.slice(0, this.n).sort();
    const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
    let sum = 0; for (let i = 0; i < s.length; i++) sum += s[i];
    // microseconds in, milliseconds out
    return { n: s.length, p50_ms: q(0.5) / 1000, p90_ms: q(0.9) / 1000, p99_ms: q(0.99) / 1000,
      p999_ms: q(0.999) / 1000, max_ms: s[s.length - 1] / 1000, mean_ms: sum / s.length / 1000 };
  }
}

// ---------------------------------------------------------------- minimal WebSocket client
// RawWs: the client side of RFC 6455 on a plain net.Socket, just what a benchmark needs: the
// opening handshake (with extra headers), unmasked server frames of any length (fragmented
// messages are reassembled), ping -> pong, close, and text frames out. It hands every message to
// `onMessage(buffer)` as a view into the socket's chunk (no copy, no event emitter), which makes
// it cheaper per message than the `ws` package (~15 % less CPU); --client ws switches to `ws` to
// cross-check. Frames out are masked with a zero key (allowed by RFC 6455 section 5.3; a
// benchmark on loopback has no proxy to protect).
class RawWs extends EventEmitter {
  constructor(url, opts) {
    super();
    const u = new URL(url);
    this.readyState = 0;
    this.onMessage = null;
    this.closeCode = 1006;
    this.buf = null;
    this.frags = null;
    this.handshaking = true;
    this.key = crypto.randomBytes(16).toString('base64');
    let req = `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${this.key}\r\nSec-WebSocket-Version: 13\r\n`;
    for (const [k, v] of Object.entries(opts.headers || {})) req += `${k}: ${v}\r\n`;
    req += '\r\n';
    const sock = net.connect({ host: u.hostname, port: Number(u.port || 80), localAddress: opts.localAddress });
    this.sock = sock;
    sock.setNoDelay(true);
    sock.on('connect', () => sock.write(req));
    sock.on('data', (chunk) => (this.handshaking ? this._handshake(chunk) : this._frames(chunk)));
    sock.on('error', (e) => this.emit('error', e));
    sock.on('close', () => { clearTimeout(this.timer); this.readyState = 3; this.emit('close', this.closeCode); });
    this.timer = setTimeout(() => {
      if (this.handshaking) { this.emit('error', new Error('handshake timeout')); sock.destroy(); }
    }, opts.handshakeTimeout || 30000);
  }
  _handshake(chunk) {
    this.buf = this.buf ? Buffer.concat([this.buf, chunk]) : chunk;
    const end = this.buf.indexOf('\r\n\r\n');
    if (end < 0) return;
    const head = this.buf.toString('latin1', 0, end);
    const rest = this.buf.subarray(end + 4);
    this.buf = null;
    const accept = crypto.createHash('sha1').update(this.key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
    if (!head.startsWith('HTTP/1.1 101') || !head.includes(accept)) {
      this.emit('error', new Error('handshake refused: ' + head.split('\r\n')[0]));
      this.sock.destroy();
      return;
    }
    this.handshaking = false;
    clearTimeout(this.timer);
    this.readyState = 1;
    this.emit('open');
    if (rest.length) this._frames(rest);
  }
  _frames(chunk) {
    let buf = chunk;
    if (this.buf !== null) { buf = Buffer.concat([this.buf, chunk]); this.buf = null; }
    const n = buf.length;
    let i = 0;
    while (n - i >= 2) {
      const b0 = buf[i], b1 = buf[i + 1];
      let len = b1 & 0x7f, off = 2;
      if (len === 126) { if (n - i < 4) break; len = buf.readUInt16BE(i + 2); off = 4; }
      else if (len === 127) { if (n - i < 10) break; len = Number(buf.readBigUInt64BE(i + 2)); off = 10; }
      const masked = (b1 & 0x80) !== 0;
      if (masked) off += 4;
      if (n - i < off + len) break;
      let payload = buf.subarray(i + off, i + off + len);
      if (masked) {                 // servers must not mask; unmask anyway
        const m = buf.subarray(i + off - 4, i + off);
        payload = Buffer.from(payload);
        for (let j = 0; j < payload.length; j++) payload[j] ^= m[j & 3];
      }
      i += off + len;
      const op = b0 & 0x0f;
      if (op === 0x1 || op === 0x2) {
        if (b0 & 0x80) { if (this.onMessage) this.onMessage(payload); }
        else this.frags = [Buffer.from(payload)];
      } else if (op === 0x0) {
        if (this.frags) this.frags.push(Buffer.from(payload));
        if ((b0 & 0x80) && this.frags) {
          const whole = Buffer.concat(this.frags);
          this.frags = null;
          if (this.onMessage) this.onMessage(whole);
        }
      } else if (op === 0x9) {
        this._frame(0xA, payload);
      } else if (op === 0x8) {
        this.closeCode = len >= 2 ? payload.readUInt16BE(0) : 1005;
        if (this.readyState === 1) this._frame(0x8, payload.subarray(0, Math.min(2, len)));
        this.readyState = 2;
        this.sock.end();
        return;
      }
    }
    if (i < n) this.buf = Buffer.from(buf.subarray(i));
  }
  _frame(op, payload) {
    const len = payload.length;
    let h;
    if (len < 126) { h = Buffer.alloc(6); h[1] = 0x80 | len; }
    else if (len < 65536) { h = Buffer.alloc(8); h[1] = 0x80 | 126; h.writeUInt16BE(len, 2); }
    else { h = Buffer.alloc(14); h[1] = 0x80 | 127; h.writeBigUInt64BE(BigInt(len), 2); }
    h[0] = 0x80 | op;             // FIN + opcode; the mask key stays 0, so the payload is as is
    this.sock.write(Buffer.concat([h, payload]));
  }
  send(text) { if (this.readyState === 1) this._frame(0x1, Buffer.from(text)); }
  close(code) {
    if (this.readyState !== 1) return;
    const b = Buffer.alloc(2); b.writeUInt16BE(code || 1000, 0);
    this._frame(0x8, b);
    this.readyState = 2;
  }
  terminate() { this.readyState = 3; this.sock.destroy(); }
}

// ---------------------------------------------------------------- connections
function tokenOf(idx) {
  return idx < 0 ? TOKENS.publisher.token : TOKENS.tokens[idx];
}
function userOf(idx) {
  if (!TOKENS) return String(idx);
  return idx < 0 ? TOKENS.publisher.user : TOKENS.users[idx];
}

// Opens one connection. `o.channels`: channels to subscribe to once welcomed (Hubbub);
// `o.since`: {channel: {seq, epoch}}; `o.onReady(c)` after the last `subscribed` (or open for the
// raw protocol); `o.onFail(c, why)`; `o.onMsg(c, buffer)` for every later frame; `o.onClose(c, code)`.
function openConn(idx, o) {
  const opts = { perMessageDeflate: false, handshakeTimeout: 30000, skipUTF8Validation: true };
  if (PROTO === 'hubbub') opts.headers = { Authorization: 'Bearer ' + tokenOf(idx) };
  if (SRC_ADDRS > 1) opts.localAddress = `127.0.0.${1 + (Math.abs(idx) % SRC_ADDRS)}`;
  const ws = CLIENT === 'raw' ? new RawWs(URL_, opts) : new WebSocket(URL_, opts);
  const c = o.conn || { idx, user: userOf(idx), last: -1, gaps: 0, hubLast: -1, hubGaps: 0, sentAt: 0, seq: 0 };
  c.ws = ws; c.ready = false; c.failed = false; c.closed = false; c.pending = null;
  allConns.add(c);
  const ready = () => { c.ready = true; o.onReady && o.onReady(c); };
  const fail = (why) => { if (!c.ready && !c.failed) { c.failed = true; o.onFail && o.onFail(c, why); } };
  ws.on('open', () => { if (PROTO === 'raw') ready(); });
  const onData = (data) => {
    if (PROTO === 'sio' && data.length === 1 && data[0] === 0x32) { ws.send('3'); return; }  // ping
    if (c.ready) { o.onMsg && o.onMsg(c, data); return; }
    if (PROTO === 'sio') {
      const t = data[0];
      if (t === 0x30) { ws.send('40'); return; }            // engine.io OPEN -> connect "/"
      if (t === 0x32) { ws.send('3'); return; }             // engine.io PING -> PONG
      if (t === 0x34 && data[1] === 0x30) ready();          // "40" CONNECT ack
      return;
    }
    let m;
    try { m = JSON.parse(data); } catch (e) { return; }
    if (m.type === 'welcome') {
      const chans = o.channels || [];
      if (chans.length === 0) { ready(); return; }
      c.pending = new Set(chans);
      const payload = { channels: chans };
      if (o.since) payload.since = o.since;
      ws.send(JSON.stringify({ type: 'subscribe', id: 'sub', payload }));
    } else if (m.type === 'subscribed' && c.pending && c.pending.has(m.payload.channel)) {
      c.pending.delete(m.payload.channel);
      c.subscribed = m.payload;
      if (c.pending.size === 0) ready();
    } else if (m.type === 'error') {
      fail('error ' + JSON.stringify(m.payload));
    }
  };
  if (CLIENT === 'raw') ws.onMessage = onData; else ws.on('message', onData);
  ws.on('error', (e) => { errors++; lastError = String((e && e.message) || e); });
  ws.on('close', (code) => {
    c.closed = true;
    allConns.delete(c);
    closeCodes[code] = (closeCodes[code] || 0) + 1;
    if (!c.ready) { fail('closed ' + code); return; }
    if (o.onClose) o.onClose(c, code);
    else if (!shuttingDown) closedUnexpectedly++;
  });
  return c;
}

// Opens connections for `idxs` with at most CONC handshakes in flight.
function connectMany(idxs, o, limitMs) {
  return new Promise((resolve) => {
    const conns = [];
    let started = 0, ok = 0, failed = 0, finished = false;
    const t0 = nowMs();
    const finish = () => {
      if (finished) return; finished = true;
      clearTimeout(timer);
      resolve({ conns: conns.filter((c) => c.ready), ok, failed, secs: (nowMs() - t0) / 1000 });
    };
    const timer = setTimeout(finish, limitMs || 50000);
    const check = () => { if (ok + failed >= idxs.length) finish(); else pump(); };
    const pump = () => {
      while (started < idxs.length && started - ok - failed < CONC) {
        conns.push(openConn(idxs[started++], {
          ...o,
          onReady: (c) => { ok++; if (o.onReady) o.onReady(c); check(); },
          onFail: (c, why) => { failed++; lastError = why; check(); },
        }));
      }
    };
    if (idxs.length === 0) finish(); else pump();
  });
}
const range = (a, b) => { const r = []; for (let i = a; i < b; i++) r.push(i); return r; };

function finishAndExit(result) {
  clearTimeout(hardTimer);
  result.errors = errors; result.last_error = lastError;
  result.closed_unexpectedly = closedUnexpectedly; result.close_codes = closeCodes;
  result.client = CLIENT === 'raw' ? `node ${process.version}, minimal RFC 6455 client (loadgen.js RawWs)`
    : `node ${process.version}, ws ${require('ws/package.json').version} + bufferutil`;
  out('RESULT ' + JSON.stringify(result));
  shuttingDown = true;
  for (const c of allConns) { try { c.ws.terminate(); } catch (e) { /* ignore */ } }
  setTimeout(() => process.exit(0), 300);
}

// ---------------------------------------------------------------- fan-out
async function fanout() {
  const RING = 1 << 17, MASK = RING - 1;
  const recvCount = new Uint32Array(RING);
  let doneThrough = -1;           // every k <= doneThrough was received by all subscribers
  let nextK = 0;
  let publishing = false;
  let window = WINDOW;
  let measuring = false;
  let delivered = 0, deliveredMeasure = 0, publishedMeasure = 0, answers = 0;
  let lastProgress = nowMs();
  let nSubs = 0;
  let pub = null;
  const lat = new Lat(LAT_CAP);

  const onSubMsg = (c, data) => {
    let from = 0;
    if (PROTO === 'hubbub') {
      // {"type":"message","channel":"<CHANNEL>","seq":N,"ts":...,"payload":{"data":{"k":K,"t0":T
      if (data[SEQ_AT - 1] !== 0x3a || !startsWith(data, MSG_PREFIX)) return;
      const seq = intAt(data, SEQ_AT);
      if (c.hubLast >= 0 && seq !== c.hubLast + 1) c.hubGaps++;
      c.hubLast = seq;
      from = intEnd;
    }
    const ki = data.indexOf(K_KEY, from);
    if (ki < 0) return;
    const k = intAt(data, ki + 4);
    delivered++;
    if (measuring) {
      deliveredMeasure++;
      // the application object is {"k":K,"t0":T,...}: t0 follows k
      const t0 = data[intEnd + 1] === 0x22 && data[intEnd + 2] === 0x74 ? intAt(data, intEnd + 6) : intAfter(data, T0_KEY, from);
      lat.add(nowUs() - t0);
    }
    if (k !== c.last + 1) c.gaps++;
    c.last = k;
    if (++recvCount[k & MASK] === nSubs && k === doneThrough + 1) {
      let s = k;
      while (recvCount[s & MASK] === nSubs) { recvCount[s & MASK] = 0; s++; }
      doneThrough = s - 1;
      lastProgress = nowMs();
      if (rate === 0) pumpMax();
    }
  };
  const onPubMsg = (c, data) => { if (PROTO === 'hubbub') answers++; };
  const sendPub = () => {
    pub.ws.send(pubFrame(nextK, nowUs(), nextK));
    nextK++;
    if (measuring) publishedMeasure++;
  };
  let rate = 0;
  const pumpMax = () => { while (publishing && nextK <= doneThrough + window) sendPub(); };

  const chans = PROTO === 'hubbub' ? [CHANNEL] : [];
  const subsRes = await connectMany(range(0, SUBS), { channels: chans, onMsg: onSubMsg });
  nSubs = subsRes.conns.length;
  const pubRes = await connectMany([-1], { channels: [], onMsg: onPubMsg });
  if (pubRes.conns.length !== 1 || nSubs !== SUBS) {
    return finishAndExit({ mode: 'fanout', error: 'connect failed', subs_ok: nSubs, subs_failed: subsRes.failed });
  }
  pub = pubRes.conns[0];
  out('PHASE connected ' + JSON.stringify({ subs: nSubs, secs: subsRes.secs }));
  await sleep(300);

  const phases = [];
  for (const r of RATES) {
    rate = r;
    const label = r === 0 ? 'max' : `rate${r}`;
    window = r === 0 ? WINDOW : RATE_WINDOW;
    lat.reset(); deliveredMeasure = 0; publishedMeasure = 0;
    let maxBehind = 0, stalled = false, sentSched = 0;
    const k0 = nextK;
    publishing = true;
    lastProgress = nowMs();
    const tStart = nowMs();
    let rateTimer = null;
    if (r > 0) {
      rateTimer = setInterval(() => {
        const due = Math.floor((nowMs() - tStart) * r / 1000) + 1;
        while (sentSched < due && nextK <= doneThrough + window && publishing) { sendPub(); sentSched++; }
        if (due - sentSched > maxBehind) maxBehind = due - sentSched;
      }, 1);
    } else {
      pumpMax();
    }
    const stallTimer = setInterval(() => {
      if (publishing && nowMs() - lastProgress > STALL) stalled = true;
    }, 100);
    await sleep(WARMUP);
    maxBehind = 0;
    const cpu0 = cpuNow();
    const tm0 = nowMs();
    measuring = true;
    out('PHASE measure_start ' + JSON.stringify({ label }));
    while (nowMs() - tm0 < DURATION && !stalled) await sleep(20);
    measuring = false;
    const tm1 = nowMs();
    out('PHASE measure_end ' + JSON.stringify({ label }));
    const cpu1 = cpuNow();
    publishing = false;
    if (rateTimer) clearInterval(rateTimer);
    const td0 = nowMs();
    while (doneThrough < nextK - 1 && nowMs() - td0 < DRAIN) await sleep(10);
    clearInterval(stallTimer);
    const secs = (tm1 - tm0) / 1000;
    const missing = (nextK - 1 - doneThrough);
    phases.push({
      label, rate_target: r, window, measure_secs: secs,
      delivered_per_s: deliveredMeasure / secs, publishes_per_s: publishedMeasure / secs,
      published: nextK - k0, missing_publishes_after_drain: missing, drain_secs: (nowMs() - td0) / 1000,
      stalled, max_behind_schedule: maxBehind, client_cpu_util: (cpu1 - cpu0) / secs,
      latency: lat.summary(), lat_dropped: lat.dropped,
    });
    if (missing > 0 || stalled) break;   // the window cannot be trusted any more
  }
  let gaps = 0, hubGaps = 0;
  for (const c of subsRes.conns) { gaps += c.gaps; hubGaps += c.hubGaps; }
  finishAndExit({
    mode: 'fanout', proto: PROTO, subs: nSubs, subs_failed: subsRes.failed, connect_secs: subsRes.secs,
    connects_per_s: nSubs / subsRes.secs, delivered_total: delivered, published_total: nextK,
    publish_answers: answers, gaps, seq_gaps: hubGaps, phases,
  });
}

// ---------------------------------------------------------------- echo
async function echo() {
  const maxConns = Math.max(...CONNS);
  let running = false, measuring = false, done = 0, inflight = 0;
  const lat = new Lat(LAT_CAP);
  const send = (c) => { c.sentAt = nowMs(); inflight++; c.ws.send(echoFrame(c, c.seq++)); };
  const onMsg = (c, data) => {
    if (PROTO === 'sio' && data[0] !== 0x34) return;
    if (c.sentAt === 0) return;
    const t = nowMs();
    inflight--;
    if (measuring) { done++; lat.add((t - c.sentAt) * 1000); }
    c.sentAt = 0;
    if (running && c.active) send(c);
  };
  const res = await connectMany(range(0, maxConns), { channels: [], onMsg });
  if (res.conns.length !== maxConns) return finishAndExit({ mode: 'echo', error: 'connect failed', failed: res.failed });
  out('PHASE connected ' + JSON.stringify({ conns: res.conns.length, secs: res.secs }));
  await sleep(200);
  const phases = [];
  for (const n of CONNS) {
    const label = `c${n}`;
    const active = res.conns.slice(0, n);
    for (const c of res.conns) c.active = false;
    for (const c of active) c.active = true;
    lat.reset(); done = 0;
    running = true;
    for (const c of active) send(c);
    await sleep(WARMUP);
    const cpu0 = cpuNow();
    const t0 = nowMs();
    measuring = true;
    out('PHASE measure_start ' + JSON.stringify({ label }));
    await sleep(DURATION);
    measuring = false;
    const t1 = nowMs();
    out('PHASE measure_end ' + JSON.stringify({ label }));
    const cpu1 = cpuNow();
    running = false;
    const td0 = nowMs();
    while (inflight > 0 && nowMs() - td0 < DRAIN) await sleep(5);
    const secs = (t1 - t0) / 1000;
    phases.push({ label, conns: n, op: PROTO === 'hubbub' ? OP : 'echo', measure_secs: secs,
      msgs_per_s: done / secs, lost_inflight: inflight, client_cpu_util: (cpu1 - cpu0) / secs,
      latency: lat.summary() });
    if (inflight > 0) break;
  }
  finishAndExit({ mode: 'echo', proto: PROTO, conns: res.conns.length, phases });
}

// ---------------------------------------------------------------- idle
async function idle() {
  const n = CONNS[0];
  const chans = PROTO === 'hubbub' ? [CHANNEL] : [];
  const res = await connectMany(range(0, n), { channels: chans, onMsg: () => {} }, TIMEOUT - 5000);
  out('PHASE connected ' + JSON.stringify({ ok: res.ok, failed: res.failed, secs: res.secs }));
  const t0 = nowMs();
  let stop = false;
  process.stdin.on('data', () => { stop = true; });
  process.stdin.on('end', () => { stop = true; });
  while (!stop && nowMs() - t0 < HOLD) await sleep(50);
  const alive = res.conns.filter((c) => c.ws.readyState === 1).length;
  finishAndExit({ mode: 'idle', proto: PROTO, conns: res.ok, conns_failed: res.failed,
    connect_secs: res.secs, connects_per_s: res.ok / res.secs, still_open_at_end: alive,
    subscriptions_per_conn: PROTO === 'hubbub' ? 1 + chans.length : 0 });
}

// ---------------------------------------------------------------- HTTP (server API)
const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
function apiPost(path, body) {
  return new Promise((resolve) => {
    const data = Buffer.from(JSON.stringify(body));
    const req = http.request(HTTP_BASE + path, {
      method: 'POST', agent,
      headers: { Authorization: 'Bearer ' + API_KEY, 'Content-Type': 'application/json', 'Content-Length': data.length },
    }, (res) => {
      const chunks = [];
      res.on('data', (d) => chunks.push(d));
      res.on('end', () => {
        let parsed = null;
        try { parsed = JSON.parse(Buffer.concat(chunks)); } catch (e) { /* ignore */ }
        resolve({ status: res.statusCode, body: parsed });
      });
    });
    req.on('error', (e) => { errors++; lastError = String(e.message || e); resolve({ status: 0, body: null }); });
    req.end(data);
  });
}

// ---------------------------------------------------------------- recovery
async function recovery() {
  const n = CONNS[0];
  let finalSeq = -1;              // the seq every client must reach (known once published)
  let recovered = 0, notRecovered = 0, closes = 0, replayed = 0, reconnectFailed = 0;
  let tDrop = 0, tLastClose = 0, tLastRecovered = 0, dropping = false;
  const state = new Map();        // idx -> {seq, epoch}
  const doneSet = new Set();
  const checkDone = (c) => {
    if (!c.back || doneSet.has(c.idx) || finalSeq < 0) return;
    if (c.recoveredFlag === false) { doneSet.add(c.idx); notRecovered++; return; }
    if (c.hubLast >= finalSeq) { doneSet.add(c.idx); recovered++; tLastRecovered = nowMs(); }
  };
  const onMsg = (c, data) => {
    if (!startsWith(data, MSG_PREFIX)) return;
    const seq = intAfter(data, SEQ_KEY);
    if (seq <= c.hubLast) return;                 // a duplicate: at-least-once across reconnects
    if (seq !== c.hubLast + 1) c.hubGaps++;
    c.hubLast = seq;
    if (c.back) { replayed++; checkDone(c); }
  };
  // reconnects, at most CONC handshakes in flight
  const queue = [];
  let inFlight = 0;
  const pumpReconnects = () => {
    while (queue.length && inFlight < CONC) {
      const c = queue.shift();
      inFlight++;
      const since = { [CHANNEL]: { seq: c.hubLast, epoch: c.epoch } };
      openConn(c.idx, {
        conn: c, channels: [CHANNEL], since, onMsg, onClose,
        onReady: (cc) => {
          inFlight--; cc.back = true;
          cc.recoveredFlag = cc.subscribed.recovered === true;
          if (!cc.recoveredFlag) cc.recoveredFlag = false;
          checkDone(cc); pumpReconnects();
        },
        onFail: (cc) => { inFlight--; reconnectFailed++; pumpReconnects(); },
      });
    }
  };
  const onClose = (c, code) => {
    if (!dropping || shuttingDown) { if (!shuttingDown) closedUnexpectedly++; return; }
    closes++; tLastClose = nowMs();
    queue.push(c); pumpReconnects();
  };
  const chans = [CHANNEL];
  const res = await connectMany(range(0, n), {
    channels: chans, onMsg, onClose,
    onReady: (c) => { c.epoch = c.subscribed.epoch; c.hubLast = c.subscribed.seq; },
  }, TIMEOUT / 2);
  if (res.conns.length !== n) return finishAndExit({ mode: 'recovery', error: 'connect failed', ok: res.ok, failed: res.failed });
  // the publisher: not dropped
  let lastPublished = 0, answersWanted = 0;
  let answerWaiter = null;
  const pubRes = await connectMany([-1], {
    channels: [],
    onMsg: (c, data) => {
      const s = data.toString();
      if (s.startsWith('{"type":"published"')) {
        lastPublished = Math.max(lastPublished, JSON.parse(s).payload.seq);
        if (--answersWanted === 0 && answerWaiter) answerWaiter();
      }
    },
  });
  if (pubRes.conns.length !== 1) return finishAndExit({ mode: 'recovery', error: 'publisher failed' });
  const pub = pubRes.conns[0];
  const publish = (count) => new Promise((resolve) => {
    answersWanted = count; answerWaiter = resolve;
    for (let i = 0; i < count; i++) pub.ws.send(pubFrame(i, nowUs(), 'p' + i));
  });
  out('PHASE connected ' + JSON.stringify({ conns: n, secs: res.secs }));
  // a few events everyone gets live first
  await publish(5);
  const tw = nowMs();
  while (res.conns.some((c) => c.hubLast < lastPublished) && nowMs() - tw < 10000) await sleep(10);
  const liveOk = res.conns.every((c) => c.hubLast === lastPublished);

  const cpu0 = cpuNow();
  out('PHASE measure_start ' + JSON.stringify({ label: 'recovery' }));
  tDrop = nowMs();
  dropping = true;
  let apiClosed = 0, apiCalls = 0;
  if (DROP === 'client') {
    for (const c of res.conns) c.ws.terminate();
  } else {
    const calls = [];
    for (const c of res.conns) {
      apiCalls++;
      calls.push(apiPost(`/api/users/${encodeURIComponent(c.user)}/disconnect`, { code: 1012, reason: 'bench' })
        .then((r) => { if (r.body && r.body.closed) apiClosed += r.body.closed; }));
    }
    await Promise.all(calls);
  }
  const tDropIssued = nowMs();
  // events published while the clients are away
  await publish(MISSED);
  finalSeq = lastPublished;
  for (const c of res.conns) checkDone(c);
  while (doneSet.size < n && nowMs() - tDrop < RECOVERY_LIMIT) await sleep(5);
  const tEnd = nowMs();
  out('PHASE measure_end ' + JSON.stringify({ label: 'recovery' }));
  const cpu1 = cpuNow();
  let gaps = 0;
  for (const c of res.conns) gaps += c.hubGaps;
  finishAndExit({
    mode: 'recovery', proto: PROTO, conns: n, drop: DROP, connect_secs: res.secs, live_ok: liveOk,
    api_calls: apiCalls, api_closed: apiClosed, closes_seen: closes, missed_published: MISSED,
    final_seq: finalSeq, recovered, not_recovered: notRecovered, unfinished: n - doneSet.size,
    reconnect_failed: reconnectFailed, replayed_events: replayed, seq_gaps: gaps,
    drop_issue_secs: (tDropIssued - tDrop) / 1000,
    drop_secs: tLastClose ? (tLastClose - tDrop) / 1000 : null,
    recover_secs: tLastRecovered ? (tLastRecovered - tDrop) / 1000 : null,
    window_secs: (tEnd - tDrop) / 1000, client_cpu_util: (cpu1 - cpu0) / ((tEnd - tDrop) / 1000),
  });
}

// ---------------------------------------------------------------- presence
async function presence() {
  const n = CONNS[0];
  let joinsSeen = 0, presenceDelivered = 0, tAllSeen = 0;
  const seenByObserver = new Set();
  let observer = null;
  let presenceAnswer = null;
  const onMsg = (c, data) => {
    if (startsWith(data, JOIN_PREFIX)) {
      presenceDelivered++;
      if (c.idx === 0) {              // the observer (identity: it may not be assigned yet)
        const m = JSON.parse(data);
        if (!seenByObserver.has(m.payload.userId)) {
          seenByObserver.add(m.payload.userId);
          joinsSeen++;
          if (joinsSeen === n) tAllSeen = nowMs();
        }
      }
    } else if (c.idx === 0 && presenceAnswer && startsWith(data, PRESENCE_PREFIX)) {
      presenceAnswer(JSON.parse(data));
    }
  };
  const obs = await connectMany([0], { channels: [CHANNEL], onMsg });
  if (obs.conns.length !== 1) return finishAndExit({ mode: 'presence', error: 'observer failed' });
  observer = obs.conns[0];
  const tw = nowMs();
  while (joinsSeen < 1 && nowMs() - tw < 5000) await sleep(5);  // its own join
  const cpu0 = cpuNow();
  out('PHASE measure_start ' + JSON.stringify({ label: 'presence' }));
  const t0 = nowMs();
  const res = await connectMany(range(1, n), { channels: [CHANNEL], onMsg });
  const tJoined = nowMs();
  while (joinsSeen < n && nowMs() - t0 < TIMEOUT - 10000) await sleep(5);
  const tEnd = nowMs();
  out('PHASE measure_end ' + JSON.stringify({ label: 'presence' }));
  const cpu1 = cpuNow();
  // presence.get from the observer
  const tg = nowMs();
  const answer = await new Promise((resolve) => {
    presenceAnswer = resolve;
    observer.ws.send(JSON.stringify({ type: 'presence.get', id: 'pg', payload: { channel: CHANNEL } }));
    setTimeout(() => resolve(null), 10000);
  });
  const getMs = nowMs() - tg;
  const members = answer && answer.payload ? answer.payload.members.length : -1;
  finishAndExit({
    mode: 'presence', proto: PROTO, members: n, joined_ok: res.ok + 1, joined_failed: res.failed,
    join_secs: (tJoined - t0) / 1000, converge_secs: tAllSeen ? (tAllSeen - t0) / 1000 : null,
    observer_saw: joinsSeen, presence_events_delivered: presenceDelivered,
    joins_per_s: tAllSeen ? (n - 1) / ((tAllSeen - t0) / 1000) : null,
    presence_get_ms: getMs, presence_get_members: members,
    client_cpu_util: (cpu1 - cpu0) / ((tEnd - t0) / 1000),
  });
}

const modes = { fanout, echo, idle, recovery, presence };
if (!modes[MODE]) { console.error(`unknown --mode ${MODE}`); process.exit(2); }
modes[MODE]().catch((e) => {
  out('RESULT ' + JSON.stringify({ mode: MODE, error: String((e && e.stack) || e) }));
  process.exit(1);
});
