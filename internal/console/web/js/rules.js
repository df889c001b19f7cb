// Rules: list, create, edit, delete. The server validates (the form sets no limits of its
// own); each problem it reports is shown next to the field its path names, e.g.
// "recordFormats[0].sliceDuration".
import { get, post, put, del, qs } from './api.js';
import { h, toast, confirmAction, errorBox, time, toLocalInput, fromLocalInput, labelCells } from './ui.js';

const onDemandModes = [
  ['0', '0 — record every publish'],
  ['1', '1 — ask the on-demand URL'],
  ['2', '2 — the push URL decides (record_config)'],
  ['7', '7 — manual start command only'],
];
const formats = ['m3u8', 'cmaf', 'mp4', 'flv'];

export async function render(view, arg, query) {
  if (arg === 'new') return renderForm(view, null);
  if (arg) return renderForm(view, await get('/rules/' + encodeURIComponent(arg)));
  const page = Math.max(1, parseInt(query.get('page') || '1', 10) || 1);
  const data = await get('/rules' + qs({ page, pageSize: 100 }));
  const rows = data.rules.map((r) => h('tr', { dataset: { id: r.id } },
    h('td', {}, h('a', { href: `#/rules/${r.id}` }, `${r.domainName}/${r.appName}/${r.streamName}`)),
    h('td', {}, r.recordFormats.map((f) => f.format + (f.sliceDuration ? ` ${f.sliceDuration}s` : '') + ` / ${f.cycleDuration}s`).join(', ')),
    h('td', { class: 'num' }, r.delayTime + ' s'),
    h('td', { class: 'num' }, String(r.onDemand)),
    h('td', {}, r.ossBucket ? `${r.ossEndpoint}/${r.ossBucket}` : 'local'),
    h('td', {}, r.source),
    h('td', {}, time(r.updatedAt)),
    h('td', { class: 'actions' }, h('a', { class: 'button', href: `#/rules/${r.id}` }, 'Edit'),
      h('button', { type: 'button', class: 'danger', onclick: async () => {
        if (!(await confirmAction(`Delete the rule ${r.domainName}/${r.appName}/${r.streamName}? Recordings in progress keep it; new pushes no longer match it.`, 'Delete'))) return;
        try { await del('/rules/' + r.id); toast('Rule deleted'); render(view.replaceChildren() || view, '', query); } catch (e) { toast(e.message, 'bad'); }
      } }, 'Delete'))));
  view.append(h('div', { class: 'title-row' }, h('h1', {}, 'Rules'), h('a', { class: 'button primary', href: '#/rules/new', id: 'new-rule' }, 'New rule')),
    h('p', { class: 'muted' }, 'The most specific rule matching a stream records it: domain + app + stream, then domain + app, then domain, then the same with domain *. Changes apply from the next push.'),
    h('div', { class: 'table-wrap' }, labelCells(h('table', { class: 'grid cards-on-phone', id: 'rules-table' },
      h('thead', {}, h('tr', {}, ['Rule', 'Formats (slice / cycle)', 'Stitch', 'On demand', 'Storage', 'Source', 'Updated', ''].map((t) => h('th', {}, t)))),
      h('tbody', {}, rows)))),
    data.rules.length ? '' : h('p', { class: 'muted' }, 'No rules: nothing is recorded.'),
    h('nav', { class: 'pager' },
      page > 1 ? h('a', { class: 'button', href: `#/rules?page=${page - 1}` }, '← Previous') : '',
      h('span', {}, `${data.total} rules`),
      page * data.pageSize < data.total ? h('a', { class: 'button', href: `#/rules?page=${page + 1}` }, 'Next →') : ''));
}

function field(label, name, input, hint) {
  input.dataset.field = name;
  input.id = 'f-' + name.replace(/[^\w]/g, '_');
  return h('div', { class: 'field' }, h('label', { for: input.id }, label), input, hint ? h('small', { class: 'muted' }, hint) : '');
}

