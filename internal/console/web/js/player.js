// The player: m3u8 and cmaf with hls.js, mp4 in the browser's own <video>, flv with
// mpegts.js. A recording in progress plays its live playlist (/live/{id}.m3u8), an EVENT
// playlist that keeps every segment, so the viewer can go back to its start. The players
// are loaded only here, from the console's own files.
import { get } from './api.js';
import { h, bytes, duration, time, streamKey, badge, errorBox } from './ui.js';

let hlsModule, mpegtsLoad;
export async function loadHls() {
  hlsModule ||= import('/console/vendor/hls.min.mjs');
  return (await hlsModule).default;
}
function loadMpegts() {
  mpegtsLoad ||= new Promise((resolve, reject) => {
    const s = document.createElement('script');
    s.src = '/console/vendor/mpegts.js';
    s.onload = () => resolve(window.mpegts);
    s.onerror = () => reject(new Error('could not load mpegts.js'));
    document.head.append(s);
  });
  return mpegtsLoad;
}

const liveNote = 'Recording in progress: playing its live playlist. Seek back to anywhere since the start.';

function fileURL(key) { return '/files/' + key.split('/').map(encodeURIComponent).join('/'); }

export async function render(view, id) {
  const rec = await get('/recordings/' + encodeURIComponent(id));
  const live = rec.status === 'recording';
  const video = h('video', { id: 'player', controls: true, muted: true, playsinline: true, autoplay: true, preload: 'auto' });
  video.muted = true; // autoplay is allowed muted only
  const note = h('p', { class: 'muted', id: 'player-note' });
  const err = h('div', { id: 'player-error' });
  const pos = h('span', { id: 'player-pos' });
  const goLive = h('button', { type: 'button', hidden: !live, id: 'go-live' }, 'Go live');
  const back = h('button', { type: 'button', hidden: !live, id: 'go-start' }, '⟲ From the start');
  view.append(
    h('h1', {}, streamKey(rec), ' ', badge(live ? 'LIVE' : rec.status, live ? 'recording' : rec.status)),
    h('div', { class: 'player' }, video),
    h('div', { class: 'player-bar' }, pos, back, goLive),
    note, err,
    h('dl', { class: 'facts' },
      h('dt', {}, 'Format'), h('dd', {}, rec.format),
      h('dt', {}, 'Started'), h('dd', {}, time(rec.startTime)),
      rec.endTime ? [h('dt', {}, 'Ended'), h('dd', {}, time(rec.endTime))] : '',
      h('dt', {}, 'Duration'), h('dd', {}, live ? 'recording…' : duration(rec.duration)),
      h('dt', {}, 'Size'), h('dd', {}, live ? '—' : bytes(rec.bytes)),
      h('dt', {}, 'Video'), h('dd', {}, rec.width ? `${rec.width}×${rec.height}${rec.frameRate ? ' @' + rec.frameRate.toFixed(2) + ' fps' : ''}` : '—'),
      h('dt', {}, 'Codecs'), h('dd', {}, rec.codecs || '—'),
      rec.key ? [h('dt', {}, 'Object key'), h('dd', {}, h('a', { href: fileURL(rec.key), download: '' }, rec.key))] : ''),
    h('p', {}, h('a', { href: `#/recordings?${new URLSearchParams({ domain: rec.domain, app: rec.app, stream: rec.stream })}` }, '← Recordings of this stream')));

  const tick = setInterval(() => {
    const s = video.seekable;
    const range = s.length ? ` (seekable ${duration(s.start(0))}–${duration(s.end(s.length - 1))})` : '';
    pos.textContent = `${duration(video.currentTime)} / ${isFinite(video.duration) ? duration(video.duration) : 'live'}${range}`;
  }, 500);
  video.addEventListener('error', () => { if (video.error) err.replaceChildren(errorBox(`Playback error ${video.error.code}: ${video.error.message || ''}`)); });

  let destroy = () => {};
  const src = live ? `/live/${encodeURIComponent(rec.id)}.m3u8` : rec.key ? fileURL(rec.key) : '';
  if (!src) {
    note.textContent = 'This file is being recorded; it can be played once it is generated. Its m3u8 or cmaf twin plays live.';
  } else if (rec.format === 'm3u8' || rec.format === 'cmaf') {
    const Hls = await loadHls();
    if (Hls.isSupported()) {
      const hls = new Hls({ workerPath: '/console/vendor/hls.worker.js', liveDurationInfinity: true });
      video.dataset.engine = 'hls.js';
      let retries = 0;
      hls.on(Hls.Events.ERROR, (_e, data) => {
        if (!data.fatal) return;
        // A recording that just started has no segment yet (404): ask again shortly.
        if (live && data.type === Hls.ErrorTypes.NETWORK_ERROR && retries++ < 30) {
          note.textContent = 'Waiting for the first segment…';
          setTimeout(() => hls.loadSource(src), 2000);
          return;
        }
        err.replaceChildren(errorBox(`hls.js: ${data.type} ${data.details}`));
      });
      hls.on(Hls.Events.MANIFEST_PARSED, () => { if (live) note.textContent = liveNote; });
      hls.loadSource(src);
      hls.attachMedia(video);
      goLive.onclick = () => { if (hls.liveSyncPosition) video.currentTime = hls.liveSyncPosition; };
      destroy = () => hls.destroy();
    } else if (video.canPlayType('application/vnd.apple.mpegurl')) {
      video.dataset.engine = 'native';
      video.src = src;
    } else {
      note.textContent = 'This browser cannot play HLS (no Media Source Extensions).';
    }
    if (live) note.textContent = liveNote;
  } else if (rec.format === 'flv') {
    const mpegts = await loadMpegts();
    if (mpegts.getFeatureList().mseLivePlayback) {
      const p = mpegts.createPlayer({ type: 'flv', url: src, isLive: false }, { enableWorker: false });
      video.dataset.engine = 'mpegts.js';
      p.on(mpegts.Events.ERROR, (type, detail) => err.replaceChildren(errorBox(`mpegts.js: ${type} ${detail}`)));
      p.attachMediaElement(video);
      p.load();
      destroy = () => { p.pause(); p.unload(); p.detachMediaElement(); p.destroy(); };
    } else {
      note.textContent = 'This browser cannot play FLV (no Media Source Extensions); download it instead.';
    }
  } else {
    video.dataset.engine = 'native';
    video.src = src;
  }
  back.onclick = () => { if (video.seekable.length) video.currentTime = video.seekable.start(0); };
  video.play().catch(() => { /* autoplay refused: the controls are there */ });
  return () => { clearInterval(tick); destroy(); video.removeAttribute('src'); video.load(); };
}
