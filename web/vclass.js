// vclass.js: browser SDK for vclass-media. Implements the WebSocket protocol of
// docs/protocol.md: one socket, a send transport (we offer, via `produce`) and a recv
// transport (the server offers, we `answer`). No dependencies; plain ES modules.

import { Connection, VClassError } from './signaling.js';

export { VClassError };

const KEEPALIVE_INTERVAL_MS = 15_000;
// A brief `disconnected` often heals by itself; `failed` never does.
const ICE_DISCONNECTED_GRACE_MS = 2_000;
const ICE_RESTART_MIN_INTERVAL_MS = 4_000;
const RECONNECT_BASE_DELAY_MS = 500;
const RECONNECT_MAX_DELAY_MS = 10_000;
const VIEW_SETTLE_MS = 250; // a tile's size is told once it has not changed for this long
const VIEW_HIDE_DELAY_MS = 1_000; // a video scrolled out of view stops after this long
// Server `disconnect` reasons after which reconnecting would be wrong.
const FINAL_DISCONNECT_REASONS = new Set(['replaced', 'kicked', 'roomClosed']);
// Join errors that another attempt cannot fix.
const FINAL_JOIN_ERRORS = new Set(['unauthorized', 'badRequest', 'roomFull']);

export const DEFAULT_SOURCES = Object.freeze(['audio:mic', 'video:cam', 'video:screen']);

