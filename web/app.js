// app.js: the class page. Join form (with a camera preview, device choice and a microphone
// meter) → class view with a tile per participant, controls, participants and chat.
// All signaling and WebRTC lives in vclass.js; strings live in i18n.js, devices in devices.js;
// this file only turns events into DOM.

import { VClassClient } from './vclass.js';
import { t, currentLang, setLang, applyStrings, formatTime, errorText, disconnectText } from './i18n.js';
import {
  canChooseSpeaker, chosen, constraints, fallbackDevice, fillSelect, levelMeter, listDevices, remember,
} from './devices.js';

const SOURCES = ['audio:mic', 'video:cam', 'video:screen'];
// What a raised hand asks for, and what a teacher's "Invite" on a tile offers.
const HAND_SOURCES = ['video:cam', 'audio:mic'];

const $ = (id) => document.getElementById(id);

// Small line icons (24 x 24, drawn with the text's colour): the participant list's states and
// the tiles' buttons; each goes with a text label for screen readers.
const ICONS = {
  mic: 'M12 3a3 3 0 0 1 3 3v6a3 3 0 0 1-6 0V6a3 3 0 0 1 3-3zM6 11a6 6 0 0 0 12 0M12 17v4M8 21h8',
  cam: 'M3 7h12v10H3zM15 10l6-3v10l-6-3',
  hand: 'M8 13V6a1.5 1.5 0 0 1 3 0v5M11 11V4a1.5 1.5 0 0 1 3 0v7M14 11V5.5a1.5 1.5 0 0 1 3 0V14a7 7 0 0 1-7 7h-.5A5.5 5.5 0 0 1 5 17.5L3.5 13a1.5 1.5 0 0 1 2.8-1L8 15',
  pin: 'M9 3h6l-1 6 3 3v2H7v-2l3-3zM12 14v7',
  full: 'M4 9V4h5M15 4h5v5M20 15v5h-5M9 20H4v-5',
  off: 'M3 3l18 18',
};

function icon(...names) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.classList.add('icon');
  for (const name of names) {
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('d', ICONS[name]);
    svg.append(path);
  }
  return svg;
}
const ui = {
  banner: $('banner'), bannerText: $('banner-text'), bannerClose: $('banner-close'),
  roomTitle: $('room-title'), recIndicator: $('rec-indicator'), connStatus: $('conn-status'),
  langSelect: $('lang-select'),
  joinView: $('join-view'), joinForm: $('join-form'),
  joinName: $('join-name'), joinRoom: $('join-room'), joinCam: $('join-cam'), joinMic: $('join-mic'),
  joinButton: $('join-button'), previewVideo: $('preview-video'), previewOff: $('preview-off'),
  devices: $('devices'), cameraSelect: $('camera-select'), micSelect: $('mic-select'),
  speakerSelect: $('speaker-select'), micMeter: $('mic-meter'),
  classView: $('class-view'), tiles: $('tiles'),
  camButton: $('cam-button'), micButton: $('mic-button'), screenButton: $('screen-button'),
  layoutButton: $('layout-button'), devicesButton: $('devices-button'),
  soundButton: $('sound-button'), leaveButton: $('leave-button'),
  messages: $('messages'), chatForm: $('chat-form'), chatInput: $('chat-input'),
  handButton: $('hand-button'), handsPanel: $('hands-panel'), handsList: $('hands-list'),
  peopleHeading: $('people-heading'), peopleList: $('people-list'),
  recordDialog: $('record-dialog'), devicesDialog: $('devices-dialog'), devicesSlot: $('devices-slot'),
};

const client = new VClassClient();
// Read by automation (chromedp tests): keep the shape stable.
const state = {
  joined: false, peerId: null, roomId: null, displayName: null,
  peers: {}, // other peers: peerId → {displayName, sources, role}
  messages: [], // {peerId, displayName, text, time}
  activeSpeaker: null,
  error: null,
  serveMode: null, // Open | Pull | Invite (as the server names it)
  raisedHands: [], // pending requests (admins only): {peerId, displayName, sources}
  teacherControls: false, // invite/deinvite controls on remote tiles
  recording: false, // a recorder is in the room
  quality: {}, // peerId → {quality, upload, download}: the server's view of each connection
  layout: 'grid', // grid | speaker
  pinned: null, // "peerId source" of the tile shown large in speaker view
  uploadPoor: false, // the server rates our own upload poor
  lang: currentLang(),
};

// Our own tracks; the SDK publishes them but the page owns (and stops) them.
const local = { mic: null, cam: null, screen: null };
// The join form's preview: tracks that become `local`'s when the class starts.
const preview = { cam: null, mic: null };
window.vclass = { client, state, local };
let micMuted = false;
let stopMeter = () => {};
// Bumped when a class ends or a join starts: a join whose class ended meanwhile stops there.
let joinGen = 0;
// Bumped by each startPreview: a preview overtaken by a newer one drops what it got.
let previewGen = 0;
const inClass = () => !ui.classView.hidden;

const params = new URLSearchParams(location.search);
// Deep link flag: show the teacher's invite controls even before any hand was raised.
const teacherFlag = params.get('teacher') === '1';
const adaptiveStream = params.get('adaptive') !== '0'; // ?adaptive=0: every video at the largest layer the link affords
// ?codec=vp9: the camera in a codec the server lists (VP9: one scalable stream rather than simulcast).
const cameraCodec = params.get('codec') ? `video/${params.get('codec')}` : undefined;
// ?simulcast=0: the camera as one stream.
const cameraSimulcast = params.get('simulcast') === '0' ? false : undefined;
// Only admins get `requestproduce`: one arriving proves we may invite.
let gotHandRequest = false;
// Peers this page invited (and did not deinvite since), for the tiles' Invite/Stop toggle.
const invited = new Set();

// Media starts one after another: a `producesources` during the join waits for its media.
let mediaChain = Promise.resolve();
function queueMedia(task) {
  const run = mediaChain.then(task);
  mediaChain = run.catch(() => {});
  return run;
}

// ---- feedback ----

function setPhase(phase) {
  document.body.dataset.state = phase;
  const status = { joining: t('joining'), reconnecting: t('reconnecting') }[phase] ?? '';
  ui.connStatus.textContent = status;
  ui.connStatus.hidden = !status;
}

