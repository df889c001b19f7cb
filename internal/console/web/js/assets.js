// VOD assets: the library's videos, filtered and paged, with their cover, status and
// duration; one asset's page plays its renditions (play infos) with hls.js (m3u8) or the
// browser's own <video> (mp4).
import { get, qs } from './api.js';
import { h, bytes, duration, time, badge, errorBox, labelCells } from './ui.js';
import { loadHls } from './player.js';

const pageSize = 20;
const filterNames = ['domainName', 'appName', 'streamName', 'status'];
const statuses = ['', 'Normal', 'Uploading', 'Transcoding', 'TranscodeFail', 'ProduceFail'];

const key = (a) => `${a.domainName}/${a.appName}/${a.streamName}`;
const cover = (a) => a.coverUrl
  ? h('img', { class: 'thumb', src: a.coverUrl, alt: 'cover', loading: 'lazy' })
  : h('span', { class: 'thumb none', title: 'no cover yet' }, '▶');

export async function render(view, _arg, query) {
  const page = Math.max(1, parseInt(query.get('page') || '1', 10) || 1);
  const f = Object.fromEntries(filterNames.map((n) => [n, query.get(n) || '']));
  const form = h('form', { class: 'filters', id: 'asset-filters', onsubmit: (e) => {
    e.preventDefault();
    const d = new FormData(form);
    location.hash = '#/assets' + qs(Object.fromEntries(filterNames.map((n) => [n, String(d.get(n) || '').trim()])));
  } },
  h('label', {}, 'Domain', h('input', { name: 'domainName', value: f.domainName })),
  h('label', {}, 'App', h('input', { name: 'appName', value: f.appName })),
  h('label', {}, 'Stream', h('input', { name: 'streamName', value: f.streamName })),
  h('label', {}, 'Status', h('select', { name: 'status' }, statuses.map((s) => h('option', { value: s, selected: f.status === s }, s || 'any')))),
  h('div', { class: 'filter-actions' }, h('button', { type: 'submit', class: 'primary' }, 'Filter'),
    h('a', { href: '#/assets', class: 'button' }, 'Clear')));
  const list = h('div', { id: 'asset-list' }, h('p', { class: 'muted' }, 'Loading…'));
  view.append(h('h1', {}, 'VOD assets'), form, list);

  let data;
  try {
    data = await get('/assets' + qs({ ...f, page, pageSize }));
  } catch (e) {
    list.replaceChildren(errorBox(e));
    return;
  }
  const rows = data.assets.map((a) => h('tr', { dataset: { id: a.id, status: a.status } },
    h('td', {}, h('a', { href: `#/asset/${a.id}` }, cover(a))),
    h('td', {}, h('a', { href: `#/asset/${a.id}`, class: 'title' }, a.title)),
    h('td', {}, key(a)),
    h('td', {}, badge(a.status, a.status === 'Normal' ? 'done' : /Fail/.test(a.status) ? 'failed' : 'pending'),
      a.error ? h('span', { class: 'muted', title: a.error }, ' ⚠') : ''),
    h('td', { class: 'num duration' }, duration(a.duration)),
    h('td', { class: 'num' }, bytes(a.size)),
    h('td', {}, a.playInfos.map((p) => p.definition).join(' ')),
    h('td', { class: 'time' }, time(a.recordStartTime)),
    h('td', { class: 'actions' }, h('a', { href: `#/asset/${a.id}`, class: 'button play' }, 'Play'))));
  const first = data.total ? (page - 1) * pageSize + 1 : 0, last = (page - 1) * pageSize + data.assets.length;
  const link = (p, label) => h('a', { class: 'button', href: '#/assets' + qs({ ...f, page: p }) }, label);
  list.replaceChildren(
    h('div', { class: 'table-wrap' }, labelCells(h('table', { class: 'grid cards-on-phone', id: 'asset-table' },
      h('thead', {}, h('tr', {}, ['Cover', 'Title', 'Stream', 'Status', 'Duration', 'Size', 'Renditions', 'Recorded', ''].map((t) => h('th', {}, t)))),
      h('tbody', {}, rows)))),
    data.assets.length ? '' : h('p', { class: 'muted' }, 'No asset matches. Assets are the recordings of rules with a vod: object.'),
    h('nav', { class: 'pager', 'aria-label': 'Pages' },
      page > 1 ? link(page - 1, '← Newer') : '',
      h('span', { id: 'asset-count' }, `${first}–${last} of ${data.total}`),
      last < data.total ? link(page + 1, 'Older →') : ''));
}