function formatRow(list, f = {}) {
  const row = h('fieldset', { class: 'format-row' });
  const sel = h('select', { name: 'format' }, formats.map((x) => h('option', { value: x, selected: f.format === x }, x)));
  const inputs = {
    format: sel,
    sliceDuration: h('input', { name: 'sliceDuration', inputmode: 'numeric', value: f.sliceDuration || '' }),
    cycleDuration: h('input', { name: 'cycleDuration', inputmode: 'numeric', value: f.cycleDuration || '' }),
    objectPrefix: h('input', { name: 'objectPrefix', value: f.objectPrefix || '', placeholder: 'record/{AppName}/{StreamName}/{EscapedStartTime}_{EscapedEndTime}' }),
    sliceObjectPrefix: h('input', { name: 'sliceObjectPrefix', value: f.sliceObjectPrefix || '', placeholder: 'record/{AppName}/{StreamName}/{UnixTimestamp}_{Sequence}' }),
  };
  row.inputs = inputs;
  row.append(
    h('legend', {}, 'Format'),
    h('div', { class: 'field' }, h('label', {}, 'Format'), sel),
    h('div', { class: 'field' }, h('label', {}, 'Slice (s, m3u8/cmaf, 5–30)'), inputs.sliceDuration),
    h('div', { class: 'field' }, h('label', {}, 'Cycle (s, 900–21600)'), inputs.cycleDuration),
    h('div', { class: 'field wide' }, h('label', {}, 'Object prefix'), inputs.objectPrefix),
    h('div', { class: 'field wide' }, h('label', {}, 'Segment prefix'), inputs.sliceObjectPrefix),
    h('button', { type: 'button', class: 'link', onclick: () => { row.remove(); renumber(list); } }, 'Remove'));
  list.append(row);
  renumber(list);
}

// renumber gives each format row's inputs their field paths (recordFormats[i].x).
function renumber(list) {
  [...list.children].forEach((row, i) => {
    row.dataset.field = `recordFormats[${i}]`;
    for (const [k, el] of Object.entries(row.inputs)) el.dataset.field = `recordFormats[${i}].${k}`;
  });
}

function num(v) {
  v = String(v ?? '').trim();
  if (v === '') return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : v; // a non-number goes as typed: the server names the field
}