/** Shows a message; `key` names it for hideBanner(key), which hides only that one. */
function showBanner(message, kind = 'error', key = '') {
  if (kind === 'error') state.error = message;
  ui.banner.className = kind === 'error' ? 'banner' : 'banner info';
  ui.banner.dataset.key = key;
  ui.bannerText.textContent = message;
  ui.banner.hidden = false;
}

function hideBanner(key) {
  if (key === undefined || ui.banner.dataset.key === key) ui.banner.hidden = true;
}

const describe = (err) => errorText(err);

// ---- tiles ----

// Microphone audio belongs on the participant tile, screen audio on the screen tile.
function tileSourceOf(source) {
  if (source === 'audio:mic') return 'video:cam';
  if (source === 'audio:screen') return 'video:screen';
  return source;
}

function displayNameOf(peerId) {
  if (peerId === state.peerId) return state.displayName;
  return state.peers[peerId]?.displayName ?? t('guest');
}

function initials(name) {
  return name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join('') || '?';
}

function findTile(peerId, source) {
  return ui.tiles.querySelector(`.tile[data-peer-id="${CSS.escape(peerId)}"][data-source="${CSS.escape(source)}"]`);
}

const tileKey = (tile) => `${tile.dataset.peerId} ${tile.dataset.source}`;

function captionOf(tile) {
  const { peerId, source } = tile.dataset;
  const name = displayNameOf(peerId);
  if (source !== 'video:cam') return t('screenOf', { name });
  return peerId === state.peerId ? t('you', { name }) : name;
}

function ensureTile(peerId, source) {
  const existing = findTile(peerId, source);
  if (existing) return existing;
  const isLocal = peerId === state.peerId;
  const tile = document.createElement('figure');
  tile.className = 'tile';
  tile.classList.toggle('local', isLocal);
  tile.classList.toggle('screen', source !== 'video:cam');
  tile.dataset.peerId = peerId;
  tile.dataset.source = source;

  const video = document.createElement('video');
  video.autoplay = true;
  video.playsInline = true;
  video.muted = true; // sound plays in <audio> elements; a muted video may autoplay
  const avatar = document.createElement('div');
  avatar.className = 'avatar';
  avatar.setAttribute('aria-hidden', 'true');
  avatar.textContent = initials(displayNameOf(peerId));
  const caption = document.createElement('figcaption');
  const name = document.createElement('span');
  name.className = 'name';
  const micOff = document.createElement('span');
  micOff.className = 'mic-off';
  const quality = document.createElement('span');
  quality.className = 'quality';
  quality.setAttribute('role', 'img');
  caption.append(quality, name, micOff);
  tile.append(video, avatar, caption);
  labelTile(tile);
  renderTileControls(tile);
  // A double click makes a tile large (twice the columns and rows) or small again: with adaptive
  // stream the server then sends it a larger layer.
  tile.addEventListener('dblclick', () => tile.classList.toggle('large'));

  // Own camera first, screens before cameras (they need the room), others in join order.
  if (isLocal && source === 'video:cam') ui.tiles.prepend(tile);
  else if (source !== 'video:cam') ui.tiles.insertBefore(tile, ui.tiles.querySelector('.tile:not(.screen)'));
  else ui.tiles.append(tile);
  arrangeTiles();
  return tile;
}

/** The tile's words in the page's language: caption, muted mark, quality. */
function labelTile(tile) {
  tile.querySelector('figcaption .name').textContent = captionOf(tile);
  tile.querySelector('.mic-off').textContent = t('muted');
  tile.querySelector('.avatar').textContent = initials(displayNameOf(tile.dataset.peerId));
  tile.title = t('enlargeHint');
  showQuality(tile.querySelector('.quality'), state.quality[tile.dataset.peerId]);
}

function showQuality(el, q) {
  el.setAttribute('role', 'img');
  el.hidden = !q;
  if (!q) return;
  el.dataset.quality = q.quality;
  el.setAttribute('aria-label', t('quality', { q: t(`quality_${q.quality}`) }));
  el.title = el.getAttribute('aria-label');
}

function showVideo(tile, stream, consumerId) {
  const video = tile.querySelector('video');
  video.srcObject = stream;
  const previous = video.dataset.consumerId;
  if (previous && previous !== consumerId) client.unwatchVideo(previous);
  if (consumerId) video.dataset.consumerId = consumerId;
  else delete video.dataset.consumerId;
  // Adaptive stream: the server sends what the tile shows (no layer larger, nothing when hidden).
  if (consumerId && stream && adaptiveStream) client.watchVideo(consumerId, video);
  tile.classList.toggle('has-video', Boolean(stream));
  if (stream) play(video);
  renderPeople();
}

function play(el) {
  el.play().catch((err) => {
    // Autoplay with sound needs a gesture on some pages (deep links): offer a button.
    if (err.name === 'NotAllowedError') ui.soundButton.hidden = false;
  });
}

function attachTrack({ peerId, source, kind, stream, consumerId, paused }) {
  const tile = ensureTile(peerId, tileSourceOf(source));
  if (kind === 'video') {
    showVideo(tile, stream, consumerId);
    tile.classList.toggle('has-video', !paused);
    return;
  }
  const audio = document.createElement('audio');
  audio.autoplay = true;
  audio.dataset.consumerId = consumerId;
  audio.dataset.source = source;
  audio.srcObject = stream;
  tile.append(audio);
  if (canChooseSpeaker && chosen('audiooutput')) audio.setSinkId(chosen('audiooutput')).catch(() => {});
  play(audio);
  if (source === 'audio:mic') tile.classList.toggle('mic-muted', paused);
  renderPeople();
}

function detachTrack({ peerId, source, kind, consumerId }) {
  const tile = findTile(peerId, tileSourceOf(source));
  if (!tile) return;
  if (kind === 'video') {
    if (tile.querySelector('video').dataset.consumerId === consumerId) showVideo(tile, null);
  } else {
    tile.querySelector(`audio[data-consumer-id="${CSS.escape(consumerId)}"]`)?.remove();
  }
  const empty = !tile.classList.contains('has-video') && !tile.querySelector('audio');
  if (tile.classList.contains('screen') && empty) removeTile(tile);
  renderPeople();
}

