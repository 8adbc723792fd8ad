// devices.js: the class page's cameras, microphones and speakers: what the browser has, which
// one the user chose (remembered in localStorage), and a microphone level meter.

const STORE = { videoinput: 'vclass.camera', audioinput: 'vclass.microphone', audiooutput: 'vclass.speaker' };

export const CAMERA_CONSTRAINTS = { width: { ideal: 1280 }, height: { ideal: 720 } };

/** Whether audio can be sent to a chosen speaker (HTMLMediaElement.setSinkId). */
export const canChooseSpeaker = typeof HTMLMediaElement !== 'undefined' && 'setSinkId' in HTMLMediaElement.prototype;

/** The remembered device id of a kind (videoinput, audioinput, audiooutput), or ''. */
export function chosen(kind) {
  try { return localStorage.getItem(STORE[kind]) ?? ''; } catch { return ''; }
}

export function remember(kind, deviceId) {
  try { localStorage.setItem(STORE[kind], deviceId); } catch { /* private mode: not remembered */ }
}

/** getUserMedia constraints for a kind ('video' or 'audio'): the chosen device when there is one. */
export function constraints(kind, deviceId = chosen(kind === 'video' ? 'videoinput' : 'audioinput')) {
  const base = kind === 'video' ? { ...CAMERA_CONSTRAINTS } : {};
  if (deviceId) base.deviceId = { ideal: deviceId };
  return Object.keys(base).length ? base : true;
}

/** The browser's devices by kind; labels are empty until the page was allowed a device. */
export async function listDevices() {
  const out = { videoinput: [], audioinput: [], audiooutput: [] };
  for (const d of await navigator.mediaDevices?.enumerateDevices?.() ?? []) {
    if (out[d.kind] && d.deviceId) out[d.kind].push(d);
  }
  return out;
}

/**
 * Fills a <select> with devices, selecting `current` (else the remembered one, else the first);
 * `label(i)` names a device whose label the browser withholds.
 */
export function fillSelect(select, devices, current, label) {
  const want = current || chosen(devices[0]?.kind ?? '');
  select.replaceChildren(...devices.map((d, i) => {
    const option = document.createElement('option');
    option.value = d.deviceId;
    option.textContent = d.label || label(i + 1);
    option.selected = d.deviceId === want;
    return option;
  }));
  select.disabled = devices.length === 0;
}

/** Another device of the same kind as `gone`, preferring the remembered one: after an unplug. */
export async function fallbackDevice(kind, goneId) {
  const devices = (await listDevices())[kind].filter((d) => d.deviceId !== goneId && d.deviceId !== 'default');
  return devices.find((d) => d.deviceId === chosen(kind)) ?? devices[0] ?? null;
}

/** A level meter for an audio track: sets meter.value (0..1) about 20 times a second until stopped. */
export function levelMeter(track, meter) {
  const Ctx = globalThis.AudioContext ?? globalThis.webkitAudioContext;
  if (!Ctx || !track) return () => {};
  const ctx = new Ctx();
  const analyser = ctx.createAnalyser();
  analyser.fftSize = 512;
  ctx.createMediaStreamSource(new MediaStream([track])).connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const timer = setInterval(() => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const v of samples) sum += v * v;
    // RMS in dBFS, -60..0 shown as 0..1: speech sits in the upper half.
    const db = 10 * Math.log10(sum / samples.length + 1e-12);
    meter.value = Math.max(0, Math.min(1, (db + 60) / 60));
  }, 50);
  ctx.resume?.().catch(() => {});
  return () => {
    clearInterval(timer);
    meter.value = 0;
    ctx.close().catch(() => {});
  };
}
