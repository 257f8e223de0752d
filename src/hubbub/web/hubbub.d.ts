// Type declarations of hubbub.js, the browser client of a Hubbub server (docs/client.md).

export class HubbubError extends Error {}
export class RequestError extends HubbubError {
  readonly code: string;
  readonly serverMessage: string;
  readonly channel: string | null;
}
export class RequestTimeout extends HubbubError {}
export class NotConnected extends HubbubError {}
export class ConnectionLost extends HubbubError {}
export class ClientClosed extends HubbubError {}
export class OfflineQueueFull extends HubbubError {}
export class ConnectFailed extends HubbubError {
  readonly code: number;
}

/** Exponential backoff with full jitter, in milliseconds. */
export class Backoff {
  constructor(base?: number, cap?: number, random?: () => number);
  compute(failures: number): number;
}

export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "closed";
export type TokenSource = string | null | (() => string | Promise<string>);

export interface ClientOptions {
  token?: TokenSource;
  backoff?: { compute(failures: number): number };
  /** ms; default 10000 */
  requestTimeout?: number;
  connectTimeout?: number;
  heartbeat?: number;
  offlineQueueSize?: number;
  maxHeldEvents?: number;
  WebSocket?: typeof WebSocket;
}

export interface Envelope {
  type: string;
  channel?: string;
  seq?: number;
  ts?: number;
  payload: Record<string, unknown>;
}

export interface HubbubEvent<T = unknown> {
  type: string;
  channel: string | null;
  seq: number | null;
  ts: number | null;
  payload: Record<string, unknown>;
  /** `payload.data` of a `message` event */
  data: T;
}

export interface Subscription {
  seq: number;
  epoch: string;
  recovered: boolean;
  lastValue: Envelope | null;
}

export interface PresenceMember {
  userId: string;
  status: string;
  connections: number;
}

export interface History {
  channel: string;
  epoch: string;
  seq: number;
  events: Envelope[];
}

export interface ClientEvents {
  message: HubbubEvent;
  state: { state: ConnectionState };
  connected: { userId: string; connectionId: string; reconnect: boolean };
  disconnected: { code: number; reason: string; reconnecting: boolean };
  reset: { channel: string; epoch: string; seq: number; lastValue: Envelope | null };
  recoveryfailed: { channel: string; fromSeq: number; toSeq: number };
  subscriptionerror: { channel: string; code: string; message: string };
  servererror: { code: string; message: string; channel: string | null };
  frame: { direction: "in" | "out"; frame: Record<string, unknown> };
}

export class Client {
  constructor(url: string, options?: ClientOptions);
  readonly state: ConnectionState;
  readonly userId: string | null;
  readonly connectionId: string | null;
  readonly reconnects: number;
  readonly connected: boolean;
  on<K extends keyof ClientEvents>(kind: K, fn: (event: ClientEvents[K]) => void): () => void;
  /** Messages of one channel. */
  on(channel: string, fn: (event: HubbubEvent) => void): () => void;
  connect(): Promise<void>;
  close(): void;
  position(channel: string): { seq: number; epoch: string } | null;
  subscribe(...channels: string[]): Promise<Record<string, Subscription>>;
  unsubscribe(...channels: string[]): Promise<void>;
  publish(channel: string, data: unknown): Promise<number>;
  request<T = Record<string, unknown>>(
    type: string,
    payload?: Record<string, unknown>,
    options?: { timeout?: number },
  ): Promise<T>;
  history(
    channel: string,
    options?: { fromSequence?: number; toSequence?: number; limit?: number },
  ): Promise<History>;
  presence(channel: string): Promise<PresenceMember[]>;
  setStatus(status: string): Promise<void>;
  ping(): Promise<number>;
}

export function devToken(
  baseUrl: string,
  user: string,
  claims?: { channels?: string[]; publish?: string[]; roles?: string[] },
): Promise<string>;
export function pageUrl(path?: string): string;

// == Chat (PROTOCOL.md section 12, docs/protocol.md 16.12) ==================================