function removeTile(tile) {
  if (state.pinned === tileKey(tile)) state.pinned = null;
  tile.remove();
  arrangeTiles();
}

function markPaused({ peerId, source, kind, paused }) {
  const tile = findTile(peerId, tileSourceOf(source));
  if (!tile) return;
  if (kind === 'video') tile.classList.toggle('has-video', !paused);
  else if (source === 'audio:mic') tile.classList.toggle('mic-muted', paused);
  renderPeople();
}

function highlightSpeaker(peerId) {
  state.activeSpeaker = peerId;
  for (const tile of ui.tiles.querySelectorAll('.tile.speaking')) tile.classList.remove('speaking');
  if (peerId) findTile(peerId, 'video:cam')?.classList.add('speaking');
  if (state.layout === 'speaker' && !state.pinned) arrangeTiles();
}

// ---- layouts: grid, or speaker view (one tile large: pinned, a screen, the active speaker) ----

function featuredTile() {
  const tiles = [...ui.tiles.querySelectorAll('.tile')];
  const pinned = state.pinned && tiles.find((el) => tileKey(el) === state.pinned);
  if (pinned) return pinned;
  if (state.layout !== 'speaker') return null;
  const speaker = state.activeSpeaker !== state.peerId ? findTile(state.activeSpeaker ?? '', 'video:cam') : null;
  return tiles.find((el) => el.classList.contains('screen'))
    ?? speaker
    ?? tiles.find((el) => !el.classList.contains('local'))
    ?? tiles[0] ?? null;
}

function arrangeTiles() {
  ui.tiles.dataset.layout = state.layout;
  const featured = featuredTile();
  for (const tile of ui.tiles.querySelectorAll('.tile')) {
    const on = tile === featured;
    tile.classList.toggle('featured', on);
    const pin = tile.querySelector('[data-action="pin"]');
    if (pin) {
      const pinned = state.pinned === tileKey(tile);
      pin.setAttribute('aria-pressed', String(pinned));
      pin.title = pinned ? t('unpin') : t('pin');
    }
  }
  ui.layoutButton.textContent = state.layout === 'speaker' ? t('gridView') : t('speakerView');
}

function setLayout(layout) {
  state.layout = layout;
  try { localStorage.setItem('vclass.layout', layout); } catch { /* not remembered */ }
  arrangeTiles();
}

function togglePin(tile) {
  state.pinned = state.pinned === tileKey(tile) ? null : tileKey(tile);
  if (state.pinned && state.layout !== 'speaker') setLayout('speaker');
  else arrangeTiles();
}

// ---- serve modes: pull, invite, raised hands ----

const isMode = (mode) => (state.serveMode ?? '').toLowerCase() === mode;

/** A button wired like the toolbar's (one action at a time, errors in the banner). */
function actionButton(label, action, peerId, run) {
  const button = document.createElement('button');
  button.type = 'button';
  button.textContent = label;
  button.dataset.action = action;
  if (peerId) button.dataset.peerId = peerId;
  onClick(button, run);
  return button;
}

function peerSources(peerId, preferred) {
  const declared = state.peers[peerId]?.sources ?? client.peers.get(peerId)?.sources ?? [];
  const wanted = preferred ? declared.filter((s) => preferred.includes(s)) : declared;
  return wanted.length ? wanted : declared.length ? declared : (preferred ?? HAND_SOURCES);
}

function isPublishing(peerId) {
  return (client.peers.get(peerId)?.producers ?? []).length > 0;
}

async function invitePeer(peerId, sources) {
  await client.invite(peerId, sources);
  invited.add(peerId);
  state.raisedHands = state.raisedHands.filter((h) => h.peerId !== peerId);
  renderHands();
  refreshTileControls();
}

// Microphones this page (as a teacher) muted, for the tiles' Mute/Unmute button.
const mutedMics = new Set();

async function mutePeerMic(peerId, muted) {
  await client.mutePeer(peerId, 'audio:mic', muted);
  if (muted) mutedMics.add(peerId);
  else mutedMics.delete(peerId);
  refreshTileControls();
}

async function deinvitePeer(peerId) {
  await client.deinvite(peerId, peerSources(peerId));
  invited.delete(peerId);
  refreshTileControls();
}

/** A tile's buttons: pin and full screen; a teacher's Invite/Stop and Mute on remote cameras. */
function renderTileControls(tile) {
  const focused = tile.contains(document.activeElement) ? document.activeElement.dataset.action : null;
  tile.querySelector('.tile-actions')?.remove();
  const { peerId, source } = tile.dataset;
  const name = displayNameOf(peerId);
  const box = document.createElement('div');
  box.className = 'tile-actions';
  const pin = iconButton('pin', t('pin'), 'pin', peerId, async () => togglePin(tile));
  pin.setAttribute('aria-pressed', String(state.pinned === tileKey(tile)));
  const full = iconButton('full', t('fullscreen'), 'fullscreen', peerId, async () => {
    if (document.fullscreenElement === tile) await document.exitFullscreen();
    else await tile.requestFullscreen();
  });
  box.append(pin, full);
  if (state.teacherControls && peerId !== state.peerId && source === 'video:cam') {
    const on = invited.has(peerId) || isPublishing(peerId);
    box.append(on
      ? actionButton(t('stopPublishing'), 'deinvite', peerId, () => deinvitePeer(peerId))
      : actionButton(t('invite'), 'invite', peerId, () => invitePeer(peerId, peerSources(peerId, HAND_SOURCES))));
    const muted = mutedMics.has(peerId);
    box.append(actionButton(muted ? t('unmute') : t('mute'), muted ? 'unmute' : 'mute', peerId,
      () => mutePeerMic(peerId, !muted)));
  }
  for (const b of box.children) b.setAttribute('aria-description', name);
  tile.append(box);
  if (focused) box.querySelector(`[data-action="${focused}"]`)?.focus();
}

/** A tile's button with an icon for a face and its label for screen readers and as a tooltip. */
function iconButton(name, label, action, peerId, run) {
  const button = actionButton('', action, peerId, run);
  button.classList.add('icon-button');
  button.setAttribute('aria-label', label);
  button.title = label;
  button.append(icon(name));
  return button;
}

