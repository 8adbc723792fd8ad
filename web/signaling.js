// signaling.js: the WebSocket envelope of docs/protocol.md (protoo style): numbered requests
// with a timeout, their responses, and notifications. Knows nothing of rooms or WebRTC.

export const REQUEST_TIMEOUT_MS = 10_000;

/** A protocol or client error: `code` is a protocol error code or one of
 * `timeout`, `disconnected`, `connectFailed`, `invalidState`. */
export class VClassError extends Error {
  constructor(code, message) {
    super(message || code);
    this.name = 'VClassError';
    this.code = code;
  }
}

/** One WebSocket with the protoo-style envelope: numbered requests, responses, notifications. */
export class Connection {
  #ws;
  #nextId = 1;
  #pending = new Map(); // id → {resolve, reject, timer}
  #opened = false;
  #closed = false;
  #handlers;

  /** Opens a socket; resolves once it is open. handlers: {onNotification, onClose, onStrayError};
   * onClose is called only for a close we did not ask for, after the socket was open. */
  static open(url, handlers) {
    return new Promise((resolve, reject) => {
      const conn = new Connection(new WebSocket(url), handlers);
      const ws = conn.#ws;
      const settle = (error) => {
        clearTimeout(timer);
        ws.removeEventListener('open', onOpen);
        ws.removeEventListener('error', onError);
        ws.removeEventListener('close', onError);
        if (!error) {
          conn.#opened = true;
          resolve(conn);
          return;
        }
        conn.close();
        reject(new VClassError('connectFailed', `cannot connect to ${url}: ${error}`));
      };
      const onOpen = () => settle(null);
      const onError = () => settle('socket error');
      const timer = setTimeout(() => settle('timed out'), REQUEST_TIMEOUT_MS);
      ws.addEventListener('open', onOpen);
      ws.addEventListener('error', onError);
      ws.addEventListener('close', onError);
    });
  }

  constructor(ws, handlers) {
    this.#ws = ws;
    this.#handlers = handlers;
    ws.onmessage = (ev) => this.#onMessage(ev.data);
    ws.onclose = (ev) => {
      if (this.#closed || !this.#opened) return; // before open, open() reports the failure
      this.#shutDown();
      this.#handlers.onClose({ code: ev.code, reason: ev.reason });
    };
  }

  get isOpen() {
    return !this.#closed && this.#ws.readyState === WebSocket.OPEN;
  }

  request(method, data = {}) {
    if (!this.isOpen) return Promise.reject(new VClassError('disconnected', `${method}: not connected`));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(new VClassError('timeout', `${method}: no response in ${REQUEST_TIMEOUT_MS / 1000} s`));
      }, REQUEST_TIMEOUT_MS);
      this.#pending.set(id, { resolve, reject, timer });
      this.#ws.send(JSON.stringify({ request: true, id, method, data }));
    });
  }

  /** Closes locally; onClose is not called (the caller knows). */
  close(code = 1000, reason = '') {
    if (this.#closed) return;
    this.#shutDown();
    try { this.#ws.close(code, reason); } catch { /* already closing */ }
  }

  #shutDown() {
    this.#closed = true;
    this.#ws.onmessage = this.#ws.onclose = null;
    for (const { reject, timer } of this.#pending.values()) {
      clearTimeout(timer);
      reject(new VClassError('disconnected', 'connection closed'));
    }
    this.#pending.clear();
  }

  #onMessage(text) {
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    if (msg.response) {
      const waiter = this.#pending.get(msg.id);
      if (!waiter) {
        if (!msg.ok) this.#handlers.onStrayError?.(msg.error ?? {});
        return;
      }
      this.#pending.delete(msg.id);
      clearTimeout(waiter.timer);
      if (msg.ok) waiter.resolve(msg.data ?? {});
      else {
        const err = new VClassError(msg.error?.code ?? 'internal', msg.error?.message);
        if (msg.error?.redirect) err.redirect = msg.error.redirect;
        waiter.reject(err);
      }
    } else if (msg.notification) {
      this.#handlers.onNotification(msg.method, msg.data ?? {});
    } else if (msg.request && this.isOpen) {
      // The envelope promises every request an answer; the client serves no methods today.
      this.#ws.send(JSON.stringify({ response: true, id: msg.id, ok: false,
        error: { code: 'badRequest', message: `unknown method ${msg.method}` } }));
    }
  }
}