// renderAsset plays one asset; the rendition is chosen among its play infos.
export async function renderAsset(view, id) {
  const a = await get('/assets/' + encodeURIComponent(id));
  const video = h('video', { id: 'player', controls: true, muted: true, playsinline: true, autoplay: true, preload: 'auto', poster: a.coverUrl || undefined });
  video.muted = true; // autoplay is allowed muted only
  const err = h('div', { id: 'player-error' });
  let destroy = () => {};
  const play = async (p) => {
    destroy();
    destroy = () => {};
    err.replaceChildren();
    if (p.format === 'm3u8') {
      const Hls = await loadHls();
      if (Hls.isSupported()) {
        const hls = new Hls({ workerPath: '/console/vendor/hls.worker.js' });
        video.dataset.engine = 'hls.js';
        hls.on(Hls.Events.ERROR, (_e, d) => { if (d.fatal) err.replaceChildren(errorBox(`hls.js: ${d.type} ${d.details}`)); });
        hls.loadSource(p.url);
        hls.attachMedia(video);
        destroy = () => hls.destroy();
      } else {
        video.dataset.engine = 'native';
        video.src = p.url;
      }
    } else {
      video.dataset.engine = 'native';
      video.src = p.url;
    }
    video.play().catch(() => { /* autoplay refused: the controls are there */ });
  };
  const choice = h('select', { id: 'rendition', onchange: () => play(a.playInfos[choice.selectedIndex]) },
    a.playInfos.map((p) => h('option', {}, `${p.definition} ${p.format} ${p.width}×${p.height}`)));
  video.addEventListener('error', () => { if (video.error) err.replaceChildren(errorBox(`Playback error ${video.error.code}: ${video.error.message || ''}`)); });
  view.append(
    h('h1', {}, a.title, ' ', badge(a.status, a.status === 'Normal' ? 'done' : 'pending')),
    h('div', { class: 'player' }, video),
    h('div', { class: 'player-bar' }, h('label', {}, 'Rendition ', choice)),
    err,
    a.snapshots.length ? h('div', { class: 'snapshots' }, a.snapshotUrls.map((u) => h('img', { class: 'thumb', src: u, alt: 'snapshot', loading: 'lazy' }))) : '',
    h('dl', { class: 'facts' },
      h('dt', {}, 'Stream'), h('dd', {}, key(a)),
      h('dt', {}, 'Recorded'), h('dd', {}, time(a.recordStartTime), ' – ', time(a.recordEndTime)),
      h('dt', {}, 'Duration'), h('dd', { id: 'asset-duration' }, duration(a.duration)),
      h('dt', {}, 'Size'), h('dd', {}, bytes(a.size)),
      a.description ? [h('dt', {}, 'Description'), h('dd', {}, a.description)] : '',
      a.error ? [h('dt', {}, 'Last error'), h('dd', { class: 'error' }, a.error)] : '',
      h('dt', {}, 'Id'), h('dd', {}, a.id)),
    h('p', {}, h('a', { href: '#/assets?' + new URLSearchParams({ streamName: a.streamName }) }, '← Assets of this stream')));
  if (a.playInfos.length) await play(a.playInfos[0]);
  else err.replaceChildren(errorBox('This asset has no rendition to play yet.'));
  return () => { destroy(); video.removeAttribute('src'); video.load(); };
}