function refreshTileControls() {
  state.teacherControls = teacherFlag || (gotHandRequest && isMode('invite'));
  for (const tile of ui.tiles.querySelectorAll('.tile')) renderTileControls(tile);
  arrangeTiles();
}

function renderHands() {
  document.body.dataset.raisedHands = String(state.raisedHands.length);
  ui.handsPanel.hidden = state.raisedHands.length === 0;
  ui.handsList.replaceChildren(...state.raisedHands.map(({ peerId, displayName, sources }) => {
    const item = document.createElement('li');
    item.dataset.peerId = peerId;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = displayName || displayNameOf(peerId);
    const invite = actionButton(t('invite'), 'invite', peerId, () => invitePeer(peerId, sources));
    const dismiss = actionButton(t('dismiss'), 'dismiss', peerId, async () => {
      state.raisedHands = state.raisedHands.filter((h) => h.peerId !== peerId);
      renderHands();
    });
    item.append(name, invite, dismiss);
    return item;
  }));
  renderPeople();
}

/** What the participant list says of a peer: microphone and camera on or off. */
function mediaOf(peerId) {
  if (peerId === state.peerId) return { mic: Boolean(local.mic) && !micMuted, cam: Boolean(local.cam) };
  const producers = client.peers.get(peerId)?.producers ?? [];
  const tile = findTile(peerId, 'video:cam');
  const has = (source) => producers.some((p) => p.source === source);
  return {
    mic: has('audio:mic') && !(tile?.classList.contains('mic-muted')),
    cam: has('video:cam') && (!tile?.querySelector('video')?.dataset.consumerId || tile.classList.contains('has-video')),
  };
}

/** Everyone in the class with role, raised hand, microphone, camera and connection; in a Pull room a Watch button. */
function renderPeople() {
  if (!inClass()) { ui.peopleList.replaceChildren(); return; }
  const ids = [state.peerId, ...Object.keys(state.peers)];
  ui.peopleHeading.textContent = t('participants', { n: ids.length });
  const pull = isMode('pull');
  const items = ids.map((peerId) => {
    const item = document.createElement('li');
    item.dataset.peerId = peerId;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = peerId === state.peerId ? t('you', { name: state.displayName }) : displayNameOf(peerId);
    item.append(name);
    const role = peerId === state.peerId ? client.role : state.peers[peerId]?.role;
    if (role === 'admin') {
      const b = document.createElement('span');
      b.className = 'badge role';
      b.textContent = t('teacher');
      item.append(b);
    }
    const stateIcon = (cls, label, ...icons) => {
      const b = document.createElement('span');
      b.className = `state ${cls}`;
      b.setAttribute('role', 'img');
      b.setAttribute('aria-label', label);
      b.title = label;
      b.append(icon(...icons));
      item.append(b);
    };
    if (state.raisedHands.some((h) => h.peerId === peerId)) stateIcon('hand', t('handRaised'), 'hand');
    const media = mediaOf(peerId);
    stateIcon(media.mic ? 'on' : 'off', media.mic ? t('micOn') : t('micOff'), 'mic', ...(media.mic ? [] : ['off']));
    stateIcon(media.cam ? 'on' : 'off', media.cam ? t('camOn') : t('camOff'), 'cam', ...(media.cam ? [] : ['off']));
    const q = state.quality[peerId];
    if (q) {
      const el = document.createElement('span');
      el.className = 'quality';
      item.append(el);
      showQuality(el, q);
    }
    if (pull && peerId !== state.peerId) {
      item.append(actionButton(t('watch'), 'watch', peerId, async () => {
        await client.pull(peerId, peerSources(peerId));
        item.classList.add('watching');
      }));
    }
    return item;
  });
  ui.peopleList.replaceChildren(...items);
}

function applyServeMode(mode) {
  state.serveMode = mode ?? null;
  ui.handButton.hidden = !isMode('invite');
  refreshTileControls();
  renderPeople();
}

/** Someone pulled our sources, or a teacher invited us: start what is not live yet. */
async function startRequested(sources) {
  if (state.recording && !document.body.dataset.recordingAgreed) {
    const answer = await askAboutRecording();
    if (answer === 'leave') { await leaveClass(); return; }
    if (answer !== 'continue') return;
  }
  const wanted = sources.filter((s) => SOURCES.includes(s));
  const cam = wanted.includes('video:cam') && !local.cam;
  const mic = wanted.includes('audio:mic') && !local.mic;
  await startInitialMedia({ cam, mic });
  if (wanted.includes('video:screen') && !local.screen) await startScreen();
}

/** A teacher withdrew the invitation: the server closed those producers; drop our side. */
async function stopWithdrawn(sources) {
  const stopped = [];
  if (sources.includes('video:cam') && local.cam) {
    local.cam.stop();
    local.cam = null;
    showVideo(ensureTile(state.peerId, 'video:cam'), null);
    stopped.push('camera');
    await client.unpublish('video:cam').catch(() => {});
  }
  if (sources.includes('audio:mic') && local.mic) {
    local.mic.stop();
    local.mic = null;
    micMuted = false;
    stopped.push('microphone');
    await client.unpublish('audio:mic').catch(() => {});
  }
  if (sources.includes('video:screen') && local.screen) {
    stopped.push('screen');
    await stopScreen().catch(() => {});
  }
  if (stopped.length) showBanner(t('teacherStopped', { what: stopped.map((s) => t(`your_${s}`)).join(t('and')) }), 'info');
}

// ---- chat ----

