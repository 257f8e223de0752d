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
