// Live now: every publish with its recording state, refreshed twice a second, and the
// manual recording commands.
import { get, post, qs, streamPath } from './api.js';
import { h, kbps, duration, streamKey, toast, confirmAction, badge, errorBox, labelCells } from './ui.js';

const commands = [
  { cmd: 'start', label: 'Start', help: 'Record now (a paused task resumes)' },
  { cmd: 'stop', label: 'Stop', help: 'Pause the task like a stream cut; files are generated when the stitch window expires' },
  { cmd: 'cancel_delay', label: 'End now', help: 'End the task and generate its files now',
    confirm: (k) => `End the recording task of ${k} now? Its files are generated at once; a new start begins a new task.` },
  { cmd: 'restart', label: 'New file', help: 'Generate the open files now; new files begin at the next keyframe',
    confirm: (k) => `Close the open files of ${k} now and start new ones?` },
];

function stateOf(s) {
  if (s.state === 'recording') return badge('RECORDING', 'recording');
  if (s.state === 'paused') return badge('PAUSED', 'paused');
  return badge('not recording', 'none');
}

function ruleText(r) {
  if (!r) return '—';
  const formats = (r.recordFormats || []).map((f) => f.format).join(', ');
  return `${r.domainName}/${r.appName}/${r.streamName || '*'} · ${formats} · stitch ${r.delayTime} s`;
}

export async function render(view) {
  const tbody = h('tbody');
  const empty = h('p', { class: 'muted', id: 'live-empty' }, 'No stream is being published. Push one with e.g. ',
    h('code', {}, `ffmpeg -re -i in.mp4 -c copy -f flv rtmp://${location.hostname}:1935/live/mystream`));
  const err = h('div');
  const wrap = h('div', { class: 'table-wrap', hidden: true }, h('table', { class: 'grid cards-on-phone', id: 'live-table' },
      h('thead', {}, h('tr', {}, ['Stream', 'State', 'Codecs', 'Resolution', 'Bitrate', 'Uptime', 'Rule', 'Commands', ''].map((t) => h('th', {}, t)))),
      tbody));
  view.append(h('h1', {}, 'Live now'), err, empty, wrap);
  const rows = new Map();
  let timer = null, stopped = false, ticks = 0, lastRecs = null;

  function row(s) {
    const key = streamKey(s);
    let r = rows.get(key);
    if (r) return r;
    const cells = {};
    for (const c of ['key', 'state', 'codecs', 'res', 'bitrate', 'uptime', 'rule', 'cmds', 'play']) cells[c] = h('td', { class: c });
    cells.key.append(h('strong', {}, key));
    r = { tr: h('tr', { dataset: { stream: key } }, Object.values(cells)), cells, s };
    for (const c of commands) {
      const b = h('button', { type: 'button', class: 'cmd', dataset: { cmd: c.cmd }, title: c.help, onclick: () => run(r, c) }, c.label);
      cells.cmds.append(b);
    }
    rows.set(key, r);
    tbody.append(r.tr);
    labelCells(wrap.firstChild);
    return r;
  }

  async function run(r, c) {
    const key = streamKey(r.s);
    if (c.confirm && !(await confirmAction(c.confirm(key), c.label))) return;
    try {
      await post(streamPath(r.s) + '/record', { command: c.cmd });
      toast(`${c.label}: ${key}`);
      lastRecs = null;
      refresh();
    } catch (e) {
      toast(e.message, 'bad');
    }
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      // Streams twice a second (a new push shows at once); the open files, for the
      // resolution and the live player, every other time.
      const [{ streams }, recs] = await Promise.all([get('/streams'),
        ticks++ % 2 && lastRecs ? lastRecs : get('/recordings' + qs({ status: 'recording', limit: 1000, order: 'desc' }))]);
      lastRecs = recs;
      err.replaceChildren();
      const byTask = new Map();
      for (const f of recs.recordings) {
        const list = byTask.get(f.taskId) || [];
        list.push(f);
        byTask.set(f.taskId, list);
      }
      const seen = new Set();
      for (const s of streams) {
        const r = row(s);
        r.s = s;
        seen.add(streamKey(s));
        const files = byTask.get(s.taskId) || [];
        const withVideo = files.find((f) => f.width);
        r.cells.state.replaceChildren(stateOf(s));
        r.tr.dataset.state = s.state || 'none';
        r.cells.codecs.textContent = [s.videoCodec, s.audioCodec].filter(Boolean).join(' + ') || '—';
        r.cells.res.textContent = withVideo ? `${withVideo.width}×${withVideo.height}` + (withVideo.frameRate ? ` @${Math.round(withVideo.frameRate)}` : '') : '—';
        r.cells.bitrate.textContent = kbps(s.videoBitrate);
        r.cells.bitrate.dataset.bps = s.videoBitrate;
        r.cells.uptime.textContent = duration((Date.now() - new Date(s.since)) / 1000);
        r.cells.rule.textContent = ruleText(s.rule);
        for (const b of r.cells.cmds.querySelectorAll('button')) {
          const c = b.dataset.cmd;
          b.disabled = (c === 'start' && s.state === 'recording') || (c !== 'start' && !s.taskId) || (c === 'restart' && s.state !== 'recording');
        }
        const playable = files.find((f) => f.format === 'm3u8' || f.format === 'cmaf');
        r.cells.play.replaceChildren(playable ? h('a', { href: `#/play/${playable.id}`, class: 'button' }, 'Watch') : '');
      }
      for (const [key, r] of rows) {
        if (!seen.has(key)) { r.tr.remove(); rows.delete(key); }
      }
      empty.hidden = streams.length > 0;
      wrap.hidden = streams.length === 0;
    } catch (e) {
      err.replaceChildren(errorBox(e));
    }
    if (!stopped) timer = setTimeout(refresh, 500);
  }
  await refresh();
  return () => { stopped = true; clearTimeout(timer); };
}