function addMessage({ peerId, displayName, text, time, self }) {
  state.messages.push({ peerId, displayName, text, time });
  const item = document.createElement('li');
  const meta = document.createElement('div');
  meta.className = 'meta';
  const who = document.createElement('strong');
  who.textContent = self ? t('you', { name: displayName }) : displayName;
  const when = document.createElement('time');
  when.dateTime = time;
  when.textContent = formatTime(time);
  meta.append(who, when);
  const body = document.createElement('p');
  body.textContent = text; // never innerHTML: chat text is untrusted
  item.append(meta, body);
  ui.messages.append(item);
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

// ---- devices ----

async function refreshDevices() {
  const devices = await listDevices();
  const name = (kind) => (i) => t(kind, { n: i });
  fillSelect(ui.cameraSelect, devices.videoinput, (local.cam ?? preview.cam)?.getSettings().deviceId, name('cameraN'));
  fillSelect(ui.micSelect, devices.audioinput, (local.mic ?? preview.mic)?.getSettings().deviceId, name('microphoneN'));
  for (const el of document.querySelectorAll('.speaker-row')) el.hidden = !canChooseSpeaker || !devices.audiooutput.length;
  if (canChooseSpeaker) fillSelect(ui.speakerSelect, devices.audiooutput, chosen('audiooutput'), name('speakerN'));
}

function meterOn(track) {
  stopMeter();
  stopMeter = levelMeter(track, ui.micMeter);
}

/** The join form's camera and microphone, as its checkboxes say, for the preview and the meter. */
async function startPreview() {
  const gen = ++previewGen;
  const want = { cam: ui.joinCam.checked, mic: ui.joinMic.checked };
  for (const kind of ['cam', 'mic']) {
    if (!want[kind] && preview[kind]) { preview[kind].stop(); preview[kind] = null; }
  }
  const video = want.cam && !preview.cam, audio = want.mic && !preview.mic;
  if (video || audio) {
    try {
      const stream = await navigator.mediaDevices.getUserMedia({
        video: video && constraints('video'), audio: audio && constraints('audio'),
      });
      if (gen !== previewGen || inClass()) { // overtaken, or the class began meanwhile
        for (const track of stream.getTracks()) track.stop();
        return;
      }
      preview.cam = stream.getVideoTracks()[0] ?? preview.cam;
      preview.mic = stream.getAudioTracks()[0] ?? preview.mic;
    } catch (err) {
      if (gen !== previewGen) return;
      showBanner(t('cannotUse', { what: t(video ? 'theCamera' : 'theMicrophone'), why: describe(err) }));
    }
  }
  ui.previewVideo.srcObject = preview.cam ? new MediaStream([preview.cam]) : null;
  ui.previewOff.hidden = Boolean(preview.cam);
  meterOn(preview.mic);
  await refreshDevices();
}

function stopPreview() {
  previewGen++;
  for (const kind of ['cam', 'mic']) {
    preview[kind]?.stop();
    preview[kind] = null;
  }
  ui.previewVideo.srcObject = null;
  ui.previewOff.hidden = false;
  stopMeter();
}

/** Another camera or microphone chosen: the preview or the published track follows. */
async function switchDevice(kind, deviceId) {
  remember(kind === 'cam' ? 'videoinput' : 'audioinput', deviceId);
  const gum = kind === 'cam'
    ? { video: { ...constraints('video', deviceId), deviceId: { exact: deviceId } } }
    : { audio: { deviceId: { exact: deviceId } } };
  if (!inClass()) {
    if (!preview[kind]) return;
    preview[kind].stop();
    preview[kind] = null;
    await startPreview();
    return;
  }
  await queueMedia(async () => {
    const old = local[kind];
    if (!old) return; // used when it is started
    // Some phones end one camera when another opens: the old one is not "unplugged".
    replacing.add(old);
    const track = (await navigator.mediaDevices.getUserMedia(gum)).getTracks()[0];
    try {
      if (local[kind] !== old) throw new Error('stale'); // stopped or replaced meanwhile
      await useTrack(kind, track);
    } catch (err) {
      track.stop();
      if (err.message !== 'stale') throw err;
      return;
    } finally {
      replacing.delete(old);
    }
    old.stop();
  });
}

// Tracks being replaced on purpose: their ending is no unplug.
const replacing = new Set();

/** Sends a new track of ours for a published source, and watches it for an unplug. */
async function useTrack(kind, track) {
  const source = kind === 'cam' ? 'video:cam' : 'audio:mic';
  await client.replaceTrack(source, track);
  if (kind === 'mic') track.enabled = !micMuted;
  local[kind] = track;
  watchUnplug(kind, track);
  if (kind === 'cam') showVideo(ensureTile(state.peerId, 'video:cam'), new MediaStream([track]));
  if (kind === 'mic' && ui.devicesDialog.open) meterOn(track);
}

/** A camera or microphone unplugged (its track ended by itself): go on with another one. */
function watchUnplug(kind, track) {
  track.addEventListener('ended', () => {
    if (local[kind] !== track || replacing.has(track)) return; // stopped or replaced by us
    const source = kind === 'cam' ? 'video:cam' : 'audio:mic';
    const current = () => local[kind] === track && inClass();
    queueMedia(async () => {
      if (!current()) return;
      const next = await fallbackDevice(kind === 'cam' ? 'videoinput' : 'audioinput', track.getSettings().deviceId);
      if (!current()) return;
      if (!next) {
        local[kind] = null;
        if (kind === 'cam') showVideo(ensureTile(state.peerId, 'video:cam'), null);
        await client.unpublish(source);
        showBanner(t(`deviceGone_${kind}`), 'info');
        return;
      }
      const gum = kind === 'cam' ? { video: { ...constraints('video', next.deviceId), deviceId: { exact: next.deviceId } } }
        : { audio: { deviceId: { exact: next.deviceId } } };
      const replacement = (await navigator.mediaDevices.getUserMedia(gum)).getTracks()[0];
      try {
        if (!current()) throw new Error('stale');
        await useTrack(kind, replacement);
      } catch (err) {
        replacement.stop();
        if (err.message !== 'stale') throw err;
        return;
      }
      track.stop();
      showBanner(t(`deviceSwitched_${kind}`, { name: next.label || '' }), 'info');
      await refreshDevices();
    }).catch(reportError).finally(updateControls);
  });
}

async function chooseSpeaker(deviceId) {
  remember('audiooutput', deviceId);
  await Promise.all([...document.querySelectorAll('audio')].map((el) => el.setSinkId(deviceId).catch(() => {})));
}

function openDevicesDialog() {
  ui.devicesSlot.append(ui.devices);
  meterOn(local.mic);
  refreshDevices().catch(() => {});
  ui.devicesDialog.showModal();
}

// ---- local media ----

async function publishLocal(track, source) {
  try {
    await client.publish(track, source, source === 'video:cam' ? { codec: cameraCodec, simulcast: cameraSimulcast } : {});
  } catch (err) {
    track.stop();
    throw err;
  }
  if (source === 'audio:mic') { local.mic = track; micMuted = false; watchUnplug('mic', track); }
  if (source === 'video:cam') {
    local.cam = track;
    watchUnplug('cam', track);
    showVideo(ensureTile(state.peerId, 'video:cam'), new MediaStream([track]));
  }
}

/** The preview's tracks if live, else one prompt for both devices; if that fails, each alone. */
async function startInitialMedia({ cam, mic }) {
  const tracks = [];
  for (const kind of ['cam', 'mic']) {
    const wanted = kind === 'cam' ? cam : mic;
    if (wanted && preview[kind]?.readyState === 'live') tracks.push(preview[kind]);
    else preview[kind]?.stop();
    preview[kind] = null;
  }
  stopPreview();
  const needCam = cam && !tracks.some((tr) => tr.kind === 'video');
  const needMic = mic && !tracks.some((tr) => tr.kind === 'audio');
  if (needCam || needMic) {
    const md = navigator.mediaDevices;
    try {
      tracks.push(...(await md.getUserMedia({ audio: needMic && constraints('audio'), video: needCam && constraints('video') })).getTracks());
    } catch {
      const wanted = [needMic && ['theMicrophone', { audio: constraints('audio') }], needCam && ['theCamera', { video: constraints('video') }]];
      for (const [what, gum] of wanted.filter(Boolean)) {
        try { tracks.push(...(await md.getUserMedia(gum)).getTracks()); } catch (err) {
          showBanner(t('cannotUse', { what: t(what), why: describe(err) }));
        }
      }
    }
  }
  if (!tracks.length) return;
  // Published together, so the SDK negotiates them in one `produce`.
  const results = await Promise.allSettled(tracks.map((track) =>
    publishLocal(track, track.kind === 'audio' ? 'audio:mic' : 'video:cam')));
  for (const r of results) {
    if (r.status !== 'rejected') continue;
    if (isMode('invite') && r.reason?.code === 'sourceNotAllowed') showBanner(t('raiseHandFirst'), 'info');
    else showBanner(t('cannotPublish', { why: describe(r.reason) }));
  }
  refreshDevices().catch(() => {});
}

async function toggleCamera() {
  if (!local.cam) {
    const stream = await navigator.mediaDevices.getUserMedia({ video: constraints('video') });
    await publishLocal(stream.getVideoTracks()[0], 'video:cam');
    return;
  }
  const track = local.cam;
  local.cam = null;
  track.stop(); // unpublish rather than pause: the camera light goes off
  showVideo(ensureTile(state.peerId, 'video:cam'), null);
  await client.unpublish('video:cam');
}

async function toggleMic() {
  if (!local.mic) {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: constraints('audio') });
    await publishLocal(stream.getAudioTracks()[0], 'audio:mic');
    return;
  }
  // Pause, not unpublish: muting must be instant and unmuting needs no new negotiation.
  if (micMuted) await client.resume('audio:mic');
  else await client.pause('audio:mic');
  micMuted = !micMuted;
}

