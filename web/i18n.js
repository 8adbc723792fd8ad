// i18n.js: every string of the class page, one table per language. The language is the deep
// link's `lang`, else the one chosen on the page before (localStorage), else the browser's.
// A value with plural forms is an object keyed by Intl.PluralRules categories; {name} in a
// value is replaced by the variable of that name ({n} as a number of the language).

const STRINGS = {
  en: {
    language: 'Language',
    dismiss: 'Dismiss',
    joinHeading: 'Join a class',
    yourName: 'Your name',
    room: 'Room',
    roomPattern: 'Letters, digits, dot, underscore and dash',
    startWith: 'Start with',
    camera: 'Camera',
    microphone: 'Microphone',
    speaker: 'Speaker',
    micLevel: 'Microphone level',
    cameraOff: 'Camera off',
    join: 'Join',
    joining: 'Joining…',
    classRegion: 'Class',
    participantsVideo: 'Participants’ video',
    controls: 'Controls',
    startMic: 'Start microphone',
    muteMic: 'Mute microphone',
    unmuteMic: 'Unmute microphone',
    startCamera: 'Start camera',
    stopCamera: 'Stop camera',
    shareScreen: 'Share screen',
    stopSharing: 'Stop sharing',
    raiseHand: 'Raise hand',
    speakerView: 'Speaker view',
    gridView: 'Grid view',
    devices: 'Devices',
    done: 'Done',
    enableSound: 'Enable sound',
    leave: 'Leave',
    raisedHands: 'Raised hands',
    chat: 'Chat',
    message: 'Message',
    writeMessage: 'Write a message',
    send: 'Send',
    recording: 'Recording',
    recordedHeading: 'This class is being recorded',
    recordedText: 'Your camera, microphone and screen will be in the recording if you turn them on. '
      + 'You can join without them.',
    recordedContinue: 'Join with camera and microphone',
    recordedWithout: 'Join without them',
    roomTitle: 'Room {room}',
    guest: 'Guest',
    you: '{name} (you)',
    screenOf: '{name}: screen',
    muted: 'muted',
    enlargeHint: 'Double-click to enlarge or shrink',
    pin: 'Pin',
    unpin: 'Unpin',
    fullscreen: 'Full screen',
    invite: 'Invite',
    stopPublishing: 'Stop',
    mute: 'Mute',
    unmute: 'Unmute',
    watch: 'Watch',
    teacher: 'Teacher',
    handRaised: 'Hand raised',
    micOn: 'Microphone on',
    micOff: 'Microphone off',
    camOn: 'Camera on',
    camOff: 'Camera off',
    participants: { one: '{n} participant', other: '{n} participants' },
    quality: 'Connection: {q}',
    quality_good: 'good',
    quality_fair: 'fair',
    quality_poor: 'poor',
    uploadPoor: 'Your connection is poor: others may see and hear you badly.',
    cameraN: 'Camera {n}',
    microphoneN: 'Microphone {n}',
    speakerN: 'Speaker {n}',
    theCamera: 'the camera',
    theMicrophone: 'the microphone',
    your_camera: 'your camera',
    your_microphone: 'your microphone',
    your_screen: 'your screen sharing',
    and: ' and ',
    cannotUse: 'Cannot use {what}: {why}',
    cannotPublish: 'Cannot publish: {why}',
    cannotShare: 'Cannot share the screen: {why}',
    cannotJoin: 'Cannot join: {why}',
    deviceGone_cam: 'The camera is gone, and there is no other one.',
    deviceGone_mic: 'The microphone is gone, and there is no other one.',
    deviceSwitched_cam: 'The camera is gone: now using {name}.',
    deviceSwitched_mic: 'The microphone is gone: now using {name}.',
    raiseHandFirst: 'In this class you speak once a teacher invites you: raise your hand.',
    handRaisedNotice: 'Hand raised: a teacher can now invite you.',
    teacherStopped: 'A teacher stopped {what}.',
    mutedByOrganiser: 'The class organiser muted {what}.',
    serverStopped: 'The server stopped {what}.',
    connectionLost: 'Connection lost. Reconnecting…',
    reconnecting: 'Reconnecting…',
    err_badRequest: 'the server did not understand the request',
    err_notJoined: 'not connected yet',
    err_alreadyJoined: 'already connected',
    err_notInRoom: 'not in a class',
    err_alreadyInRoom: 'already in a class',
    err_unauthorized: 'the invitation link is not valid or has expired',
    err_roomFull: 'the class is full',
    err_sourceNotAllowed: 'not allowed in this class',
    err_sourceBusy: 'already being sent',
    err_unknownProducer: 'it is gone',
    err_unknownConsumer: 'it is gone',
    err_unknownPeer: 'that participant has left',
    err_badSdp: 'the browser and the server could not agree on the media',
    err_staleVersion: 'the connection changed meanwhile',
    err_shuttingDown: 'the server is restarting; try again in a minute',
    err_forbidden: 'not allowed for you',
    err_noRoom: 'no such class is running',
    err_redirect: 'the class is on another server',
    err_clusterUnavailable: 'the servers are busy; try again shortly',
    err_tooManyRequests: 'too many requests; slow down',
    err_internal: 'a server error',
    err_connectFailed: 'cannot reach the server',
    err_timeout: 'the server did not answer in time',
    err_disconnected: 'the connection was lost',
    err_invalidState: 'not possible now',
    err_NotAllowedError: 'permission to use the device was denied',
    err_NotFoundError: 'no such device was found',
    err_NotReadableError: 'the device is in use by another program',
    err_OverconstrainedError: 'the device cannot do what was asked',
    err_AbortError: 'the device stopped',
    err_unknown: 'something went wrong ({code})',
    bye_kicked: 'You were removed from the class.',
    bye_roomClosed: 'The class has ended.',
    bye_replaced: 'You joined this class in another window or device.',
    bye_serverShutdown: 'The server is restarting. Join again in a minute.',
    bye_unauthorized: 'Your invitation link has expired. Open the class again from the portal.',
    bye_roomFull: 'The class is full.',
    bye_reconnectFailed: 'The connection was lost and could not be restored.',
    bye_other: 'Disconnected ({reason}).',
  },
  ru: {
    language: 'Язык',
    dismiss: 'Закрыть',
    joinHeading: 'Вход в класс',
    yourName: 'Ваше имя',
    room: 'Комната',
    roomPattern: 'Латинские буквы, цифры, точка, подчёркивание и дефис',
    startWith: 'Включить сразу',
    camera: 'Камера',
    microphone: 'Микрофон',
    speaker: 'Динамик',
    micLevel: 'Уровень микрофона',
    cameraOff: 'Камера выключена',
    join: 'Войти',
    joining: 'Подключение…',
    classRegion: 'Класс',
    participantsVideo: 'Видео участников',
    controls: 'Управление',
    startMic: 'Включить микрофон',
    muteMic: 'Выключить микрофон',
    unmuteMic: 'Включить микрофон',
    startCamera: 'Включить камеру',
    stopCamera: 'Выключить камеру',
    shareScreen: 'Показать экран',
    stopSharing: 'Остановить показ',
    raiseHand: 'Поднять руку',
    speakerView: 'Докладчик крупно',
    gridView: 'Сетка',
    devices: 'Устройства',
    done: 'Готово',
    enableSound: 'Включить звук участников',
    leave: 'Выйти',
    raisedHands: 'Поднятые руки',
    chat: 'Чат',
    message: 'Сообщение',
    writeMessage: 'Напишите сообщение',
    send: 'Отправить',
    recording: 'Идёт запись',
    recordedHeading: 'Занятие записывается',
    recordedText: 'Если вы включите камеру, микрофон или показ экрана, они попадут в запись. '
      + 'Можно войти и без них.',
    recordedContinue: 'Войти с камерой и микрофоном',
    recordedWithout: 'Войти без них',
    roomTitle: 'Комната {room}',
    guest: 'Гость',
    you: '{name} (вы)',
    screenOf: '{name}: экран',
    muted: 'без звука',
    enlargeHint: 'Двойной щелчок увеличивает или уменьшает',
    pin: 'Закрепить',
    unpin: 'Открепить',
    fullscreen: 'На весь экран',
    invite: 'Пригласить',
    stopPublishing: 'Остановить',
    mute: 'Выключить звук',
    unmute: 'Включить звук',
    watch: 'Смотреть',
    teacher: 'Преподаватель',
    handRaised: 'Рука поднята',
    micOn: 'Микрофон включён',
    micOff: 'Микрофон выключен',
    camOn: 'Камера включена',
    camOff: 'Камера выключена',
    participants: { one: '{n} участник', few: '{n} участника', many: '{n} участников', other: '{n} участника' },
    quality: 'Связь: {q}',
    quality_good: 'хорошая',
    quality_fair: 'средняя',
    quality_poor: 'плохая',
    uploadPoor: 'У вас плохая связь: другие участники могут плохо видеть и слышать вас.',
    cameraN: 'Камера {n}',
    microphoneN: 'Микрофон {n}',
    speakerN: 'Динамик {n}',
    theCamera: 'камеру',
    theMicrophone: 'микрофон',
    your_camera: 'вашу камеру',
    your_microphone: 'ваш микрофон',
    your_screen: 'показ вашего экрана',
    and: ' и ',
    cannotUse: 'Не удаётся использовать {what}: {why}',
    cannotPublish: 'Не удаётся передать: {why}',
    cannotShare: 'Не удаётся показать экран: {why}',
    cannotJoin: 'Не удаётся войти: {why}',
    deviceGone_cam: 'Камера отключена, другой нет.',
    deviceGone_mic: 'Микрофон отключён, другого нет.',
    deviceSwitched_cam: 'Камера отключена, теперь работает другая: {name}.',
    deviceSwitched_mic: 'Микрофон отключён, теперь работает другой: {name}.',
    raiseHandFirst: 'В этом классе говорят по приглашению преподавателя: поднимите руку.',
    handRaisedNotice: 'Рука поднята: преподаватель может пригласить вас.',
    teacherStopped: 'Преподаватель остановил {what}.',
    mutedByOrganiser: 'Организатор занятия выключил {what}.',
    serverStopped: 'Сервер остановил {what}.',
    connectionLost: 'Связь потеряна. Переподключение…',
    reconnecting: 'Переподключение…',
    err_badRequest: 'сервер не понял запрос',
    err_notJoined: 'подключение ещё не установлено',
    err_alreadyJoined: 'подключение уже установлено',
    err_notInRoom: 'вы не в классе',
    err_alreadyInRoom: 'вы уже в классе',
    err_unauthorized: 'ссылка-приглашение недействительна или устарела',
    err_roomFull: 'в классе нет мест',
    err_sourceNotAllowed: 'в этом классе так нельзя',
    err_sourceBusy: 'уже передаётся',
    err_unknownProducer: 'уже не передаётся',
    err_unknownConsumer: 'уже не передаётся',
    err_unknownPeer: 'этот участник вышел',
    err_badSdp: 'браузер и сервер не договорились о передаче',
    err_staleVersion: 'соединение успело измениться',
    err_shuttingDown: 'сервер перезапускается; попробуйте через минуту',
    err_forbidden: 'вам это недоступно',
    err_noRoom: 'такое занятие не идёт',
    err_redirect: 'класс на другом сервере',
    err_clusterUnavailable: 'серверы заняты; попробуйте чуть позже',
    err_tooManyRequests: 'слишком много запросов',
    err_internal: 'ошибка сервера',
    err_connectFailed: 'сервер недоступен',
    err_timeout: 'сервер не ответил вовремя',
    err_disconnected: 'связь потеряна',
    err_invalidState: 'сейчас это невозможно',
    err_NotAllowedError: 'доступ к устройству запрещён',
    err_NotFoundError: 'устройство не найдено',
    err_NotReadableError: 'устройство занято другой программой',
    err_OverconstrainedError: 'устройство не поддерживает нужный режим',
    err_AbortError: 'устройство остановилось',
    err_unknown: 'что-то пошло не так ({code})',
    bye_kicked: 'Вас удалили из класса.',
    bye_roomClosed: 'Занятие окончено.',
    bye_replaced: 'Вы вошли в этот класс в другом окне или на другом устройстве.',
    bye_serverShutdown: 'Сервер перезапускается. Войдите снова через минуту.',
    bye_unauthorized: 'Срок действия ссылки-приглашения истёк. Откройте занятие на портале заново.',
    bye_roomFull: 'В классе нет мест.',
    bye_reconnectFailed: 'Связь потеряна, восстановить её не удалось.',
    bye_other: 'Соединение закрыто ({reason}).',
  },
};