function renderForm(view, rule) {
  const r = rule || { domainName: '', appName: '', streamName: '*', recordFormats: [{ format: 'm3u8' }] };
  const inp = (name, attrs = {}) => h('input', { name, value: r[name] ?? '', ...attrs });
  const els = {
    domainName: inp('domainName', { placeholder: 'example.com or *' }),
    appName: inp('appName', { placeholder: 'live or *' }),
    streamName: inp('streamName', { placeholder: '*' }),
    delayTime: inp('delayTime', { inputmode: 'numeric', placeholder: '180' }),
    onDemand: h('select', { name: 'onDemand' }, onDemandModes.map(([v, l]) => h('option', { value: v, selected: String(r.onDemand ?? 0) === v }, l))),
    startTime: h('input', { name: 'startTime', type: 'datetime-local', step: 1, value: toLocalInput(r.startTime) }),
    endTime: h('input', { name: 'endTime', type: 'datetime-local', step: 1, value: toLocalInput(r.endTime) }),
    ossEndpoint: inp('ossEndpoint'),
    ossBucket: inp('ossBucket'),
  };
  const list = h('div', { class: 'formats', dataset: { field: 'recordFormats' } });
  for (const f of r.recordFormats || []) formatRow(list, f);
  const general = h('div', { id: 'rule-error' });
  const form = h('form', { class: 'card rule-form', id: 'rule-form', novalidate: true, onsubmit: async (e) => {
    e.preventDefault();
    clearErrors(form, general);
    const body = {
      domainName: els.domainName.value.trim(), appName: els.appName.value.trim(), streamName: els.streamName.value.trim() || undefined,
      delayTime: num(els.delayTime.value), onDemand: Number(els.onDemand.value),
      startTime: fromLocalInput(els.startTime.value) || undefined, endTime: fromLocalInput(els.endTime.value) || undefined,
      ossEndpoint: els.ossEndpoint.value.trim() || undefined, ossBucket: els.ossBucket.value.trim() || undefined,
      recordFormats: [...list.children].map((row) => {
        const i = row.inputs;
        return { format: i.format.value, sliceDuration: num(i.sliceDuration.value), cycleDuration: num(i.cycleDuration.value),
          objectPrefix: i.objectPrefix.value.trim() || undefined, sliceObjectPrefix: i.sliceObjectPrefix.value.trim() || undefined };
      }),
    };
    try {
      const saved = rule ? await put('/rules/' + rule.id, body) : await post('/rules', body);
      toast(rule ? 'Rule saved' : 'Rule created');
      location.hash = '#/rules/' + saved.id;
      if (rule) { view.replaceChildren(); renderForm(view, saved); }
    } catch (err) {
      showErrors(form, general, err);
    }
  } },
  h('div', { class: 'fields' },
    field('Domain', 'domainName', els.domainName, 'Host name, or * for every domain'),
    field('App', 'appName', els.appName, 'App name, or *'),
    field('Stream', 'streamName', els.streamName, 'Stream name, or * (needs a specific app)'),
    field('Stitch window (s)', 'delayTime', els.delayTime, '15–21600; a push back within it continues the recording'),
    field('Start mode', 'onDemand', els.onDemand),
    field('Record from', 'startTime', els.startTime, 'Stream rules only'),
    field('Record until', 'endTime', els.endTime, 'Stream rules only'),
    field('Object store endpoint', 'ossEndpoint', els.ossEndpoint, 'One of s3: in the configuration; empty = local'),
    field('Bucket', 'ossBucket', els.ossBucket)),
  h('h2', {}, 'Formats'), list,
  h('button', { type: 'button', onclick: () => formatRow(list, { format: 'mp4' }) }, '+ Add a format'),
  general,
  h('div', { class: 'actions' }, h('a', { class: 'button', href: '#/rules' }, 'Back'),
    h('button', { type: 'submit', class: 'primary', id: 'rule-save' }, rule ? 'Save' : 'Create')));
  view.append(h('h1', {}, rule ? `Rule ${rule.domainName}/${rule.appName}/${rule.streamName}` : 'New rule'),
    rule ? h('p', { class: 'muted' }, `Source: ${rule.source}. `, rule.source === 'config' ? 'A change lasts until the next start (the configuration file wins).' : '') : '', form);
}

function clearErrors(form, general) {
  form.querySelectorAll('.field-error').forEach((e) => e.remove());
  form.querySelectorAll('[aria-invalid]').forEach((e) => e.removeAttribute('aria-invalid'));
  general.replaceChildren();
}

// showErrors puts each problem next to the input its field path names, or the nearest
// enclosing one (recordFormats[1] → its row); what matches nothing goes to the bottom.
function showErrors(form, general, err) {
  const problems = err.errors && err.errors.length ? err.errors : [{ field: '', message: err.message }];
  for (const p of problems) {
    let path = p.field || '', target = null;
    while (path && !(target = form.querySelector(`[data-field="${CSS.escape(path)}"]`))) {
      path = path.replace(/(\.[^.[\]]+|\[\d+\])$/, '') === path ? '' : path.replace(/(\.[^.[\]]+|\[\d+\])$/, '');
    }
    // Next to its own field the message goes without the path; elsewhere it keeps it.
    let text = p.message;
    if (p.field && path === p.field && text.startsWith(p.field + ': ')) text = text.slice(p.field.length + 2);
    else if (p.field && !text.startsWith(p.field)) text = `${p.field}: ${text}`;
    const msg = h('span', { class: 'field-error', role: 'alert', dataset: { for: p.field || '' } }, text);
    if (target) {
      target.setAttribute('aria-invalid', 'true');
      target.after(msg);
    } else {
      general.append(h('p', { class: 'error' }, msg));
    }
  }
  const first = form.querySelector('[aria-invalid]');
  if (first) first.focus();
}