async function startScreen() {
  const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: false });
  const track = stream.getVideoTracks()[0];
  // The browser's own "Stop sharing" button ends the track.
  track.addEventListener('ended', () => {
    if (local.screen === track) stopScreen().catch(reportError).finally(updateControls);
  });
  await publishLocal(track, 'video:screen');
  local.screen = track;
  showVideo(ensureTile(state.peerId, 'video:screen'), stream);
  if (track.readyState === 'ended') await stopScreen(); // stopped while we negotiated
}

async function stopScreen() {
  const track = local.screen;
  if (!track) return;
  local.screen = null;
  track.stop();
  const tile = findTile(state.peerId, 'video:screen');
  if (tile) removeTile(tile);
  await client.unpublish('video:screen');
}

function stopAllLocal() {
  for (const key of Object.keys(local)) {
    local[key]?.stop();
    local[key] = null;
  }
  micMuted = false;
  stopMeter();
}

function updateControls() {
  ui.camButton.textContent = local.cam ? t('stopCamera') : t('startCamera');
  ui.micButton.textContent = !local.mic ? t('startMic') : micMuted ? t('unmuteMic') : t('muteMic');
  ui.screenButton.textContent = local.screen ? t('stopSharing') : t('shareScreen');
  const own = state.peerId && findTile(state.peerId, 'video:cam');
  own?.classList.toggle('mic-muted', !local.mic || micMuted);
  arrangeTiles();
  renderPeople();
}

function reportError(err) {
  showBanner(describe(err));
  updateControls();
}

/** Runs a button's action once at a time, reporting failures in the banner. */
function onClick(button, action) {
  button.addEventListener('click', async () => {
    if (button.disabled) return;
    button.disabled = true;
    try {
      await action();
    } catch (err) {
      reportError(err);
    } finally {
      button.disabled = false;
      updateControls();
    }
  });
}

// ---- recording ----

function showRecording(active) {
  state.recording = active;
  ui.recIndicator.hidden = !active;
  document.body.dataset.recording = String(active);
}

/**
 * A class being recorded is said before our camera and microphone start: the user goes on
 * with them, without them, or leaves. Resolves with 'continue', 'without' or 'leave'.
 */
let pendingAsk = null;
function askAboutRecording() {
  pendingAsk ??= new Promise((resolve) => {
    const dialog = ui.recordDialog;
    const done = (answer) => () => { dialog.close(answer); };
    $('record-continue').onclick = () => { document.body.dataset.recordingAgreed = 'yes'; dialog.close('continue'); };
    $('record-without').onclick = done('without');
    $('record-leave').onclick = done('leave');
    dialog.addEventListener('close', () => { pendingAsk = null; resolve(dialog.returnValue || 'without'); }, { once: true });
    dialog.returnValue = '';
    dialog.showModal();
    $('record-without').focus(); // a stray Enter does not agree to being recorded
  });
  return pendingAsk;
}

// ---- join and leave ----