export const LANGUAGES = Object.keys(STRINGS);

function initialLang() {
  const asked = new URLSearchParams(globalThis.location?.search ?? '').get('lang');
  let stored = null;
  try { stored = localStorage.getItem('vclass.lang'); } catch { /* none */ }
  const browser = (globalThis.navigator?.languages ?? [globalThis.navigator?.language ?? 'en'])
    .map((l) => l.toLowerCase().split('-')[0]);
  return [asked, stored, ...browser].find((l) => LANGUAGES.includes(l)) ?? 'en';
}

let lang = initialLang();

export function currentLang() { return lang; }

/** Switches the page's language (remembered for the next visit); call applyStrings after. */
export function setLang(l) {
  if (!LANGUAGES.includes(l)) return;
  lang = l;
  try { localStorage.setItem('vclass.lang', l); } catch { /* not remembered */ }
}

/** The string of key in the page's language, its variables filled in. */
export function t(key, vars = {}) {
  let s = STRINGS[lang][key] ?? STRINGS.en[key];
  if (s === undefined) return key;
  if (typeof s === 'object') s = s[new Intl.PluralRules(lang).select(vars.n ?? 0)] ?? s.other;
  return s.replace(/\{(\w+)\}/g, (_, name) => {
    const v = vars[name];
    return typeof v === 'number' ? new Intl.NumberFormat(lang).format(v) : String(v ?? '');
  });
}

