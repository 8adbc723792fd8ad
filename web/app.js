// app.js: the class page. Join form → class view with a tile per participant, controls and chat.
// All signaling and WebRTC lives in vclass.js; this file only turns its events into DOM.

import { VClassClient } from './vclass.js';

const SOURCES = ['audio:mic', 'video:cam', 'video:screen'];
const CAMERA_CONSTRAINTS = { width: { ideal: 1280 }, height: { ideal: 720 } };

const $ = (id) => document.getElementById(id);
const ui = {
  banner: $('banner'), bannerText: $('banner-text'), bannerClose: $('banner-close'),
  roomTitle: $('room-title'), joinView: $('join-view'), joinForm: $('join-form'),
  joinName: $('join-name'), joinRoom: $('join-room'), joinCam: $('join-cam'), joinMic: $('join-mic'),
  joinButton: $('join-button'), classView: $('class-view'), tiles: $('tiles'),
  camButton: $('cam-button'), micButton: $('mic-button'), screenButton: $('screen-button'),
  soundButton: $('sound-button'), leaveButton: $('leave-button'),
  messages: $('messages'), chatForm: $('chat-form'), chatInput: $('chat-input'),
};

const client = new VClassClient();
// Read by automation (chromedp tests): keep the shape stable.
const state = {
  joined: false, peerId: null, roomId: null, displayName: null,
  peers: {}, // other peers: peerId → {displayName, sources}
  messages: [], // {peerId, displayName, text, time}
  activeSpeaker: null,
  error: null,
};
window.vclass = { client, state };

// Our own tracks; the SDK publishes them but the page owns (and stops) them.
const local = { mic: null, cam: null, screen: null };
let micMuted = false;

// ---- feedback ----

function setPhase(phase) {
  document.body.dataset.state = phase;
}

function showBanner(message, kind = 'error') {
  if (kind === 'error') state.error = message;
  ui.banner.className = kind === 'error' ? 'banner' : 'banner info';
  ui.bannerText.textContent = message;
  ui.banner.hidden = false;
}

function hideBanner() {
  ui.banner.hidden = true;
}

function describe(err) {
  if (err?.code) return `${err.message || err.code} (${err.code})`;
  if (err?.name === 'NotAllowedError') return 'Permission to use the device was denied.';
  if (err?.name === 'NotFoundError') return 'No such device was found.';
  return err?.message ?? String(err);
}

// ---- tiles ----

// Microphone audio belongs on the participant tile, screen audio on the screen tile.
function tileSourceOf(source) {
  if (source === 'audio:mic') return 'video:cam';
  if (source === 'audio:screen') return 'video:screen';
  return source;
}

function displayNameOf(peerId) {
  if (peerId === state.peerId) return state.displayName;
  return state.peers[peerId]?.displayName ?? 'Guest';
}

function initials(name) {
  return name.split(/\s+/).filter(Boolean).slice(0, 2).map((w) => w[0].toUpperCase()).join('') || '?';
}

function findTile(peerId, source) {
  return ui.tiles.querySelector(`.tile[data-peer-id="${CSS.escape(peerId)}"][data-source="${CSS.escape(source)}"]`);
}

function ensureTile(peerId, source) {
  const existing = findTile(peerId, source);
  if (existing) return existing;
  const isLocal = peerId === state.peerId;
  const name = displayNameOf(peerId);
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
  avatar.textContent = initials(name);
  const caption = document.createElement('figcaption');
  const label = source === 'video:cam' ? name : `${name}: ${source.split(':')[1]}`;
  caption.textContent = isLocal && source === 'video:cam' ? `${label} (you)` : label;
  const micOff = document.createElement('span');
  micOff.className = 'mic-off';
  micOff.textContent = 'muted';
  caption.append(micOff);
  tile.append(video, avatar, caption);

  // Own camera first, screens before cameras (they need the room), others in join order.
  if (isLocal && source === 'video:cam') ui.tiles.prepend(tile);
  else if (source !== 'video:cam') ui.tiles.insertBefore(tile, ui.tiles.querySelector('.tile:not(.screen)'));
  else ui.tiles.append(tile);
  return tile;
}

function showVideo(tile, stream, consumerId) {
  const video = tile.querySelector('video');
  video.srcObject = stream;
  if (consumerId) video.dataset.consumerId = consumerId;
  else delete video.dataset.consumerId;
  tile.classList.toggle('has-video', Boolean(stream));
  if (stream) play(video);
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
  play(audio);
  if (source === 'audio:mic') tile.classList.toggle('mic-muted', paused);
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
  if (tile.classList.contains('screen') && empty) tile.remove();
}