function showClassView(show) {
  ui.joinView.hidden = show;
  ui.classView.hidden = !show;
  ui.roomTitle.hidden = !show;
  ui.roomTitle.textContent = show ? t('roomTitle', { room: state.roomId }) : '';
  if (!show) ui.joinForm.insertBefore(ui.devices, ui.joinButton);
}

function resetClassView() {
  joinGen++;
  if (ui.recordDialog.open) ui.recordDialog.close('leave');
  if (ui.devicesDialog.open) ui.devicesDialog.close();
  delete document.body.dataset.recordingAgreed;
  ui.tiles.replaceChildren();
  ui.messages.replaceChildren();
  ui.soundButton.hidden = true;
  Object.assign(state, { joined: false, peerId: null, roomId: null, peers: {}, messages: [], activeSpeaker: null,
    raisedHands: [], quality: {}, pinned: null, uploadPoor: false });
  gotHandRequest = false;
  invited.clear();
  showRecording(false);
  applyServeMode(null);
  renderHands();
  showClassView(false);
}

async function joinClass({ name, room, cam, mic, ticket, screen }) {
  const gen = ++joinGen;
  const ended = () => gen !== joinGen; // left, removed or failed meanwhile
  setPhase('joining');
  hideBanner();
  state.error = null;
  ui.joinButton.disabled = true;
  try {
    state.displayName = name;
    const joined = await client.join({ displayName: name, sources: SOURCES, ticket: ticket || undefined });
    state.peerId = joined.peerId;
    const entered = await client.joinRoom(room); // peers arrive as `peerjoined` events
    state.peerId = client.peerId; // a cluster may have sent us to another node: a new peer id
    state.roomId = entered.roomId ?? room;
    state.joined = true;
    showRecording(client.recording);
    applyServeMode(entered.serveMode ?? client.serveMode);
    showClassView(true);
    ensureTile(state.peerId, 'video:cam');
    setControlsEnabled(false); // a click now would race the first publications
    if (client.recording && (cam || mic || screen)) {
      const answer = await askAboutRecording();
      if (ended()) return;
      if (answer === 'leave') { await leaveClass(); return; }
      if (answer !== 'continue') { cam = mic = screen = false; stopPreview(); }
    }
    await queueMedia(async () => {
      if (ended()) return;
      await startInitialMedia({ cam, mic });
      if (screen && !ended()) await startScreen().catch((err) => showBanner(t('cannotShare', { why: describe(err) })));
    });
    if (ended()) return;
    setControlsEnabled(true);
    updateControls();
    if (document.body.dataset.state === 'joining') setPhase('joined');
  } catch (err) {
    if (ended()) return;
    setControlsEnabled(true);
    await client.leave().catch(() => {});
    stopAllLocal();
    resetClassView();
    showBanner(t('cannotJoin', { why: describe(err) }));
    setPhase('error');
    startPreview().catch(() => {});
  } finally {
    ui.joinButton.disabled = false;
  }
}

function setControlsEnabled(enabled) {
  for (const button of [ui.camButton, ui.micButton, ui.screenButton]) button.disabled = !enabled;
}

async function leaveClass() {
  joinGen++;
  await client.leave();
  stopAllLocal();
  resetClassView();
  hideBanner();
  setPhase('idle');
  setControlsEnabled(true);
  startPreview().catch(() => {});
}

// ---- the page's language ----

/** Every string on the page again, after the language changed. */
function relabel() {
  state.lang = currentLang();
  ui.langSelect.value = state.lang;
  applyStrings(document);
  for (const tile of ui.tiles.querySelectorAll('.tile')) { labelTile(tile); renderTileControls(tile); }
  if (state.joined) ui.roomTitle.textContent = t('roomTitle', { room: state.roomId });
  setPhase(document.body.dataset.state);
  updateControls();
  renderHands();
  refreshDevices().catch(() => {});
}

// ---- SDK events ----

