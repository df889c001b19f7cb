// Recordings: filtered, paged list of recorded files; play, download, and index playlists
// over a time window.
import { get, post, qs, streamPath } from './api.js';
import { h, bytes, duration, time, streamKey, toast, errorBox, badge, toLocalInput, fromLocalInput, labelCells } from './ui.js';

const pageSize = 50;
const filterNames = ['domain', 'app', 'stream', 'format', 'status', 'from', 'to'];

export async function render(view, _arg, query) {
  const page = Math.max(1, parseInt(query.get('page') || '1', 10) || 1);
  const f = Object.fromEntries(filterNames.map((n) => [n, query.get(n) || '']));

  const input = (name, label, attrs = {}) => h('label', {}, label, h('input', { name, value: name === 'from' || name === 'to' ? toLocalInput(f[name]) : f[name], ...attrs }));
  const select = (name, label, options) => h('label', {}, label, h('select', { name },
    options.map((o) => h('option', { value: o, selected: f[name] === o }, o || 'any'))));
  const form = h('form', { class: 'filters', id: 'rec-filters', onsubmit: (e) => {
    e.preventDefault();
    const data = new FormData(form);
    const q = {};
    for (const n of filterNames) {
      let v = String(data.get(n) || '').trim();
      if ((n === 'from' || n === 'to') && v) v = fromLocalInput(v);
      q[n] = v;
    }
    location.hash = '#/recordings' + qs(q);
  } },
  input('domain', 'Domain'), input('app', 'App'), input('stream', 'Stream'),
  select('format', 'Format', ['', 'm3u8', 'cmaf', 'mp4', 'flv']),
  select('status', 'Status', ['', 'recording', 'done', 'failed']),
  input('from', 'From', { type: 'datetime-local', step: 1 }), input('to', 'To', { type: 'datetime-local', step: 1 }),
  h('div', { class: 'filter-actions' }, h('button', { type: 'submit', class: 'primary' }, 'Filter'),
    h('a', { href: '#/recordings', class: 'button' }, 'Clear')));

  const list = h('div', { id: 'rec-list' }, h('p', { class: 'muted' }, 'Loading…'));
  view.append(h('h1', {}, 'Recordings'), form, list, indexForm(f));

  const q = { ...f, limit: pageSize, offset: (page - 1) * pageSize, order: 'desc' };
  let data;
  try {
    data = await get('/recordings' + qs(q));
  } catch (e) {
    list.replaceChildren(errorBox(e));
    return;
  }
  const rows = data.recordings.map((r) => h('tr', { dataset: { id: r.id, format: r.format, status: r.status } },
    h('td', { class: 'time' }, time(r.startTime)),
    h('td', {}, streamKey(r)),
    h('td', {}, r.format, r.sequence ? ` #${r.sequence}` : ''),
    h('td', { class: 'num' }, duration(r.duration)),
    h('td', { class: 'num' }, bytes(r.bytes)),
    h('td', {}, r.width ? `${r.width}×${r.height}` : ''),
    h('td', {}, r.codecs),
    h('td', {}, badge(r.status), r.error ? h('span', { class: 'muted', title: r.error }, ' ⚠') : '', r.ossBucket ? h('span', { class: 'muted', title: `${r.ossEndpoint}/${r.ossBucket}` }, r.uploaded ? ' ☁' : ' ⇡') : ''),
    h('td', { class: 'actions' },
      playable(r) ? h('a', { href: `#/play/${r.id}`, class: 'button play' }, 'Play') : '',
      r.key && r.status === 'done' ? h('a', { href: '/files/' + r.key.split('/').map(encodeURIComponent).join('/'), download: '', class: 'button' }, 'Download') : '')));
  const first = data.total ? data.offset + 1 : 0, last = data.offset + data.recordings.length;
  const link = (p, label) => h('a', { class: 'button', href: '#/recordings' + qs({ ...f, page: p }), rel: p < page ? 'prev' : 'next' }, label);
  list.replaceChildren(
    h('div', { class: 'table-wrap' }, labelCells(h('table', { class: 'grid cards-on-phone', id: 'rec-table' },
      h('thead', {}, h('tr', {}, ['Start', 'Stream', 'Format', 'Duration', 'Size', 'Resolution', 'Codecs', 'Status', ''].map((t) => h('th', {}, t)))),
      h('tbody', {}, rows)))),
    data.recordings.length ? '' : h('p', { class: 'muted' }, 'No recording matches.'),
    h('nav', { class: 'pager', 'aria-label': 'Pages' },
      page > 1 ? link(page - 1, '← Newer') : '',
      h('span', { id: 'rec-count' }, `${first}–${last} of ${data.total}`),
      last < data.total ? link(page + 1, 'Older →') : ''));
  performance.mark('recordings-rendered'); // how long the page took (the browser tests read it)
}

function playable(r) {
  if (r.status === 'done') return !!r.key;
  return r.status === 'recording' && (r.format === 'm3u8' || r.format === 'cmaf');
}

// indexForm creates an m3u8 playlist over [start, end] from a stream's stored TS segments.
function indexForm(f) {
  const out = h('div');
  const form = h('form', { id: 'index-form', onsubmit: async (e) => {
    e.preventDefault();
    const d = new FormData(form);
    const body = { startTime: fromLocalInput(d.get('startTime')), endTime: fromLocalInput(d.get('endTime')), endTimeIncluded: d.get('endTimeIncluded') === 'on' };
    if (d.get('objectKey')) body.objectKey = String(d.get('objectKey'));
    try {
      const rec = await post(streamPath({ domain: d.get('domain'), app: d.get('app'), stream: d.get('stream') }) + '/index', body);
      out.replaceChildren(h('p', {}, 'Created ', h('a', { href: `#/play/${rec.id}` }, rec.key), ` (${duration(rec.duration)}).`));
      toast('Index playlist created');
    } catch (err) {
      out.replaceChildren(errorBox(err));
    }
  } },
  h('p', { class: 'muted' }, 'A new m3u8 over a time window, from the stored MPEG-TS segments of one stream (m3u8 recordings).'),
  h('div', { class: 'fields' },
    h('label', {}, 'Domain', h('input', { name: 'domain', required: true, value: f.domain })),
    h('label', {}, 'App', h('input', { name: 'app', required: true, value: f.app })),
    h('label', {}, 'Stream', h('input', { name: 'stream', required: true, value: f.stream })),
    h('label', {}, 'Start', h('input', { name: 'startTime', type: 'datetime-local', step: 1, required: true })),
    h('label', {}, 'End', h('input', { name: 'endTime', type: 'datetime-local', step: 1, required: true })),
    h('label', {}, 'Object key (optional)', h('input', { name: 'objectKey', placeholder: 'clips/morning' })),
    h('label', { class: 'check' }, h('input', { type: 'checkbox', name: 'endTimeIncluded' }), 'Include the segment that contains the end')),
  h('button', { type: 'submit', class: 'primary' }, 'Create index'), out);
  return h('details', { class: 'card' }, h('summary', {}, h('strong', {}, 'Create an index playlist over a time window')), form);
}
