// app.js: the class page. Join form → class view with a tile per participant, controls and chat.
// All signaling and WebRTC lives in vclass.js; this file only turns its events into DOM.

import { VClassClient } from './vclass.js';

const SOURCES = ['audio:mic', 'video:cam', 'video:screen'];
const CAMERA_CONSTRAINTS = { width: { ideal: 1280 }, height: { ideal: 720 } };
// What a raised hand asks for, and what a teacher's "Invite" on a tile offers.
const HAND_SOURCES = ['video:cam', 'audio:mic'];

const $ = (id) => document.getElementById(id);
const ui = {
  banner: $('banner'), bannerText: $('banner-text'), bannerClose: $('banner-close'),
  roomTitle: $('room-title'), joinView: $('join-view'), joinForm: $('join-form'),
  joinName: $('join-name'), joinRoom: $('join-room'), joinCam: $('join-cam'), joinMic: $('join-mic'),
  joinButton: $('join-button'), classView: $('class-view'), tiles: $('tiles'),
  camButton: $('cam-button'), micButton: $('mic-button'), screenButton: $('screen-button'),
  soundButton: $('sound-button'), leaveButton: $('leave-button'),
  messages: $('messages'), chatForm: $('chat-form'), chatInput: $('chat-input'),
  handButton: $('hand-button'), handsPanel: $('hands-panel'), handsList: $('hands-list'),
  peoplePanel: $('people-panel'), peopleList: $('people-list'),
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
};

// Our own tracks; the SDK publishes them but the page owns (and stops) them.
const local = { mic: null, cam: null, screen: null };
window.vclass = { client, state, local };
let micMuted = false;

// Deep link flag: show the teacher's invite controls even before any hand was raised.
const params = new URLSearchParams(location.search);
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
  if (!isLocal && source === 'video:cam') renderTileControls(tile);
  // A double click makes a tile large (twice the columns and rows) or small again: with adaptive
  // stream the server then sends it a larger layer.
  tile.title = 'Double-click to enlarge or shrink';
  tile.addEventListener('dblclick', () => tile.classList.toggle('large'));

  // Own camera first, screens before cameras (they need the room), others in join order.
  if (isLocal && source === 'video:cam') ui.tiles.prepend(tile);
  else if (source !== 'video:cam') ui.tiles.insertBefore(tile, ui.tiles.querySelector('.tile:not(.screen)'));
  else ui.tiles.append(tile);
  return tile;
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

/** The Invite/Stop toggle on a remote camera tile, when this page acts as a teacher. */
function renderTileControls(tile) {
  tile.querySelector('.tile-actions')?.remove();
  if (!state.teacherControls) return;
  const { peerId } = tile.dataset;
  const box = document.createElement('div');
  box.className = 'tile-actions';
  const on = invited.has(peerId) || isPublishing(peerId);
  box.append(on
    ? actionButton('Stop', 'deinvite', peerId, () => deinvitePeer(peerId))
    : actionButton('Invite', 'invite', peerId, () => invitePeer(peerId, peerSources(peerId, HAND_SOURCES))));
  const muted = mutedMics.has(peerId);
  const mute = actionButton(muted ? 'Unmute' : 'Mute', muted ? 'unmute' : 'mute', peerId, () => mutePeerMic(peerId, !muted));
  box.append(mute);
  tile.append(box);
}

function refreshTileControls() {
  state.teacherControls = teacherFlag || (gotHandRequest && isMode('invite'));
  for (const tile of ui.tiles.querySelectorAll('.tile:not(.local)[data-source="video:cam"]')) renderTileControls(tile);
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
    const invite = actionButton('Invite', 'invite', peerId, () => invitePeer(peerId, sources));
    const dismiss = actionButton('Dismiss', 'dismiss', peerId, async () => {
      state.raisedHands = state.raisedHands.filter((h) => h.peerId !== peerId);
      renderHands();
    });
    item.append(name, invite, dismiss);
    return item;
  }));
}