/** The page's fixed strings: data-i18n (text), data-i18n-title, -placeholder, -label (aria-label). */
export function applyStrings(root) {
  document.documentElement.lang = lang;
  document.title = lang === 'ru' ? 'vclass — виртуальный класс' : 'vclass — virtual classroom';
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll('[data-i18n-label]')) el.setAttribute('aria-label', t(el.dataset.i18nLabel));
}

/** A chat message's time, as people of the language write it. */
export function formatTime(time) {
  const date = new Date(time);
  return new Intl.DateTimeFormat(lang, { hour: '2-digit', minute: '2-digit' })
    .format(Number.isNaN(date.getTime()) ? new Date() : date);
}

/** An error (the server's code, the SDK's, or a browser's DOMException name) in words. */
export function errorText(err) {
  const code = err?.code ?? err?.name;
  if (code && (STRINGS[lang][`err_${code}`] ?? STRINGS.en[`err_${code}`])) return t(`err_${code}`);
  return t('err_unknown', { code: code ?? err?.message ?? String(err) });
}

/** Why the class ended for us (the SDK's `disconnected` code), in words. */
export function disconnectText(code, reason) {
  if (STRINGS.en[`bye_${code}`]) return t(`bye_${code}`);
  return t('bye_other', { reason: code ? errorText({ code }) : reason });
}