/** An HTTP call of the chat API failed. */
export class HttpError extends RequestError {
  readonly status: number;
}

export interface ChatAttachment {
  attachmentId: string;
  name: string;
  contentType: string;
  size: number;
}

export interface ChatMessage {
  serverMessageId: string;
  conversationId: string;
  senderId: string;
  clientMessageId: string;
  content: string;
  /** ms since the epoch */
  createdAt: number;
  replyTo?: string;
  attachments?: ChatAttachment[];
}

export interface ChatConversation {
  conversationId: string;
  kind: "direct" | "group";
  title: string | null;
  members: string[];
  unread: number;
  lastReadId: string;
  lastMessage: ChatMessage | null;
  createdAt: number;
}

export interface MessageDelivered {
  clientMessageId: string;
  serverMessageId: string;
  conversationId: string;
  timestamp: number;
  /** true when the server already had this clientMessageId (a retry) */
  duplicate: boolean;
}

export interface ChatEvents {
  new_message: ChatMessage;
  message_delivered: MessageDelivered;
  user_typing: { conversationId: string; userId: string; isTyping: boolean; expired?: boolean };
  message_read: { conversationId: string; userId: string; messageId: string; readAt: number };
  unread_count: { conversationId: string; unread: number };
  conversation_created: {
    conversationId: string;
    kind: "direct" | "group";
    title: string | null;
    members: string[];
    createdBy: string;
    createdAt: number;
  };
  member_added: { conversationId: string; userId: string; by: string };
  member_removed: { conversationId: string; userId: string; by: string };
  user_online: { userId: string; status: string };
  user_offline: { userId: string; lastSeen: number };
  /** the user channel could not be recovered: reload conversations and history */
  reset: ClientEvents["reset"];
}

export interface ChatOptions {
  /** default: derived from the client's URL (ws://host/ws -> http://host) */
  httpUrl?: string;
  /** ms clock of the typing throttle; default Date.now */
  now?: () => number;
  fetch?: typeof fetch;
}

export class Chat {
  constructor(client: Client, options?: ChatOptions);
  readonly client: Client;
  readonly httpUrl: string;
  /** Compare two message ids (decimal strings): negative, zero or positive. */
  static compareIds(a: string, b: string): number;
  on<K extends keyof ChatEvents>(kind: K, fn: (payload: ChatEvents[K]) => void): () => void;
  close(): void;
  sendMessage(
    conversationId: string,
    content: string,
    options?: {
      replyTo?: string | null;
      attachments?: (string | ChatAttachment)[];
      clientMessageId?: string;
    },
  ): Promise<MessageDelivered>;
  /** Messages given to sendMessage and not yet stored, oldest first. */
  readonly pending: {
    conversationId: string;
    clientMessageId: string;
    content: string;
    replyTo?: string;
    attachments?: string[];
  }[];
  typingStart(conversationId: string): boolean;
  typingStop(conversationId: string): boolean;
  typingUsers(conversationId: string): string[];
  markRead(
    conversationId: string,
    messageId: string,
  ): Promise<{ conversationId: string; messageId: string; unread: number } | null>;
  readPosition(conversationId: string): string | null;
  isOnline(userId: string): boolean | null;
  conversations(): Promise<ChatConversation[]>;
  conversation(conversationId: string): Promise<ChatConversation>;
  createConversation(members: string[], title?: string | null): Promise<string>;
  history(
    conversationId: string,
    options?: { before?: string | null; after?: string | null; limit?: number },
  ): Promise<{ messages: ChatMessage[]; next: string | null }>;
  search(conversationId: string, q: string): Promise<ChatMessage[]>;
  upload(
    conversationId: string,
    file: Blob | ArrayBuffer | ArrayBufferView,
    options?: { name?: string; contentType?: string },
  ): Promise<ChatAttachment>;
  download(conversationId: string, attachmentId: string): Promise<Blob>;
  presence(conversationId: string): Promise<{ userId: string; online: boolean }[]>;
  addMember(conversationId: string, userId: string): Promise<string[]>;
  removeMember(conversationId: string, userId: string): Promise<string[]>;
}