client.on('peerjoined', ({ peerId, displayName, sources, role }) => {
  state.peers[peerId] = { displayName, sources, role };
  ensureTile(peerId, 'video:cam');
  renderPeople();
});
client.on('peerleft', ({ peerId }) => {
  delete state.peers[peerId];
  delete state.quality[peerId];
  for (const tile of ui.tiles.querySelectorAll(`.tile[data-peer-id="${CSS.escape(peerId)}"]`)) removeTile(tile);
  invited.delete(peerId);
  if (state.raisedHands.some((h) => h.peerId === peerId)) {
    state.raisedHands = state.raisedHands.filter((h) => h.peerId !== peerId);
    renderHands();
  }
  renderPeople();
});
client.on('newproducer', ({ peerId }) => {
  const tile = findTile(peerId, 'video:cam');
  if (tile) renderTileControls(tile);
  renderPeople();
});
client.on('producesources', ({ sources }) => {
  queueMedia(() => startRequested(sources)).catch(reportError).finally(updateControls);
});
client.on('closesources', ({ sources }) => {
  queueMedia(() => stopWithdrawn(sources)).catch(reportError).finally(updateControls);
});
client.on('requestproduce', ({ peerId, displayName, sources }) => {
  const hand = { peerId, displayName, sources };
  const i = state.raisedHands.findIndex((h) => h.peerId === peerId);
  if (i >= 0) state.raisedHands[i] = hand;
  else state.raisedHands.push(hand);
  renderHands();
  if (!gotHandRequest) {
    gotHandRequest = true;
    refreshTileControls();
  }
});
client.on('localpaused', ({ source }) => {
  if (source === 'audio:mic') micMuted = true;
  if (source === 'video:cam') findTile(state.peerId, 'video:cam')?.classList.remove('has-video');
  updateControls();
  const what = { 'audio:mic': 'microphone', 'video:cam': 'camera', 'video:screen': 'screen' }[source] ?? 'microphone';
  showBanner(t('mutedByOrganiser', { what: t(`your_${what}`) }), 'info');
});
client.on('localresumed', ({ source }) => {
  if (source === 'audio:mic') micMuted = false;
  if (source === 'video:cam' && local.cam) findTile(state.peerId, 'video:cam')?.classList.add('has-video');
  updateControls();
});
client.on('track', attachTrack);
client.on('trackended', detachTrack);
client.on('trackpaused', markPaused);
client.on('trackresumed', markPaused);
client.on('activespeaker', ({ peerId }) => highlightSpeaker(peerId));
client.on('message', addMessage);
client.on('recording', ({ active }) => showRecording(active));
client.on('connectionquality', ({ peers }) => {
  for (const q of peers ?? []) {
    state.quality[q.peerId] = q;
    const tile = findTile(q.peerId, 'video:cam');
    if (tile) showQuality(tile.querySelector('.quality'), q);
    if (q.peerId === state.peerId) {
      const poor = q.upload === 'poor';
      if (poor && !state.uploadPoor) showBanner(t('uploadPoor'), 'info', 'uploadPoor');
      if (!poor && state.uploadPoor) hideBanner('uploadPoor');
      state.uploadPoor = poor;
    }
  }
  renderPeople();
});
client.on('producerclosed', ({ local: mine, source, peerId }) => {
  if (!mine) {
    const tile = findTile(peerId, 'video:cam');
    if (tile) renderTileControls(tile);
    renderPeople();
    return;
  }
  const key = { 'audio:mic': 'mic', 'video:cam': 'cam', 'video:screen': 'screen' }[source];
  if (key && local[key]) {
    local[key].stop();
    local[key] = null;
  }
  if (source === 'video:screen') { const tile = findTile(state.peerId, 'video:screen'); if (tile) removeTile(tile); }
  if (source === 'video:cam') showVideo(ensureTile(state.peerId, 'video:cam'), null);
  updateControls();
  showBanner(t('serverStopped', { what: t(`your_${key === 'cam' ? 'camera' : key === 'mic' ? 'microphone' : 'screen'}`) }), 'info');
});
client.on('disconnected', ({ reason, code, willReconnect }) => {
  if (willReconnect) {
    state.joined = false;
    setPhase('reconnecting');
    showBanner(t('connectionLost'), 'info');
    return;
  }
  stopAllLocal();
  resetClassView();
  showBanner(disconnectText(code, reason));
  setPhase('error');
  startPreview().catch(() => {});
});
client.on('reconnected', ({ resumed, peerId }) => {
  if (!resumed) { // a new identity: our tiles follow it
    for (const tile of ui.tiles.querySelectorAll('.tile.local')) tile.dataset.peerId = peerId;
    state.peerId = peerId;
  }
  state.joined = true;
  applyServeMode(client.serveMode ?? state.serveMode);
  showRecording(client.recording);
  hideBanner();
  setPhase('joined');
});
client.on('error', ({ code, message, context }) => {
  console.warn('vclass', context, code, message); // the SDK's words, for a developer
  showBanner(errorText({ code, message }));
});

// ---- wiring ----

ui.bannerClose.addEventListener('click', hideBanner);
ui.joinForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  try { localStorage.setItem('vclass.name', ui.joinName.value.trim()); } catch { /* not remembered */ }
  joinClass({ name: ui.joinName.value.trim(), room: ui.joinRoom.value.trim(),
    cam: ui.joinCam.checked, mic: ui.joinMic.checked, ticket: params.get('ticket') });
});
ui.joinCam.addEventListener('change', () => startPreview().catch(reportError));
ui.joinMic.addEventListener('change', () => startPreview().catch(reportError));
ui.cameraSelect.addEventListener('change', () => switchDevice('cam', ui.cameraSelect.value).catch(reportError));
ui.micSelect.addEventListener('change', () => switchDevice('mic', ui.micSelect.value).catch(reportError));
ui.speakerSelect.addEventListener('change', () => chooseSpeaker(ui.speakerSelect.value).catch(reportError));
navigator.mediaDevices?.addEventListener?.('devicechange', () => refreshDevices().catch(() => {}));
ui.langSelect.addEventListener('change', () => { setLang(ui.langSelect.value); relabel(); });
onClick(ui.camButton, toggleCamera);
onClick(ui.micButton, toggleMic);
onClick(ui.screenButton, () => (local.screen ? stopScreen() : startScreen()));
onClick(ui.leaveButton, leaveClass);
onClick(ui.layoutButton, async () => setLayout(state.layout === 'speaker' ? 'grid' : 'speaker'));
onClick(ui.devicesButton, async () => openDevicesDialog());
$('devices-close').addEventListener('click', () => ui.devicesDialog.close());
ui.devicesDialog.addEventListener('close', () => stopMeter());
onClick(ui.handButton, async () => {
  await client.requestProduce(SOURCES.filter((s) => HAND_SOURCES.includes(s)));
  showBanner(t('handRaisedNotice'), 'info');
});
onClick(ui.soundButton, async () => {
  ui.soundButton.hidden = true;
  await Promise.all([...ui.tiles.querySelectorAll('audio')].map((el) => el.play()));
});
ui.chatForm.addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const text = ui.chatInput.value.trim();
  if (!text) return;
  try {
    await client.sendMessage(text); // it comes back as `newMessage`, like everyone else's
    ui.chatInput.value = '';
  } catch (err) {
    reportError(err);
  }
});

// Deep link: /?room=R&name=N&autojoin=1[&cam=0][&mic=0][&screen=1][&ticket=T][&teacher=1]
// [&codec=VP9|AV1][&simulcast=0][&adaptive=0][&lang=ru|en]
let storedName = '';
try { storedName = localStorage.getItem('vclass.name') ?? ''; } catch { /* none */ }
try { state.layout = localStorage.getItem('vclass.layout') === 'speaker' ? 'speaker' : 'grid'; } catch { /* grid */ }
ui.joinName.value = params.get('name') ?? storedName;
ui.joinRoom.value = params.get('room') ?? '';
ui.joinCam.checked = params.get('cam') !== '0';
ui.joinMic.checked = params.get('mic') !== '0';
relabel();
setPhase('idle');
applyServeMode(null);
if (params.get('autojoin') === '1' && ui.joinRoom.value) {
  joinClass({
    name: ui.joinName.value || `${t('guest')} ${Math.floor(1000 + Math.random() * 9000)}`,
    room: ui.joinRoom.value, cam: ui.joinCam.checked, mic: ui.joinMic.checked,
    ticket: params.get('ticket'), screen: params.get('screen') === '1',
  });
} else {
  startPreview().catch(() => {});
}
