// The demo site's shared editor: CodeMirror 6 bound to a Yjs text by y-codemirror.next,
// synced through Hubbub's /collab/{doc} endpoint by the stock y-websocket provider.
// Build: `npm ci && npm run build` (writes src/hubbub/web/editor.bundle.js).
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { EditorState } from '@codemirror/state'
import {
  EditorView, keymap, lineNumbers, drawSelection, highlightActiveLine
} from '@codemirror/view'
import { defaultKeymap } from '@codemirror/commands'
import { yCollab, yUndoManagerKeymap } from 'y-codemirror.next'

// 4001 (token refused or expired) and 4003 (no access) are final in Hubbub's protocol;
// y-websocket would otherwise retry them like any other close.
const shouldReconnect = (event) => ![4001, 4003].includes(event.code) &&
  !(event.code >= 4400 && event.code < 4500)

/**
 * Open document `doc` in an editor inside `parent`.
 * @param {{parent: HTMLElement, serverUrl: string, doc: string, token: string,
 *          user: string, color: string, field?: string}} options
 */
export function openEditor ({ parent, serverUrl, doc, token, user, color, field = 'content' }) {
  const ydoc = new Y.Doc()
  const provider = new WebsocketProvider(serverUrl, doc, ydoc, {
    params: { token }, shouldReconnect
  })
  const ytext = ydoc.getText(field)
  provider.awareness.setLocalStateField('user', { name: user, color, colorLight: color + '33' })
  const undoManager = new Y.UndoManager(ytext)
  const view = new EditorView({
    parent,
    state: EditorState.create({
      doc: ytext.toString(),
      extensions: [
        lineNumbers(),
        drawSelection(),
        highlightActiveLine(),
        EditorView.lineWrapping,
        keymap.of([...yUndoManagerKeymap, ...defaultKeymap]),
        yCollab(ytext, provider.awareness, { undoManager })
      ]
    })
  })
  return { ydoc, ytext, provider, view }
}
