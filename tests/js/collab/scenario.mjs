// Real Yjs clients (npm `yjs` + `y-websocket` + `ws`) against Hubbub's /collab endpoint.
//
// Run by tests/integration/test_collab_js.py: `node scenario.mjs <name>` with
// COLLAB_URL (ws://host:port/collab), COLLAB_DOC and tokens in the environment.
// It prints one JSON object per line ({"step": ...}) and reads one line from stdin
// whenever the Python side has to act (change the document, check the store).
import * as readline from 'node:readline'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

const URL = process.env.COLLAB_URL
const DOC = process.env.COLLAB_DOC
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]()

const say = (step, fields = {}) => console.log(JSON.stringify({ step, ...fields }))
const next = async () => (await lines.next()).value

async function until (predicate, what, timeout = 20000) {
  const deadline = Date.now() + timeout
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

function connect (token, name = DOC) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(URL, name, doc, {
    params: { token },
    WebSocketPolyfill: WebSocket,
    disableBc: true // same process: make every client go through the server
  })
  return { doc, provider, text: doc.getText('t') }
}

const synced = (clients) => until(() => clients.every((c) => c.provider.synced), 'sync')
const same = (clients) => clients.every((c) => c.text.toString() === clients[0].text.toString())

function seededRandom (seed) {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

function randomEdit (client, random) {
  const text = client.text
  if (text.length > 20 && random() < 0.4) {
    const at = Math.floor(random() * (text.length - 3))
    text.delete(at, 1 + Math.floor(random() * 3))
  } else {
    const at = Math.floor(random() * (text.length + 1))
    text.insert(at, 'abcdefghij'.slice(0, 1 + Math.floor(random() * 4)))
  }
}

const scenarios = {
  // Done-when 1: three clients edit one Y.Text at once with random inserts and deletes.
  async concurrent () {
    const tokens = [process.env.TOKEN_A, process.env.TOKEN_B, process.env.TOKEN_C]
    const clients = tokens.map((t) => connect(t))
    await synced(clients)
    const randoms = clients.map((_, i) => seededRandom(1000 + i))
    for (let round = 0; round < 200; round++) {
      clients.forEach((c, i) => randomEdit(c, randoms[i]))
      if (round % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 1))
    }
    await until(() => same(clients) && clients[0].text.length > 0, 'convergence')
    say('converged', { texts: clients.map((c) => c.text.toString()) })
    await next()
    clients.forEach((c) => c.provider.destroy())
  },

  // Done-when 2: a client edits while offline, reconnects, and its edits merge.
  async offline () {
    const a = connect(process.env.TOKEN_A)
    const b = connect(process.env.TOKEN_B)
    await synced([a, b])
    a.text.insert(0, 'shared start. ')
    await until(() => same([a, b]) && b.text.length > 0, 'first sync')
    a.provider.disconnect()
    await until(() => !a.provider.wsconnected, 'disconnect')
    a.text.insert(a.text.length, 'written offline by A. ')
    b.text.insert(0, 'written by B meanwhile. ')
    await until(() => b.text.toString().startsWith('written by B'), 'B local edit')
    a.provider.connect()
    await until(() => same([a, b]) && a.text.toString().includes('meanwhile'), 'merge')
    say('merged', { a: a.text.toString(), b: b.text.toString() })
    await next()
    a.provider.destroy()
    b.provider.destroy()
  },

  // Done-when 4: a read-only user's edits reach nobody.
  async readonly () {
    const editor = connect(process.env.TOKEN_EDITOR)
    const reader = connect(process.env.TOKEN_READER)
    await synced([editor, reader])
    editor.text.insert(0, 'by the editor. ')
    await until(() => reader.text.toString() === 'by the editor. ', 'reader receives')
    reader.text.insert(0, 'FROM THE READER. ')
    // Sent after the edit on the same socket: once the server shows this state, it has
    // handled the edit too.
    reader.provider.awareness.setLocalStateField('user', { name: 'rita' })
    say('reader_edited', { id: reader.doc.clientID })
    await next() // the Python side added a marker after the reader's edit was handled
    await until(() => editor.text.toString().includes('marker'), 'marker at the editor')
    await until(() => reader.text.toString().includes('marker'), 'marker at the reader')
    say('done', { editor: editor.text.toString(), reader: reader.text.toString() })
    await next()
    editor.provider.destroy()
    reader.provider.destroy()
  },

  // Done-when 5: a cursor in awareness reaches the others and goes when its client leaves.
  async awareness () {
    const a = connect(process.env.TOKEN_A)
    const b = connect(process.env.TOKEN_B)
    await synced([a, b])
    a.provider.awareness.setLocalStateField('user', { name: 'ann', color: '#c33' })
    a.provider.awareness.setLocalStateField('cursor', { index: 3 })
    const id = a.doc.clientID
    await until(() => b.provider.awareness.getStates().get(id)?.cursor?.index === 3, 'cursor')
    const seen = b.provider.awareness.getStates().get(id)
    // Drop the socket without the goodbye that provider.disconnect() would send: the
    // server must remove the state itself (well before the 30 s expiry).
    a.provider.shouldConnect = false
    a.provider.ws.close()
    await until(() => !b.provider.awareness.getStates().has(id), 'removal', 10000)
    say('done', { seen, after: [...b.provider.awareness.getStates().keys()], id })
    b.provider.destroy()
  },

  // Done-when 7: a change made through the Python API appears in the clients.
  async python () {
    const clients = [connect(process.env.TOKEN_A), connect(process.env.TOKEN_B)]
    await synced(clients)
    say('ready')
    await next()
    const wanted = (c) =>
      c.text.toString() === 'written in Python' &&
      c.doc.getMap('meta').get('title') === 'Monday' &&
      JSON.stringify(c.doc.getArray('items').toArray()) === '[1,"two"]'
    await until(() => clients.every(wanted), 'the Python change')
    say('done', {
      texts: clients.map((c) => c.text.toString()),
      title: clients[0].doc.getMap('meta').get('title')
    })
    clients.forEach((c) => c.provider.destroy())
  }
}

try {
  await scenarios[process.argv[2]]()
  process.exit(0)
} catch (err) {
  say('error', { message: String(err?.stack || err) })
  process.exit(1)
}
