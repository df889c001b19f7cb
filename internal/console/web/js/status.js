// Storage and health: version, disk of the data directory, each object store with its
// upload spool, and the errors of the last hour. Refreshed every 5 s.
import { get } from './api.js';
import { h, bytes, time, badge, errorBox } from './ui.js';

export async function render(view) {
  const body = h('div', { id: 'status' });
  view.append(h('h1', {}, 'Storage & health'), body);
  let timer, stopped = false;
  async function refresh() {
    try {
      const s = await get('/status');
      const used = s.disk.totalBytes ? 1 - s.disk.freeBytes / s.disk.totalBytes : 0;
      body.replaceChildren(
        h('div', { class: 'cards' },
          h('div', { class: 'card' }, h('h2', {}, 'livrec'), h('dl', { class: 'facts' },
            h('dt', {}, 'Version'), h('dd', { id: 'version' }, s.version),
            s.revision ? [h('dt', {}, 'Revision'), h('dd', {}, h('code', {}, s.revision))] : '',
            h('dt', {}, 'Go'), h('dd', {}, s.goVersion),
            h('dt', {}, 'Started'), h('dd', {}, time(s.startedAt)),
            h('dt', {}, 'Live streams'), h('dd', {}, String(s.liveStreams)))),
          h('div', { class: 'card' }, h('h2', {}, 'Disk'), h('dl', { class: 'facts' },
            h('dt', {}, 'Data directory'), h('dd', {}, h('code', {}, s.disk.path)),
            s.disk.error ? [h('dt', {}, 'Error'), h('dd', {}, s.disk.error)] : [
              h('dt', {}, 'Free'), h('dd', { id: 'disk-free' }, `${bytes(s.disk.freeBytes)} of ${bytes(s.disk.totalBytes)}`),
            ],
            h('dt', {}, 'Upload spool'), h('dd', { id: 'spool' }, bytes(s.spoolBytes))),
          s.disk.totalBytes ? h('meter', { min: 0, max: 1, low: 0.8, high: 0.9, optimum: 0, value: used.toFixed(3), title: `${Math.round(used * 100)} % used` }) : '')),
        h('h2', {}, 'Object storage'),
        s.storage.length ? h('div', { class: 'table-wrap' }, h('table', { class: 'grid' },
          h('thead', {}, h('tr', {}, ['Endpoint', 'Bucket', 'State', 'Spool', 'Files waiting', 'Oldest waiting', 'Clashes'].map((t) => h('th', {}, t)))),
          h('tbody', {}, s.storage.map((st) => h('tr', {},
            h('td', {}, st.endpoint), h('td', {}, st.bucket),
            h('td', {}, badge(st.state, st.state === 'ok' ? 'done' : st.state === 'checking' ? 'paused' : 'failed'), st.error ? h('div', { class: 'muted' }, st.error) : ''),
            h('td', { class: 'num' }, bytes(st.spoolBytes), st.overLimit ? ' ⚠ over limit' : ''),
            h('td', { class: 'num' }, String(st.spoolItems)), h('td', {}, time(st.oldestQueued)), h('td', { class: 'num' }, String(st.parked)))))))
          : h('p', { class: 'muted' }, 'Local storage only (no s3: endpoints in use).'),
        h('h2', {}, 'Errors of the last hour'),
        s.errors.length ? h('ul', { class: 'errors', id: 'recent-errors' }, s.errors.map((e) => h('li', {},
          h('time', {}, time(e.time)), ' ', h('strong', {}, e.code), ' ', e.domain || e.stream ? `${e.domain}/${e.app}/${e.stream}: ` : '', e.message)))
          : h('p', { class: 'muted', id: 'recent-errors' }, 'None.'));
    } catch (e) {
      body.replaceChildren(errorBox(e));
    }
    if (!stopped) timer = setTimeout(refresh, 5000);
  }
  await refresh();
  return () => { stopped = true; clearTimeout(timer); };
}