/** Pull mode: nothing arrives before pulling, so list everyone with a "Watch" button. */
function renderPeople() {
  const pull = state.joined && isMode('pull');
  ui.peoplePanel.hidden = !pull;
  if (!pull) { ui.peopleList.replaceChildren(); return; }
  ui.peopleList.replaceChildren(...Object.entries(state.peers).map(([peerId, { displayName }]) => {
    const item = document.createElement('li');
    item.dataset.peerId = peerId;
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = displayName;
    item.append(name, actionButton('Watch', 'watch', peerId, async () => {
      await client.pull(peerId, peerSources(peerId));
      item.classList.add('watching');
    }));
    return item;
  }));
}

function applyServeMode(mode) {
  state.serveMode = mode ?? null;
  ui.handButton.hidden = !isMode('invite');
  refreshTileControls();
  renderPeople();
}

/** Someone pulled our sources, or a teacher invited us: start what is not live yet. */
async function startRequested(sources) {
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
    stopped.push('screen sharing');
    await stopScreen().catch(() => {});
  }
  if (stopped.length) showBanner(`A teacher stopped your ${stopped.join(' and ')}.`, 'info');
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
    await client.publish(track, source, source === 'video:cam' ? { codec: cameraCodec, simulcast: cameraSimulcast } : {});
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
  for (const r of results) {
    if (r.status !== 'rejected') continue;
    if (isMode('invite') && r.reason?.code === 'sourceNotAllowed') {
      showBanner('In this class you publish once a teacher invites you: raise your hand.', 'info');
    } else {
      showBanner(`Cannot publish: ${describe(r.reason)}`);
    }
  }
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
  Object.assign(state, { joined: false, peerId: null, roomId: null, peers: {}, messages: [], activeSpeaker: null,
    raisedHands: [] });
  gotHandRequest = false;
  invited.clear();
  applyServeMode(null);
  renderHands();
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
    state.peerId = client.peerId; // a cluster may have sent us to another node: a new peer id
    state.roomId = entered.roomId ?? room;
    state.joined = true;
    applyServeMode(entered.serveMode ?? client.serveMode);
    showClassView(true);
    ensureTile(state.peerId, 'video:cam');
    setControlsEnabled(false); // a click now would race the first publications
    await queueMedia(async () => {
      await startInitialMedia({ cam, mic });
      if (screen) await startScreen().catch((err) => showBanner(`Cannot share the screen: ${describe(err)}`));
    });
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

client.on('peerjoined', ({ peerId, displayName, sources, role }) => {
  state.peers[peerId] = { displayName, sources, role };
  ensureTile(peerId, 'video:cam');
  renderPeople();
});
client.on('peerleft', ({ peerId }) => {
  delete state.peers[peerId];
  for (const tile of ui.tiles.querySelectorAll(`.tile[data-peer-id="${CSS.escape(peerId)}"]`)) tile.remove();
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
  showBanner(`Your ${(source ?? 'media').split(':').pop()} was muted by the class organiser.`, 'info');
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
client.on('producerclosed', ({ local: mine, source, peerId }) => {
  if (!mine) {
    const tile = findTile(peerId, 'video:cam');
    if (tile) renderTileControls(tile);
    return;
  }
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
  applyServeMode(client.serveMode ?? state.serveMode);
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
onClick(ui.handButton, async () => {
  await client.requestProduce(SOURCES.filter((s) => HAND_SOURCES.includes(s)));
  showBanner('Hand raised: a teacher can now invite you.', 'info');
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
// [&codec=VP9|AV1][&simulcast=0][&adaptive=0]
ui.joinName.value = params.get('name') ?? '';
ui.joinRoom.value = params.get('room') ?? '';
ui.joinCam.checked = params.get('cam') !== '0';
ui.joinMic.checked = params.get('mic') !== '0';
setPhase('idle');
renderHands();
applyServeMode(null);
if (params.get('autojoin') === '1' && ui.joinRoom.value) {
  joinClass({
    name: ui.joinName.value || `Guest ${Math.floor(1000 + Math.random() * 9000)}`,
    room: ui.joinRoom.value, cam: ui.joinCam.checked, mic: ui.joinMic.checked,
    ticket: params.get('ticket'), screen: params.get('screen') === '1',
  });
}