function defaultUrl() {
  const scheme = globalThis.location?.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${globalThis.location?.host ?? 'localhost'}/ws`;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
// joinRoom answered clusterUnavailable (a cluster settling for 3 s, or Redis away): retried
// this often, for this long, before the error reaches the caller.
const CLUSTER_RETRY_MS = 500;
const CLUSTER_WAIT_MS = 10_000;

/** Rows for the RTP streams of one stats type that `ownerOf` maps to a consumer or producer;
 * streams of m-lines nobody owns any more are left out. */
async function rtpStats(pc, type, ownerOf, row) {
  if (!pc) return [];
  const report = await pc.getStats();
  const rows = [];
  report.forEach((s) => {
    const owner = s.type === type && ownerOf(s);
    if (owner) rows.push(row(s, owner, report.get(s.codecId)?.mimeType ?? null));
  });
  return rows;
}

/** The candidate pair a transport sends on, with its round-trip time and send estimate. */
async function pairStats(pc) {
  if (!pc) return null;
  const report = await pc.getStats();
  let pair = null;
  report.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
  });
  if (!pair) return null;
  const cand = (id) => {
    const c = report.get(id);
    return c && { type: c.candidateType, protocol: c.protocol, address: c.address ?? '', port: c.port ?? 0 };
  };
  return {
    local: cand(pair.localCandidateId), remote: cand(pair.remoteCandidateId),
    rtt: pair.currentRoundTripTime ?? null, availableOutgoingBitrate: pair.availableOutgoingBitrate ?? null,
  };
}

/**
 * Simulcast layers of a camera, smallest first (the server orders layers as listed): a quarter,
 * half and all of the captured size, e.g. 180p, 360p and 720p. Each subscriber gets the largest
 * its link and its wishes allow.
 */
/**
 * A scalable camera (VP9, AV1): three spatial layers (a quarter, half and all of the captured size)
 * with three temporal layers each, in one stream; inter-layer prediction on keyframes only
 * (k-SVC), so that a subscriber's layers need nothing above them.
 */
const SVC_MODE = 'L3T3_KEY';
const SVC_SPATIAL = 3;

/**
 * The scalable stream when nobody receives its spatial layers above `layer`: fewer spatial
 * layers, the top one at that layer's size (the layers below keep theirs).
 */
function svcEncoding(layer) {
  const n = Math.min(SVC_SPATIAL, Math.max(0, layer) + 1);
  return { scalabilityMode: n === 1 ? 'L1T3' : `L${n}T3_KEY`, scaleResolutionDownBy: 2 ** (SVC_SPATIAL - n) };
}
const SVC_CODECS = new Set(['video/vp9', 'video/av1']);
const DEPENDENCY_DESCRIPTOR = 'https://aomediacodec.github.io/av1-rtp-spec/#dependency-descriptor-rtp-header-extension';

/**
 * Whether a camera in `codec` goes out as one scalable stream the server can take apart: VP9
 * tells its layers in its payload, AV1 only in the dependency descriptor, which this browser may
 * not offer (Chromium does not by default).
 */
function canScale(codec) {
  const mime = codec?.toLowerCase();
  if (!SVC_CODECS.has(mime)) return false;
  if (mime !== 'video/av1') return true;
  const exts = RTCRtpSender.getCapabilities?.('video')?.headerExtensions ?? [];
  return exts.some((e) => e.uri === DEPENDENCY_DESCRIPTOR);
}

const CAMERA_LAYERS = [
  { rid: 'l', scaleResolutionDownBy: 4, maxBitrate: 100_000 },
  { rid: 'm', scaleResolutionDownBy: 2, maxBitrate: 500_000 },
  { rid: 'h', scaleResolutionDownBy: 1, maxBitrate: 1_500_000 },
];

/** How a track goes out: simulcast layers, one scalable stream, or one plain stream. */
function sendInit(p) {
  if (p.simulcast) return { direction: 'sendonly', sendEncodings: CAMERA_LAYERS.map((l) => ({ ...l })) };
  if (p.svc) return { direction: 'sendonly', sendEncodings: [{ scalabilityMode: SVC_MODE, maxBitrate: 1_700_000 }] };
  return { direction: 'sendonly' };
}

/** Puts `mime` (e.g. 'video/VP9') first in what the transceiver offers, when the browser has it. */
function preferCodec(transceiver, kind, mime) {
  const codecs = RTCRtpSender.getCapabilities?.(kind)?.codecs ?? [];
  const want = codecs.filter((c) => c.mimeType.toLowerCase() === mime.toLowerCase());
  if (!want.length || !transceiver.setCodecPreferences) return;
  transceiver.setCodecPreferences([...want, ...codecs.filter((c) => !want.includes(c))]);
}

/** Runs async tasks one after another; a failed task does not block the next one. */
class SerialQueue {
  #tail = Promise.resolve();
  run(task) {
    const result = this.#tail.then(task);
    this.#tail = result.catch(() => {});
    return result;
  }
}

/**
 * Client of one vclass-media session. Events (CustomEvent, payload in `detail`):
 * peerjoined, peerleft, newproducer, producerclosed, track, trackended, trackpaused,
 * trackresumed, activespeaker, message, reconnected, error,
 * disconnected {reason, code, willReconnect} (code: a server `disconnect` reason such as kicked,
 * roomClosed, replaced, serverShutdown; a join error such as unauthorized when the ticket
 * expired meanwhile; connectionLost; reconnectFailed),
 * producesources {sources, by}, closesources {sources, by},
 * requestproduce {peerId, displayName, sources} (admins only),
 * localpaused / localresumed {producerId, source} (the portal muted / unmuted one of ours),
 * recording {active} (a recording of the class started / stopped; `recording` says it now),
 * connectionquality {peers: [{peerId, quality, upload, download, lossPercent, rttMs}]}: the server's
 * grades (good, fair, poor) of the peers whose network quality changed, ours included (all of them
 * just after joining); upload or download is null when not measured (docs/protocol.md).
 */
export class VClassClient extends EventTarget {
  #url;
  #entryUrl; // where this client first connected; a cluster may send it to another node
  #rtcConfig;
  #maxReconnectAttempts;
  #conn = null;
  #state = 'idle'; // idle | connecting | joined | reconnecting | closed
  #session = 0; // bumped by join() and leave(): a stale reconnect loop sees it and stops
  #joinParams = null;
  #peerId = null;
  #resumeToken = null;
  #roomId = null;
  #serveMode = null;
  #role = null; // own role, when the server tells it (the join response may not)
  #recording = false; // a recorder is in the room
  #recordingTold = false; // a `recording` came while joinRoom was pending: newer than its response
  #serverDisconnectReason = null;
  #keepaliveTimer = null;
  #pendingRestore = null; // {roomId, republish[]} until a fresh rejoin has rebuilt the session
  #peers = new Map(); // peerId → {peerId, displayName, role, sources, producers[]}
  // Our ids before a fresh rejoin: the server keeps such a ghost in the room for a while.
  #formerPeerIds = new Set();

  // Send transport: what we publish.
  #sendPC = null;
  #sendQueue = new SerialQueue();
  #sendTask = null; // queued, not yet started negotiation; later requests join it
  #pendingPublishes = [];
  #transceiversToStop = [];
  #sendIceRestartWanted = false;
  #sendBusy = false;
  // The producer requests of a `produce` whose answer was lost: its offer still waits, and is
  // sent again (`repeat`) before the next negotiation.
  #lostProduce = null;
  #unwantedProducers = []; // ids a lost `produce` made, still to close
  #producers = new Map(); // source → {producerId, source, kind, mid, track, transceiver, paused}

  // Recv transport: what others publish to us.
  #recvPC = null;
  #recvQueue = new SerialQueue();
  #recvOffersPending = 0;
  #unackedAnswer = null; // {sdp, version}: an answer the socket may have lost; resent after resume
  #consumers = new Map(); // mid → {consumerId, producerId, peerId, source, kind, mid, paused, track, stream}

  #remoteCandidates = { send: [], recv: [] };
  #views = new Map(); // consumerId → {el, sent, timer, visible, onResize}: watchVideo's elements
  #viewObservers = null; // {resize, intersection}, made at the first watchVideo
  #iceRestartTimers = { send: null, recv: null };
  #lastIceRestart = { send: 0, recv: 0 };

  /** options: url, iceServers, maxReconnectAttempts. */
  constructor({ url = defaultUrl(), iceServers = [], maxReconnectAttempts = 20 } = {}) {
    super();
    this.#url = url;
    this.#entryUrl = url;
    this.#rtcConfig = { iceServers, bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' };
    this.#maxReconnectAttempts = maxReconnectAttempts;
  }

  get state() { return this.#state; }
  get peerId() { return this.#peerId; }
  get roomId() { return this.#roomId; }
  /** The room's ServeMode as the server names it (e.g. Open, Pull, Invite), or null. */
  get serveMode() { return this.#serveMode; }
  /** Whether the class is being recorded (a recorder is in the room): the `recording` event tells changes. */
  get recording() { return this.#recording; }
  /** Our own role (admin, normal, recorder) if the server told it, else null. */
  get role() { return this.#role; }
  /** Other peers in the room: Map peerId → {peerId, displayName, role, sources, producers}. */
  get peers() { return this.#peers; }
  /** What we publish: [{source, producerId, kind, paused, track}]. */
  get producers() {
    return [...this.#producers.values()].map(({ source, producerId, kind, paused, track }) =>
      ({ source, producerId, kind, paused, track }));
  }

  /** Subscribes to an event with a plain callback taking the detail; returns an unsubscriber. */
  on(type, callback) {
    const listener = (ev) => callback(ev.detail);
    this.addEventListener(type, listener);
    return () => this.removeEventListener(type, listener);
  }

  // ---- session ----

  /** Connects and joins; resolves with {peerId, resumeToken, resumed}. Rejects with a VClassError. */
  async join({ displayName, sources = DEFAULT_SOURCES, ticket } = {}) {
    if (this.#state !== 'idle' && this.#state !== 'closed') {
      throw new VClassError('invalidState', `join: client is ${this.#state}`);
    }
    this.#joinParams = { displayName, sources: [...sources], ...(ticket ? { ticket } : {}) };
    this.#serverDisconnectReason = null;
    this.#state = 'connecting';
    const session = ++this.#session;
    try {
      await this.#connect(session);
      const res = await this.#request('join', this.#joinParams);
      this.#adoptJoin(res);
      this.#state = 'joined';
      return res;
    } catch (err) {
      this.#closeConnection();
      this.#state = 'idle';
      throw err;
    }
  }

  /** Enters a room; resolves with {roomId, serveMode, peers}. Each peer is also a `peerjoined` event. */
  async joinRoom(roomId) {
    this.#requireState('joined', 'joinRoom');
    return this.#joinRoom(roomId);
  }

  async #joinRoom(roomId) {
    let res;
    const session = this.#session;
    const settleUntil = Date.now() + CLUSTER_WAIT_MS;
    this.#recordingTold = false;
    for (let hops = 0; ; hops++) {
      try {
        res = await this.#request('joinRoom', { roomId });
        break;
      } catch (err) {
        // A cluster settling after Redis lost its data (or Redis briefly away): try again soon.
        if (err?.code === 'clusterUnavailable' && Date.now() < settleUntil) {
          await sleep(CLUSTER_RETRY_MS * (0.75 + Math.random() / 2));
          if (session !== this.#session) throw new VClassError('disconnected', 'session ended');
          hops--;
          continue;
        }
        // In a cluster the room lives on another node: join there.
        if (err?.code !== 'redirect' || !err.redirect || hops >= 3) throw err;
        this.#closeConnection();
        this.#url = err.redirect;
        await this.#connect(this.#session);
        this.#adoptJoin(await this.#request('join', this.#joinParams));
      }
    }
    this.#roomId = res.roomId ?? roomId;
    this.#serveMode = res.serveMode ?? null;
    if (!this.#recordingTold) this.#setRecording(Boolean(res.recording));
    this.#ensureRecvPC(); // so early server candidates have a place to wait
    for (const peer of res.peers ?? []) this.#addPeer(peer);
    return res;
  }

  /**
   * Publishes a track as `source`; resolves with {producerId, source, kind} once the server
   * accepted it. Cameras go out as three simulcast layers (CAMERA_LAYERS) unless
   * `{simulcast: false}`; screen shares and microphones as one stream. `{codec: 'video/VP9'}`
   * prefers a codec the server lists; a VP9 or AV1 camera goes out as one scalable stream of three
   * spatial and three temporal layers (SVC_MODE) rather than simulcast (AV1 only where the browser
   * offers the dependency descriptor, which tells the server the layers; else as one plain stream).
   */
  async publish(track, source, { simulcast, codec } = {}) {
    this.#requireState('joined', 'publish');
    return this.#publish(track, source, simulcast, codec);
  }

  async #publish(track, source, simulcast, codec) {
    if (!this.#roomId) throw new VClassError('notInRoom', 'publish: join a room first');
    if (!source?.startsWith(`${track.kind}:`)) throw new VClassError('badRequest', `${source} is no ${track.kind} source`);
    if (this.#producers.has(source) || this.#pendingPublishes.some((p) => p.source === source)) {
      throw new VClassError('sourceBusy', `${source} is already published`);
    }
    return new Promise((resolve, reject) => {
      const camera = track.kind === 'video' && source !== 'video:screen';
      const svc = camera && simulcast !== true && canScale(codec);
      // AV1 without the descriptor goes out as one plain stream: layers the server cannot tell
      // apart would only cost bits, and this Chromium sends no AV1 simulcast.
      const plainAV1 = codec?.toLowerCase() === 'video/av1' && !svc;
      simulcast = track.kind === 'video' && !svc && (simulcast ?? (camera && !plainAV1));
      this.#pendingPublishes.push({ track, source, simulcast, svc, codec, resolve, reject });
      this.#scheduleSendNegotiation().catch((err) => this.#emitError(err, 'produce'));
    });
  }

  /** Stops publishing `source`. The track itself is the caller's: it is not stopped here. */
  async unpublish(source) {
    const producer = this.#producers.get(source);
    if (!producer) return;
    this.#producers.delete(source);
    try {
      await this.#request('closeProducer', { producerId: producer.producerId });
    } catch (err) {
      if (err.code !== 'unknownProducer') throw err; // already gone on the server: fine
    } finally {
      this.#transceiversToStop.push(producer.transceiver);
      this.#scheduleSendNegotiation().catch((err) => this.#emitError(err, 'produce'));
    }
  }

  /**
   * Sends `track` for `source` in place of the track published now (another camera or
   * microphone), with no new negotiation; the old track is the caller's to stop.
   */
  async replaceTrack(source, track) {
    const producer = this.#requireProducer(source);
    if (track.kind !== producer.kind) throw new VClassError('badRequest', `${source} takes ${producer.kind}, not ${track.kind}`);
    track.enabled = !producer.paused; // silent from the start when paused
    await producer.transceiver.sender.replaceTrack(track);
    if (this.#producers.get(source) !== producer) throw new VClassError('unknownProducer', `${source} was unpublished meanwhile`);
    producer.track = track;
  }

  async pause(source) {
    const producer = this.#requireProducer(source);
    producer.track.enabled = false; // silence at once, before the round trip
    producer.paused = true;
    await this.#request('pauseProducer', { producerId: producer.producerId });
  }

  async resume(source) {
    const producer = this.#requireProducer(source);
    await this.#request('resumeProducer', { producerId: producer.producerId });
    producer.track.enabled = true;
    producer.paused = false;
  }

  /** Asks the server to stop (or restart) forwarding one consumer to us, e.g. for a hidden tile. */
  pauseConsumer(consumerId) { return this.#request('pauseConsumer', { consumerId }); }

  /**
   * Caps the simulcast layer received of a consumer (0 is the smallest): the server sends the
   * largest layer arriving that is not above it. A 'layerschanged' event follows each switch.
   */
  setPreferredLayers(consumerId, spatialLayer) {
    return this.#request('setConsumerPreferredLayers', { consumerId, spatialLayer });
  }
  resumeConsumer(consumerId) { return this.#request('resumeConsumer', { consumerId }); }

  /**
   * Tells the server how large a consumer's video is shown (pixels) and whether at all: it sends
   * the smallest simulcast layer that covers it, and nothing while `visible` is false.
   */
  setConsumerView(consumerId, { width = 0, height = 0, visible = true } = {}) {
    return this.#request('setConsumerView', { consumerId, width, height, visible });
  }

  /**
   * Adaptive stream: watches the <video> element showing a consumer and keeps the server told of
   * its size on screen (device pixels, as its object-fit draws the picture) and whether it is
   * visible at all (scrolled out of view, hidden, zero-sized). Returns a function that stops
   * watching; a consumer that ends is no longer watched.
   */
  watchVideo(consumerId, element) {
    this.unwatchVideo(consumerId);
    const obs = this.#viewObservers ??= this.#makeViewObservers();
    const view = { el: element, sent: null, timer: null, visible: true, onResize: null }; // until IntersectionObserver says
    view.onResize = () => this.#scheduleView(consumerId, view); // the picture's aspect became known
    this.#views.set(consumerId, view);
    element.dataset.viewConsumerId = consumerId;
    element.addEventListener('resize', view.onResize);
    obs.resize.observe(element);
    obs.intersection.observe(element);
    return () => this.unwatchVideo(consumerId);
  }

  /** Stops watchVideo for a consumer (the server keeps the last view it was told). */
  unwatchVideo(consumerId) {
    const view = this.#views.get(consumerId);
    if (!view) return;
    this.#views.delete(consumerId);
    clearTimeout(view.timer);
    view.el.removeEventListener('resize', view.onResize);
    if (view.el.dataset.viewConsumerId !== consumerId) return; // the element shows another consumer now
    delete view.el.dataset.viewConsumerId;
    this.#viewObservers?.resize.unobserve(view.el);
    this.#viewObservers?.intersection.unobserve(view.el);
  }

  /** After a resumed reconnect: the server may have missed views told meanwhile. */
  #resendViews() {
    for (const [id, view] of this.#views) {
      view.sent = null;
      this.#scheduleView(id, view, 0);
    }
  }

  #makeViewObservers() {
    const viewOf = (el) => {
      const id = el.dataset.viewConsumerId;
      const view = id && this.#views.get(id);
      return view && view.el === el ? [id, view] : [];
    };
    return {
      resize: new ResizeObserver((entries) => {
        for (const { target } of entries) {
          const [id, view] = viewOf(target);
          if (view) this.#scheduleView(id, view);
        }
      }),
      intersection: new IntersectionObserver((entries) => {
        for (const { target, isIntersecting } of entries) {
          const [id, view] = viewOf(target);
          if (!view) continue;
          view.visible = isIntersecting;
          this.#scheduleView(id, view, isIntersecting ? 0 : VIEW_HIDE_DELAY_MS);
        }
      }),
    };
  }

  // Sizes settle while a layout changes: the last one goes out after a moment; showing a hidden
  // video again goes out at once (it waits for a keyframe already), hiding one after a while
  // (scrolling past should not stop and restart it).
  #scheduleView(consumerId, view, delay = VIEW_SETTLE_MS) {
    clearTimeout(view.timer);
    view.timer = setTimeout(() => this.#sendView(consumerId, view), delay);
  }

  #sendView(consumerId, view) {
    if (this.#views.get(consumerId) !== view || this.#state !== 'joined') return;
    const el = view.el;
    const box = el.getBoundingClientRect();
    const visible = view.visible && box.width > 0 && box.height > 0;
    // The picture's size as drawn: object-fit `cover` fills the box (cropping), `contain` fits in it.
    const vw = el.videoWidth || 16;
    const vh = el.videoHeight || 9;
    const scale = (getComputedStyle(el).objectFit === 'cover' ? Math.max : Math.min)(box.width / vw, box.height / vh);
    const dpr = window.devicePixelRatio || 1;
    const width = Math.round(vw * scale * dpr);
    const height = Math.round(vh * scale * dpr);
    const last = view.sent;
    const moved = (a, b) => Math.abs(a - b) > 0.1 * Math.max(a, b);
    if (last && last.visible === visible && (!visible || (!moved(last.width, width) && !moved(last.height, height)))) return;
    view.sent = { width, height, visible };
    this.setConsumerView(consumerId, visible ? { width, height, visible } : { width: 0, height: 0, visible })
      .catch(() => { view.sent = null; }); // told again at the next change
  }

  sendMessage(text) { return this.#request('sendMessage', { text }); }

  /** Pull room: receive these sources of a peer (now if live, else once it starts them). */
  pull(peerId, sources) { return this.#request('pull', { peerId, sources: [...sources] }); }
  /** Invite room, admins: let a peer publish these of its declared sources (once each). */
  invite(peerId, sources) { return this.#request('invite', { peerId, sources: [...sources] }); }
  /** Invite room, admins: withdraw an invitation; the peer's producers of these sources close. */
  deinvite(peerId, sources) { return this.#request('deinvite', { peerId, sources: [...sources] }); }
  /** Admins: pause (muted = true) or resume another peer's source for everyone. */
  mutePeer(peerId, source, muted) { return this.#request('mutePeer', { peerId, source, muted }); }
  /** Invite room: raise a hand, asking the admins to invite us to publish these sources. */
  requestProduce(sources) { return this.#request('requestProduce', { sources: [...sources] }); }

  /** Leaves the room and closes everything. Emits no further events; join() may be called again. */
  async leave() {
    const wasInRoom = this.#roomId && this.#conn?.isOpen;
    this.#state = 'closed';
    this.#session++;
    this.#stopKeepalive();
    if (wasInRoom) await this.#request('leaveRoom').catch(() => {});
    this.#closeConnection();
    this.#resetMedia({ announce: false });
    this.#peerId = this.#resumeToken = this.#roomId = this.#serveMode = this.#role = null;
    this.#pendingRestore = this.#unackedAnswer = null;
    this.#recording = false;
    this.#formerPeerIds.clear();
  }

  /** Numbers for automation and tests, from getStats() of both transports. */
  async stats() {
    const consumersByTrack = new Map([...this.#consumers.values()].map((c) => [c.track?.id, c]));
    const producersByMid = new Map([...this.#producers.values()].map((p) => [p.mid, p]));
    const inbound = await rtpStats(this.#recvPC, 'inbound-rtp',
      (s) => (s.mid != null && this.#consumers.get(s.mid)) || consumersByTrack.get(s.trackIdentifier),
      (s, c, codec) => ({
        peerId: c.peerId, source: c.source, kind: s.kind ?? c.kind, consumerId: c.consumerId, codec,
        framesDecoded: s.framesDecoded ?? 0, packetsReceived: s.packetsReceived ?? 0,
        packetsLost: s.packetsLost ?? 0, totalAudioEnergy: s.totalAudioEnergy ?? 0,
        audioLevel: s.audioLevel ?? 0, bytesReceived: s.bytesReceived ?? 0,
        frameWidth: s.frameWidth ?? 0, frameHeight: s.frameHeight ?? 0, framesPerSecond: s.framesPerSecond ?? 0,
        freezeCount: s.freezeCount ?? 0, totalFreezesDuration: s.totalFreezesDuration ?? 0,
        keyFramesDecoded: s.keyFramesDecoded ?? 0, pliCount: s.pliCount ?? 0, nackCount: s.nackCount ?? 0,
        spatialLayer: c.spatialLayer ?? null,
      }));
    const outbound = await rtpStats(this.#sendPC, 'outbound-rtp', (s) => producersByMid.get(s.mid),
      (s, p, codec) => ({
        source: p.source, kind: s.kind ?? p.kind, producerId: p.producerId, codec,
        packetsSent: s.packetsSent ?? 0, bytesSent: s.bytesSent ?? 0, framesEncoded: s.framesEncoded ?? 0,
        scalabilityMode: s.scalabilityMode ?? null,
        targetBitrate: s.targetBitrate ?? 0, rid: s.rid ?? null, frameWidth: s.frameWidth ?? 0,
        frameHeight: s.frameHeight ?? 0, framesPerSecond: s.framesPerSecond ?? 0,
        qualityLimitationReason: s.qualityLimitationReason ?? null,
        keyFramesEncoded: s.keyFramesEncoded ?? 0, pliCount: s.pliCount ?? 0, active: s.active ?? null,
      }));
    const transports = { send: await pairStats(this.#sendPC), recv: await pairStats(this.#recvPC) };
    return { inbound, outbound, transports };
  }

  // ---- connection and reconnection ----

  async #connect(session) {
    // onClose fires only after open, so `conn` is set by then.
    const conn = await Connection.open(this.#url, {
      onNotification: (method, data) => this.#onNotification(method, data),
      onClose: (info) => this.#onSocketClosed(conn, info),
      onStrayError: (error) => this.#emitError(new VClassError(error.code ?? 'internal', error.message), 'server'),
    });
    if (session !== this.#session) { // leave() (and maybe a new join) happened meanwhile
      conn.close();
      throw new VClassError('disconnected', 'session ended');
    }
    this.#conn = conn;
    this.#startKeepalive();
    return conn;
  }

  #request(method, data = {}) {
    if (!this.#conn) return Promise.reject(new VClassError('disconnected', `${method}: not connected`));
    return this.#conn.request(method, data);
  }

  #closeConnection() {
    this.#stopKeepalive();
    this.#conn?.close(1000, 'bye');
    this.#conn = null;
  }

  #adoptJoin(res) {
    if (this.#peerId && this.#peerId !== res.peerId) this.#formerPeerIds.add(this.#peerId);
    this.#peerId = res.peerId;
    this.#resumeToken = res.resumeToken ?? null;
    if (res.role !== undefined) this.#role = res.role ?? null;
  }

  // The server pings us, but a half-open TCP connection (a network change) is only noticed
  // by the side that sends; our own ping makes us notice within seconds.
  #startKeepalive() {
    this.#stopKeepalive();
    this.#keepaliveTimer = setInterval(() => {
      const conn = this.#conn;
      conn?.request('ping').catch((err) => {
        if (err.code !== 'timeout' || conn !== this.#conn) return;
        conn.close(4000, 'keepalive timeout');
        this.#onSocketClosed(conn, { code: 4000, reason: 'keepalive timeout' });
      });
    }, KEEPALIVE_INTERVAL_MS);
  }

  #stopKeepalive() {
    clearInterval(this.#keepaliveTimer);
    this.#keepaliveTimer = null;
  }

  #onSocketClosed(conn, { code, reason }) {
    if (conn !== this.#conn) return;
    this.#conn = null;
    this.#stopKeepalive();
    // A join in progress, or a reconnect attempt, fails by its pending requests; leave() is silent.
    if (this.#state !== 'joined') return;
    const why = this.#serverDisconnectReason ?? (reason || `socket closed (${code})`);
    if (FINAL_DISCONNECT_REASONS.has(this.#serverDisconnectReason)) {
      this.#finish(why, this.#serverDisconnectReason);
      return;
    }
    this.#state = 'reconnecting';
    this.#emit('disconnected', { reason: why, code: this.#serverDisconnectReason ?? 'connectionLost', willReconnect: true });
    this.#reconnect(this.#session);
  }

  #finish(reason, code) {
    this.#state = 'closed';
    this.#closeConnection();
    this.#resetMedia({ announce: true });
    this.#recording = false;
    this.#emit('disconnected', { reason, code, willReconnect: false });
  }

  async #reconnect(session) {
    const stale = () => session !== this.#session; // leave() meanwhile
    for (let attempt = 0, backoff = 0; attempt < this.#maxReconnectAttempts; attempt++, backoff++) {
      const delay = Math.min(RECONNECT_MAX_DELAY_MS, RECONNECT_BASE_DELAY_MS * 2 ** backoff);
      await sleep(delay * (0.75 + Math.random() / 2)); // jitter: a restarted server is not stormed
      if (stale()) return;
      try {
        const resumed = await this.#rejoin(session);
        if (stale()) return;
        this.#state = 'joined';
        if (resumed) this.#resendViews();
        this.#emit('reconnected', { resumed, peerId: this.#peerId });
        return;
      } catch (err) {
        if (stale()) return;
        this.#closeConnection();
        // The node we were sent to is gone: start again where we came in; the
        // cluster sends us to the room's new node once the dead node's claim
        // lapses (a few seconds), so keep trying about every second meanwhile.
        if (err.code === 'connectFailed' && this.#url !== this.#entryUrl) {
          this.#url = this.#entryUrl;
          backoff = 0; // the next delay is then about a second
        }
        if (FINAL_JOIN_ERRORS.has(err.code)) {
          this.#finish(`${err.code}: ${err.message}`, err.code);
          return;
        }
      }
    }
    this.#finish('reconnect failed', 'reconnectFailed');
  }

  /** Resumes the old peer if the server still has it, else joins afresh; true when resumed. */
  async #rejoin(session) {
    this.#serverDisconnectReason = null;
    await this.#connect(session);
    let res = null;
    // A half-done restore has a new peer that may not be in the room yet: finish it afresh.
    if (this.#resumeToken && !this.#pendingRestore) {
      this.#recordingTold = false;
      try {
        res = await this.#request('join', { ...this.#joinParams,
          resume: { peerId: this.#peerId, token: this.#resumeToken } });
      } catch (err) {
        if (err.code === 'disconnected' || err.code === 'timeout') throw err;
        res = null; // resume refused: join as a new peer below
      }
    }
    if (res?.resumed) {
      this.#resumeToken = res.resumeToken ?? this.#resumeToken;
      if (res.serveMode !== undefined) this.#serveMode = res.serveMode ?? null;
      if (res.role !== undefined) this.#role = res.role ?? null;
      if (res.recording !== undefined && !this.#recordingTold) this.#setRecording(Boolean(res.recording));
      if (this.#unackedAnswer) {
        // Sent before restartIce: the server handles requests in order and may still await it.
        this.#request('answer', this.#unackedAnswer).then(() => { this.#unackedAnswer = null; }, () => {});
      }
      this.#restartIce('recv');
      this.#restartIce('send');
      if (this.#lostProduce || this.#unwantedProducers.length) this.#settleSendSoon();
      return true;
    }
    res ??= await this.#request('join', this.#joinParams);
    this.#adoptJoin(res);
    await this.#restoreSession();
    return false;
  }

  /** After a fresh join the server knows nothing of us: rebuild the room and our publications. */
  async #restoreSession() {
    // Kept until done: if this attempt fails too, the next one still knows what to rebuild.
    this.#pendingRestore ??= {
      roomId: this.#roomId,
      republish: [...this.#producers.values()].map(({ track, source, paused }) => ({ track, source, paused })),
    };
    const { roomId, republish } = this.#pendingRestore;
    this.#resetMedia({ announce: true });
    if (roomId) {
      await this.#joinRoom(roomId);
      // Published together, so they share one `produce`.
      const live = republish.filter(({ track }) => track.readyState === 'live');
      const results = await Promise.allSettled(live.map(async ({ track, source, paused }) => {
        await this.#publish(track, source);
        if (paused) await this.pause(source);
      }));
      for (const r of results) {
        if (r.status !== 'rejected') continue;
        if (r.reason?.code === 'disconnected') throw r.reason; // retry the whole rejoin
        this.#emitError(r.reason, 'republish');
      }
    }
    this.#pendingRestore = null;
  }

  // ---- notifications ----

  #onNotification(method, data) {
    switch (method) {
      case 'peerJoinRoom': this.#addPeer(data); break;
      case 'peerLeaveRoom': this.#removePeer(data.peerId, data.reason); break;
      case 'newProducer': this.#onNewProducer(data); break;
      case 'producerClosed': this.#onProducerClosed(data); break;
      case 'newConsumer': this.#onNewConsumer(data); break;
      case 'consumerClosed': this.#onConsumerClosed(data.consumerId); break;
      case 'consumerPaused': this.#setConsumerPaused(data.consumerId, true, data.reason); break;
      case 'consumerResumed': this.#setConsumerPaused(data.consumerId, false, data.reason); break;
      case 'consumerLayersChanged': this.#onConsumerLayers(data); break;
      case 'layersWanted': this.#onLayersWanted(data); break;
      case 'offer': this.#onOffer(data); break;
      case 'iceCandidate': this.#onRemoteCandidate(data); break;
      case 'activeSpeaker':
        this.#emit('activespeaker', { peerId: data.peerId ?? null, volume: data.volume ?? -127 });
        break;
      case 'connectionQuality':
        this.#emit('connectionquality', { peers: (data.peers ?? []).map((q) => ({ ...q,
          upload: q.upload ?? null, download: q.download ?? null })) });
        break;
      case 'newMessage':
        this.#emit('message', { ...data, self: data.peerId === this.#peerId });
        break;
      case 'produceSources':
        this.#emit('producesources', { sources: [...(data.sources ?? [])], by: data.by ?? null });
        break;
      case 'closeSources':
        this.#emit('closesources', { sources: [...(data.sources ?? [])], by: data.by ?? null });
        break;
      case 'requestProduce':
        this.#emit('requestproduce', { peerId: data.peerId, displayName: data.displayName ?? '',
          sources: [...(data.sources ?? [])] });
        break;
      case 'producerPaused': this.#onLocalProducerPaused(data, true); break;
      case 'producerResumed': this.#onLocalProducerPaused(data, false); break;
      case 'disconnect': this.#serverDisconnectReason = data.reason ?? 'disconnect'; break;
      case 'recording':
        this.#recordingTold = true;
        this.#setRecording(Boolean(data.active));
        break;
      default: break; // newer servers may notify more; ignoring is forward compatible
    }
  }

  #addPeer(peer) {
    if (this.#formerPeerIds.has(peer.peerId)) return;
    const entry = { peerId: peer.peerId, displayName: peer.displayName, role: peer.role ?? null,
      sources: peer.sources ?? [],
      producers: (peer.producers ?? []).map((p) => ({ ...p })) };
    this.#peers.set(entry.peerId, entry);
    this.#emit('peerjoined', entry);
  }

  #removePeer(peerId, reason) {
    const peer = this.#peers.get(peerId);
    for (const [mid, c] of this.#consumers) {
      if (c.peerId === peerId) { this.#consumers.delete(mid); this.#endConsumer(c); }
    }
    if (!peer) return;
    this.#peers.delete(peerId);
    this.#emit('peerleft', { peerId, displayName: peer.displayName, reason: reason ?? null });
  }

  #onNewProducer({ peerId, producerId, source, kind, layers }) {
    const peer = this.#peers.get(peerId);
    if (peer) peer.producers.push({ producerId, source, kind, paused: false, layers: layers ?? null });
    this.#emit('newproducer', { peerId, producerId, source, kind, layers: layers ?? null });
  }

  #onProducerClosed({ peerId, producerId }) {
    if (peerId === this.#peerId) {
      // The server closed one of ours: retire its m-line so the next offer stays truthful.
      const mine = [...this.#producers.values()].find((p) => p.producerId === producerId);
      if (!mine) return;
      this.#producers.delete(mine.source);
      this.#transceiversToStop.push(mine.transceiver);
      this.#scheduleSendNegotiation().catch((err) => this.#emitError(err, 'produce'));
      this.#emit('producerclosed', { peerId, producerId, source: mine.source, local: true });
      return;
    }
    const peer = this.#peers.get(peerId);
    const producer = peer?.producers.find((p) => p.producerId === producerId);
    if (peer) peer.producers = peer.producers.filter((p) => p.producerId !== producerId);
    this.#emit('producerclosed', { peerId, producerId, source: producer?.source ?? null, local: false });
  }

  /** The portal muted (unmuted) one of our producers: mirror it locally and tell the page. */
  #onLocalProducerPaused({ producerId, source }, paused) {
    const mine = [...this.#producers.values()].find((p) => p.producerId === producerId);
    if (mine) {
      mine.paused = paused;
      mine.track.enabled = !paused;
    }
    this.#emit(paused ? 'localpaused' : 'localresumed', { producerId, source: mine?.source ?? source ?? null });
  }

  #onNewConsumer(data) {
    if (this.#formerPeerIds.has(data.peerId)) { // our own ghost: do not receive ourselves
      this.pauseConsumer(data.consumerId).catch(() => {});
      return;
    }
    const previous = this.#consumers.get(data.mid);
    if (previous) this.#endConsumer(previous); // m-line reused without consumerClosed
    this.#consumers.set(data.mid, { consumerId: data.consumerId, producerId: data.producerId,
      peerId: data.peerId, source: data.source, kind: data.kind, mid: data.mid,
      paused: Boolean(data.paused), layers: data.layers ?? null, spatialLayer: null,
      track: null, stream: null });
  }

  /**
   * Dynacast: nobody receives our simulcast layers above spatialLayer (-1: nobody receives any),
   * so they stop encoding; the smallest always goes on, ready for whoever comes. A scalable
   * (SVC) stream drops its spatial layers above it the same way.
   */
  #onLayersWanted({ producerId, spatialLayer }) {
    const p = [...this.#producers.values()].find((x) => x.producerId === producerId);
    const sender = p?.transceiver?.sender;
    if (!sender) return;
    // One change at a time per sender, the latest wanted: getParameters during a pending
    // setParameters would see the old encodings.
    p.layersWanted = spatialLayer;
    if (p.layersApplying) return;
    p.layersApplying = (async () => {
      for (let applied = null; applied !== p.layersWanted;) {
        applied = p.layersWanted;
        const params = sender.getParameters();
        if (p.svc && params.encodings?.length === 1) {
          const e = params.encodings[0];
          const want = svcEncoding(applied);
          if (e.scalabilityMode !== want.scalabilityMode || (e.scaleResolutionDownBy ?? 1) !== want.scaleResolutionDownBy) {
            Object.assign(e, want);
            await sender.setParameters(params);
          }
          continue;
        }
        if (!params.encodings || params.encodings.length < 2) break;
        let changed = false;
        params.encodings.forEach((e, i) => {
          const active = i <= Math.max(0, applied);
          if (e.active !== active) { e.active = active; changed = true; }
        });
        if (changed) await sender.setParameters(params);
      }
    })().catch((err) => this.#emitError(err, 'layersWanted'))
      .finally(() => { p.layersApplying = null; });
  }

  #onConsumerLayers({ consumerId, spatialLayer }) {
    const c = [...this.#consumers.values()].find((x) => x.consumerId === consumerId);
    if (!c) return;
    c.spatialLayer = spatialLayer;
    this.#emit('layerschanged', this.#consumerView(c));
  }

  #onConsumerClosed(consumerId) {
    for (const [mid, c] of this.#consumers) {
      if (c.consumerId === consumerId) { this.#consumers.delete(mid); this.#endConsumer(c); }
    }
  }

  /** reason: 'producer' (its publisher paused it) or 'bandwidth' (our link cannot carry it now). */
  #setConsumerPaused(consumerId, paused, reason) {
    const c = [...this.#consumers.values()].find((x) => x.consumerId === consumerId);
    if (!c) return;
    c.paused = paused;
    c.pausedReason = paused ? (reason ?? 'producer') : null;
    if (c.track) this.#emit(paused ? 'trackpaused' : 'trackresumed', this.#consumerView(c));
  }

  #endConsumer(c) {
    this.unwatchVideo(c.consumerId);
    if (c.track) this.#emit('trackended', this.#consumerView(c));
  }

  #consumerView(c) {
    return { ...c }; // a copy: listeners must not change our bookkeeping
  }

  // ---- recv transport ----

  #ensureRecvPC() {
    if (!this.#recvPC) this.#recvPC = this.#createPC('recv');
    return this.#recvPC;
  }

  #onOffer({ sdp, version }) {
    this.#recvOffersPending++; // from now on, candidates may belong to this offer's ICE credentials
    this.#recvQueue.run(async () => {
      const pc = this.#ensureRecvPC();
      try {
        await pc.setRemoteDescription({ type: 'offer', sdp });
        await pc.setLocalDescription(await pc.createAnswer());
        this.#announceTracks(pc);
        this.#unackedAnswer = { sdp: pc.localDescription.sdp, version };
        await this.#request('answer', this.#unackedAnswer);
        this.#unackedAnswer = null;
      } finally {
        this.#recvOffersPending--;
        this.#flushRemoteCandidates('recv');
      }
    }).catch((err) => {
      if (err.code === 'disconnected') return; // resent after a resume
      this.#unackedAnswer = null;
      if (err.code !== 'staleVersion') this.#emitError(err, 'answer'); // stale: a newer offer follows
    });
  }

  /** Emits `track` for every consumer whose m-line the last negotiation made live. */
  #announceTracks(pc) {
    for (const transceiver of pc.getTransceivers()) {
      const c = transceiver.mid != null && this.#consumers.get(transceiver.mid);
      // An m-line reused for a new consumer may still be inactive until the next offer.
      const receiving = transceiver.currentDirection === 'recvonly' || transceiver.currentDirection === 'sendrecv';
      if (!c || c.track || !receiving) continue;
      c.track = transceiver.receiver.track;
      c.stream = new MediaStream([c.track]);
      this.#emit('track', this.#consumerView(c));
    }
  }

  // ---- send transport ----

  /** Queues one send negotiation; requests made before it starts share it (one `produce`). */
  #scheduleSendNegotiation() {
    this.#sendTask ??= this.#sendQueue.run(() => {
      this.#sendTask = null;
      return this.#negotiateSend();
    });
    return this.#sendTask;
  }

  async #negotiateSend() {
    const batch = this.#pendingPublishes.splice(0);
    const toStop = this.#transceiversToStop.splice(0);
    let iceRestart = this.#sendIceRestartWanted;
    this.#sendIceRestartWanted = false;
    if (!batch.length && !toStop.length && !iceRestart && !this.#lostProduce && !this.#unwantedProducers.length) return;
    if (!this.#sendPC) {
      if (!batch.length) return; // nothing negotiated yet: nothing to restart or retire
      this.#sendPC = this.#createPC('send');
      iceRestart = false;
    }
    const pc = this.#sendPC;
    for (const transceiver of toStop) {
      try { transceiver.stop(); } catch { /* the transport is already closed */ }
    }
    const added = batch.map((p) => ({ ...p, transceiver: pc.addTransceiver(p.track, sendInit(p)) }));
    for (const p of added) if (p.codec) preferCodec(p.transceiver, p.track.kind, p.codec);
    this.#sendBusy = true;
    let producers = [];
    try {
      await this.#settleLostProduce(pc);
      if (!batch.length && !toStop.length && !iceRestart) return;
      await pc.setLocalDescription(await pc.createOffer({ iceRestart }));
      // Only new m-lines are producers; mids exist once the offer is applied locally.
      producers = added.map((p) => ({ mid: p.transceiver.mid, source: p.source }));
      const res = await this.#request('produce', { offer: pc.localDescription.sdp, producers });
      await pc.setRemoteDescription({ type: 'answer', sdp: res.answer });
      for (const p of added) this.#adoptProducer(p, res.producers ?? []);
    } catch (err) {
      if (pc.signalingState === 'have-local-offer') {
        if (err.code === 'timeout' || err.code === 'disconnected') {
          // The server may have applied the offer and made the producers: rolling back would
          // part our state from its. The offer waits, and is settled next (after a resume, if the
          // socket went down).
          this.#lostProduce ??= producers;
          if (err.code === 'timeout') this.#settleSendSoon();
        } else {
          await pc.setLocalDescription({ type: 'rollback' }).catch(() => {}); // the server kept its state too
          this.#lostProduce = null; // a refused repeat: nothing more to settle
        }
      }
      for (const p of added) {
        try { p.transceiver.stop(); } catch { /* closed */ }
        p.reject(err);
      }
      if (iceRestart) this.#scheduleIceRestart('send', 0); // retried only if ICE is still down
      if (!added.length) throw err;
    } finally {
      this.#sendBusy = false;
      this.#flushRemoteCandidates('send');
    }
  }

  /** Sends a lost `produce` again with `repeat`: the server makes nothing and lists what the
   * lost one made, which we close (its publish was reported as failed); ids not closed yet are
   * tried again next time. */
  async #settleLostProduce(pc) {
    if (this.#lostProduce && pc.signalingState === 'have-local-offer') {
      const res = await this.#request('produce',
        { offer: pc.localDescription.sdp, producers: this.#lostProduce, repeat: true });
      await pc.setRemoteDescription({ type: 'answer', sdp: res.answer });
      this.#unwantedProducers.push(...(res.producers ?? []).map((p) => p.producerId));
    }
    this.#lostProduce = null;
    const unwanted = this.#unwantedProducers.splice(0);
    for (const producerId of unwanted) {
      await this.#request('closeProducer', { producerId }).catch((err) => {
        if (err.code === 'timeout' || err.code === 'disconnected') this.#unwantedProducers.push(producerId);
        // else unknownProducer (closed already) or notInRoom: nothing left to close
      });
    }
  }

  /** Settles a lost `produce` in a negotiation of its own, once the socket can carry it. */
  #settleSendSoon() {
    setTimeout(() => {
      if (this.#conn?.isOpen && this.#state === 'joined') {
        this.#scheduleSendNegotiation().catch((err) => this.#emitError(err, 'produce'));
      }
    }, 0);
  }

  #adoptProducer(pending, accepted) {
    const { track, source, transceiver, resolve, reject } = pending;
    const info = accepted.find((x) => x.mid === transceiver.mid);
    if (!info) {
      transceiver.stop();
      reject(new VClassError('internal', `the server made no producer for ${source}`));
      return;
    }
    const producer = { producerId: info.producerId, source, kind: info.kind ?? track.kind,
      mid: transceiver.mid, track, transceiver, paused: false, svc: Boolean(pending.svc) };
    this.#producers.set(source, producer);
    resolve({ producerId: producer.producerId, source, kind: producer.kind });
  }

  // ---- both transports: ICE ----

  #createPC(transport) {
    const pc = new RTCPeerConnection(this.#rtcConfig);
    pc.onicecandidate = ({ candidate }) => {
      // The protocol has no client-side end-of-candidates marker: skip null / empty.
      if (!candidate?.candidate || pc !== this.#pcOf(transport)) return;
      this.#request('iceCandidate', { transport, candidate: candidate.toJSON() }).catch((err) => {
        // After a reconnect the ICE restart gathers fresh candidates anyway.
        if (err.code !== 'disconnected') this.#emitError(err, 'iceCandidate');
      });
    };
    pc.oniceconnectionstatechange = () => {
      if (pc !== this.#pcOf(transport)) return;
      const state = pc.iceConnectionState;
      if (state === 'failed') this.#scheduleIceRestart(transport, 0);
      else if (state === 'disconnected') this.#scheduleIceRestart(transport, ICE_DISCONNECTED_GRACE_MS);
      else if (state === 'connected' || state === 'completed') this.#cancelIceRestart(transport);
    };
    return pc;
  }

  #pcOf(transport) {
    return transport === 'send' ? this.#sendPC : this.#recvPC;
  }

  #onRemoteCandidate({ transport, candidate }) {
    // null marks the end of the server's candidates; Chromium needs nothing for it, and an end
    // marker kept across an ICE restart would close the wrong generation.
    if (!candidate || (transport !== 'send' && transport !== 'recv')) return;
    const pc = transport === 'recv' ? this.#ensureRecvPC() : this.#sendPC;
    if (!pc) return;
    const busy = transport === 'send' ? this.#sendBusy : this.#recvOffersPending > 0;
    if (busy || !pc.remoteDescription || pc.signalingState !== 'stable') {
      this.#remoteCandidates[transport].push(candidate);
      return;
    }
    pc.addIceCandidate(candidate).catch((err) => this.#emitError(err, 'addIceCandidate'));
  }

  #flushRemoteCandidates(transport) {
    const pc = this.#pcOf(transport);
    const busy = transport === 'send' ? this.#sendBusy : this.#recvOffersPending > 0;
    if (!pc || busy || !pc.remoteDescription || pc.signalingState !== 'stable') return;
    for (const candidate of this.#remoteCandidates[transport].splice(0)) {
      // A candidate of an older ICE generation may fail to apply: harmless.
      pc.addIceCandidate(candidate).catch(() => {});
    }
  }

  #scheduleIceRestart(transport, delay) {
    if (this.#iceRestartTimers[transport]) return;
    const sinceLast = Date.now() - this.#lastIceRestart[transport];
    const wait = Math.max(delay, ICE_RESTART_MIN_INTERVAL_MS - sinceLast);
    this.#iceRestartTimers[transport] = setTimeout(() => {
      this.#iceRestartTimers[transport] = null;
      const state = this.#pcOf(transport)?.iceConnectionState;
      // With the socket down, the reconnect restarts ICE after resuming.
      if (this.#conn?.isOpen && this.#state === 'joined' && (state === 'disconnected' || state === 'failed')) {
        this.#restartIce(transport);
      }
    }, wait);
  }

  #cancelIceRestart(transport) {
    clearTimeout(this.#iceRestartTimers[transport]);
    this.#iceRestartTimers[transport] = null;
  }

  #restartIce(transport) {
    this.#cancelIceRestart(transport);
    this.#lastIceRestart[transport] = Date.now();
    if (transport === 'recv') {
      // The server answers with a fresh `offer` for the recv transport.
      if (!this.#recvPC || !this.#roomId) return;
      this.#request('restartIce').catch((err) => {
        this.#emitError(err, 'restartIce');
        this.#scheduleIceRestart('recv', 0); // retried only if ICE is still down
      });
    } else if (this.#sendPC?.remoteDescription) {
      this.#sendIceRestartWanted = true;
      this.#scheduleSendNegotiation().catch((err) => this.#emitError(err, 'produce'));
    }
  }

  // ---- helpers ----

  /** Drops both transports and everything on them (announce: emit trackended / peerleft). */
  #resetMedia({ announce }) {
    for (const c of this.#consumers.values()) if (announce) this.#endConsumer(c);
    for (const id of [...this.#views.keys()]) this.unwatchVideo(id);
    this.#consumers.clear();
    if (announce) for (const peerId of [...this.#peers.keys()]) this.#removePeer(peerId, 'reset');
    this.#peers.clear();
    for (const p of this.#pendingPublishes.splice(0)) p.reject(new VClassError('disconnected', 'session reset'));
    this.#transceiversToStop = [];
    this.#producers.clear();
    this.#sendIceRestartWanted = false;
    this.#lostProduce = null;
    this.#unwantedProducers = [];
    this.#unackedAnswer = null;
    for (const transport of ['send', 'recv']) {
      this.#cancelIceRestart(transport);
      this.#remoteCandidates[transport] = [];
    }
    this.#sendPC?.close();
    this.#recvPC?.close();
    this.#sendPC = this.#recvPC = null;
    this.#roomId = this.#serveMode = null;
  }

  #setRecording(active) {
    if (active === this.#recording) return;
    this.#recording = active;
    this.#emit('recording', { active });
  }

  #requireState(state, what) {
    if (this.#state !== state) throw new VClassError('invalidState', `${what}: client is ${this.#state}`);
  }

  #requireProducer(source) {
    const producer = this.#producers.get(source);
    if (!producer) throw new VClassError('unknownProducer', `${source} is not published`);
    return producer;
  }

  #emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  #emitError(err, context) {
    if (err?.code === 'disconnected') return; // the `disconnected` event already told the page
    this.#emit('error', { code: err?.code ?? err?.name ?? 'internal', message: err?.message ?? String(err), context });
  }
}