function markPaused({ peerId, source, kind, paused }) {
  const tile = findTile(peerId, tileSourceOf(source));
  if (!tile) return;
  if (kind === 'video') tile.classList.toggle('has-video', !paused);
  else if (source === 'audio:mic') tile.classList.toggle('mic-muted', paused);
}

function highlightSpeaker(peerId) {
  state.activeSpeaker = peerId;
  for (const tile of ui.tiles.querySelectorAll('.tile.speaking')) tile.classList.remove('speaking');
  if (peerId) findTile(peerId, 'video:cam')?.classList.add('speaking');
}

// ---- chat ----

function formatTime(time) {
  const date = new Date(time);
  return (Number.isNaN(date.getTime()) ? new Date() : date)
    .toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function addMessage({ peerId, displayName, text, time, self }) {
  state.messages.push({ peerId, displayName, text, time });
  const item = document.createElement('li');
  const meta = document.createElement('div');
  meta.className = 'meta';
  const who = document.createElement('strong');
  who.textContent = self ? `${displayName} (you)` : displayName;
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

// ---- local media ----

async function publishLocal(track, source) {
  try {
    await client.publish(track, source);
  } catch (err) {
    track.stop();
    throw err;
  }
  if (source === 'audio:mic') { local.mic = track; micMuted = false; }
  if (source === 'video:cam') {
    local.cam = track;
    showVideo(ensureTile(state.peerId, 'video:cam'), new MediaStream([track]));
  }
}

/** One prompt for both devices; if that fails, try each alone so one missing device costs only itself. */
async function startInitialMedia({ cam, mic }) {
  if (!cam && !mic) return;
  const md = navigator.mediaDevices;
  let tracks = [];
  try {
    tracks = (await md.getUserMedia({ audio: mic, video: cam && CAMERA_CONSTRAINTS })).getTracks();
  } catch {
    const wanted = [mic && ['microphone', { audio: true }], cam && ['camera', { video: CAMERA_CONSTRAINTS }]];
    for (const [name, constraints] of wanted.filter(Boolean)) {
      try { tracks.push(...(await md.getUserMedia(constraints)).getTracks()); } catch (err) {
        showBanner(`Cannot use the ${name}: ${describe(err)}`);
      }
    }
  }
  // Published together, so the SDK negotiates them in one `produce`.
  const results = await Promise.allSettled(tracks.map((track) =>
    publishLocal(track, track.kind === 'audio' ? 'audio:mic' : 'video:cam')));
  for (const r of results) if (r.status === 'rejected') showBanner(`Cannot publish: ${describe(r.reason)}`);
}

async function toggleCamera() {
  if (!local.cam) {
    const stream = await navigator.mediaDevices.getUserMedia({ video: CAMERA_CONSTRAINTS });
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
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
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
  findTile(state.peerId, 'video:screen')?.remove();
  await client.unpublish('video:screen');
}

function stopAllLocal() {
  for (const key of Object.keys(local)) {
    local[key]?.stop();
    local[key] = null;
  }
  micMuted = false;
}

function updateControls() {
  ui.camButton.textContent = local.cam ? 'Stop camera' : 'Start camera';
  ui.micButton.textContent = !local.mic ? 'Start microphone' : micMuted ? 'Unmute microphone' : 'Mute microphone';
  ui.screenButton.textContent = local.screen ? 'Stop sharing' : 'Share screen';
  const own = state.peerId && findTile(state.peerId, 'video:cam');
  own?.classList.toggle('mic-muted', !local.mic || micMuted);
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

// ---- join and leave ----

function showClassView(show) {
  ui.joinView.hidden = show;
  ui.classView.hidden = !show;
  ui.roomTitle.hidden = !show;
  ui.roomTitle.textContent = show ? `Room ${state.roomId}` : '';
}

function resetClassView() {
  ui.tiles.replaceChildren();
  ui.messages.replaceChildren();
  ui.soundButton.hidden = true;
  Object.assign(state, { joined: false, peerId: null, roomId: null, peers: {}, messages: [], activeSpeaker: null });
  showClassView(false);
}

async function joinClass({ name, room, cam, mic, ticket, screen }) {
  setPhase('joining');
  hideBanner();
  state.error = null;
  ui.joinButton.disabled = true;
  try {
    state.displayName = name;
    const joined = await client.join({ displayName: name, sources: SOURCES, ticket: ticket || undefined });
    state.peerId = joined.peerId;
    const entered = await client.joinRoom(room); // peers arrive as `peerjoined` events
    state.roomId = entered.roomId ?? room;
    state.joined = true;
    showClassView(true);
    ensureTile(state.peerId, 'video:cam');
    setControlsEnabled(false); // a click now would race the first publications
    await startInitialMedia({ cam, mic });
    if (screen) await startScreen().catch((err) => showBanner(`Cannot share the screen: ${describe(err)}`));
    setControlsEnabled(true);
    updateControls();
    setPhase('joined');
  } catch (err) {
    setControlsEnabled(true);
    await client.leave().catch(() => {});
    stopAllLocal();
    resetClassView();
    showBanner(`Cannot join: ${describe(err)}`);
    setPhase('error');
  } finally {
    ui.joinButton.disabled = false;
  }
}

function setControlsEnabled(enabled) {
  for (const button of [ui.camButton, ui.micButton, ui.screenButton]) button.disabled = !enabled;
}

async function leaveClass() {
  await client.leave();
  stopAllLocal();
  resetClassView();
  hideBanner();
  setPhase('idle');
}

// ---- SDK events ----

client.on('peerjoined', ({ peerId, displayName, sources }) => {
  state.peers[peerId] = { displayName, sources };
  ensureTile(peerId, 'video:cam');
});
client.on('peerleft', ({ peerId }) => {
  delete state.peers[peerId];
  for (const tile of ui.tiles.querySelectorAll(`.tile[data-peer-id="${CSS.escape(peerId)}"]`)) tile.remove();
});
client.on('track', attachTrack);
client.on('trackended', detachTrack);
client.on('trackpaused', markPaused);
client.on('trackresumed', markPaused);
client.on('activespeaker', ({ peerId }) => highlightSpeaker(peerId));
client.on('message', addMessage);
client.on('producerclosed', ({ local: mine, source }) => {
  if (!mine) return;
  const key = { 'audio:mic': 'mic', 'video:cam': 'cam', 'video:screen': 'screen' }[source];
  if (key && local[key]) {
    local[key].stop();
    local[key] = null;
  }
  if (source === 'video:screen') findTile(state.peerId, 'video:screen')?.remove();
  if (source === 'video:cam') showVideo(ensureTile(state.peerId, 'video:cam'), null);
  updateControls();
  showBanner(`The server stopped your ${source.split(':')[1]}.`, 'info');
});
client.on('disconnected', ({ reason, willReconnect }) => {
  if (willReconnect) {
    state.joined = false;
    setPhase('joining');
    showBanner(`Connection lost (${reason}). Reconnecting…`, 'info');
    return;
  }
  stopAllLocal();
  resetClassView();
  showBanner(`Disconnected: ${reason}`);
  setPhase('error');
});
client.on('reconnected', ({ resumed, peerId }) => {
  if (!resumed) { // a new identity: our tiles follow it
    for (const tile of ui.tiles.querySelectorAll('.tile.local')) tile.dataset.peerId = peerId;
    state.peerId = peerId;
  }
  state.joined = true;
  hideBanner();
  setPhase('joined');
});
client.on('error', ({ code, message, context }) => {
  showBanner(`${context ? `${context}: ` : ''}${message} (${code})`);
});

// ---- wiring ----

ui.bannerClose.addEventListener('click', hideBanner);
ui.joinForm.addEventListener('submit', (ev) => {
  ev.preventDefault();
  joinClass({ name: ui.joinName.value.trim(), room: ui.joinRoom.value.trim(),
    cam: ui.joinCam.checked, mic: ui.joinMic.checked, ticket: params.get('ticket') });
});
onClick(ui.camButton, toggleCamera);
onClick(ui.micButton, toggleMic);
onClick(ui.screenButton, () => (local.screen ? stopScreen() : startScreen()));
onClick(ui.leaveButton, leaveClass);
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

// Deep link: /?room=R&name=N&autojoin=1[&cam=0][&mic=0][&screen=1][&ticket=T]
const params = new URLSearchParams(location.search);
ui.joinName.value = params.get('name') ?? '';
ui.joinRoom.value = params.get('room') ?? '';
ui.joinCam.checked = params.get('cam') !== '0';
ui.joinMic.checked = params.get('mic') !== '0';
setPhase('idle');
if (params.get('autojoin') === '1' && ui.joinRoom.value) {
  joinClass({
    name: ui.joinName.value || `Guest ${Math.floor(1000 + Math.random() * 9000)}`,
    room: ui.joinRoom.value, cam: ui.joinCam.checked, mic: ui.joinMic.checked,
    ticket: params.get('ticket'), screen: params.get('screen') === '1',
  });
}
