// Callbacks: a domain's callback configuration, and the delivery history with every try
// and its answer; a failed callback can be tried once more.
import { get, put, del, post, qs } from './api.js';
import { h, time, toast, confirmAction, errorBox, badge, streamKey } from './ui.js';

const pageSize = 50;

export async function render(view, _arg, query) {
  view.append(h('h1', {}, 'Callbacks'), configCard(query.get('domain') || ''), await history(query));
}

function configCard(domain) {
  const out = h('div', { id: 'notify-config' });
  const domainInput = h('input', { name: 'domain', value: domain, placeholder: 'example.com', required: true });
  const load = h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); show(domainInput.value.trim()); } },
    h('label', {}, 'Domain ', domainInput), h('button', { type: 'submit' }, 'Show configuration'));

  async function show(d) {
    if (!d) return;
    let cfg = null;
    try { cfg = await get(`/domains/${encodeURIComponent(d)}/notify`); } catch (e) { if (e.status !== 404) { out.replaceChildren(errorBox(e)); return; } }
    const c = cfg || {};
    const f = {
      notifyUrl: h('input', { name: 'notifyUrl', type: 'url', value: c.notifyUrl || '', placeholder: 'https://hooks.example.com/livrec' }),
      onDemandUrl: h('input', { name: 'onDemandUrl', type: 'url', value: c.onDemandUrl || '' }),
      needStatusNotify: h('input', { name: 'needStatusNotify', type: 'checkbox', checked: c.needStatusNotify }),
      notifyReqAuth: h('input', { name: 'notifyReqAuth', type: 'checkbox', checked: c.notifyReqAuth }),
      notifyAuthKey: h('input', { name: 'notifyAuthKey', type: 'password', value: c.notifyAuthKey || '', autocomplete: 'off' }),
    };
    const msg = h('div');
    const form = h('form', { class: 'card', novalidate: true, onsubmit: async (e) => {
      e.preventDefault();
      form.querySelectorAll('.field-error').forEach((x) => x.remove());
      const body = { notifyUrl: f.notifyUrl.value.trim(), onDemandUrl: f.onDemandUrl.value.trim() || undefined,
        needStatusNotify: f.needStatusNotify.checked, notifyReqAuth: f.notifyReqAuth.checked, notifyAuthKey: f.notifyAuthKey.value || undefined };
      try {
        await put(`/domains/${encodeURIComponent(d)}/notify`, body);
        toast('Callback configuration saved');
        show(d);
      } catch (err) {
        const target = err.field && f[err.field];
        const m = h('span', { class: 'field-error', role: 'alert' }, err.message);
        if (target) target.after(m); else msg.replaceChildren(errorBox(err));
      }
    } },
    h('h2', {}, `Callbacks of ${d}`, cfg ? '' : ' (none configured)'),
    h('div', { class: 'fields' },
      h('label', {}, 'Notify URL', f.notifyUrl),
      h('label', {}, 'On-demand URL (onDemand 1)', f.onDemandUrl),
      h('label', { class: 'check' }, f.needStatusNotify, 'Also send started / paused / resumed / error callbacks'),
      h('label', { class: 'check' }, f.notifyReqAuth, 'Sign callbacks'),
      h('label', {}, 'Signing key', f.notifyAuthKey)),
    msg,
    h('div', { class: 'actions' },
      cfg ? h('button', { type: 'button', class: 'danger', onclick: async () => {
        if (!(await confirmAction(`Delete the callback configuration of ${d}? No more callbacks are sent for it.`, 'Delete'))) return;
        try { await del(`/domains/${encodeURIComponent(d)}/notify`); toast('Deleted'); show(d); } catch (err) { toast(err.message, 'bad'); }
      } }, 'Delete') : '',
      h('button', { type: 'submit', class: 'primary' }, 'Save')));
    out.replaceChildren(form);
  }
  if (domain) show(domain);
  return h('section', {}, load, out);
}

async function history(query) {
  const page = Math.max(1, parseInt(query.get('page') || '1', 10) || 1);
  const f = { domain: query.get('domain') || '', event: query.get('event') || '', status: query.get('status') || '' };
  const form = h('form', { class: 'filters', onsubmit: (e) => {
    e.preventDefault();
    const d = new FormData(form);
    location.hash = '#/callbacks' + qs({ domain: d.get('domain'), event: d.get('event'), status: d.get('status') });
  } },
  h('label', {}, 'Domain', h('input', { name: 'domain', value: f.domain })),
  h('label', {}, 'Event', h('select', { name: 'event' }, ['', 'file_created', 'record_started', 'record_paused', 'record_resumed', 'record_error']
    .map((v) => h('option', { value: v, selected: f.event === v }, v || 'any')))),
  h('label', {}, 'Status', h('select', { name: 'status' }, ['', 'pending', 'success', 'failed'].map((v) => h('option', { value: v, selected: f.status === v }, v || 'any')))),
  h('div', { class: 'filter-actions' }, h('button', { type: 'submit', class: 'primary' }, 'Filter')));
  const section = h('section', {}, h('h2', {}, 'History'), form);
  let data;
  try {
    data = await get('/callbacks' + qs({ ...f, order: 'desc', limit: pageSize + 1, offset: (page - 1) * pageSize }));
  } catch (e) {
    section.append(errorBox(e));
    return section;
  }
  const more = data.callbacks.length > pageSize;
  const items = data.callbacks.slice(0, pageSize).map((cb) => {
    const attempts = h('table', { class: 'grid small' },
      h('thead', {}, h('tr', {}, ['Try', 'Time', 'Answer', 'Took', 'Error', 'Response'].map((t) => h('th', {}, t)))),
      h('tbody', {}, cb.attempts.map((a) => h('tr', {},
        h('td', {}, String(a.try)), h('td', {}, time(a.time)), h('td', {}, a.responseCode ? String(a.responseCode) : '—'),
        h('td', { class: 'num' }, a.durationMs.toFixed(0) + ' ms'), h('td', {}, a.error || ''), h('td', {}, h('code', {}, a.response || ''))))));
    const retry = cb.status === 'failed' ? h('button', { type: 'button', onclick: async (e) => {
      e.preventDefault();
      try { await post(`/callbacks/${encodeURIComponent(cb.id)}/retry`); toast('Queued for one more try'); e.target.disabled = true; } catch (err) { toast(err.message, 'bad'); }
    } }, 'Retry') : '';
    return h('details', { class: 'callback', dataset: { id: cb.id, status: cb.status } },
      h('summary', {}, badge(cb.status), ' ', h('strong', {}, cb.event), ' ', streamKey(cb), ' · ', time(cb.createdAt),
        ` · ${cb.tries} ${cb.tries === 1 ? 'try' : 'tries'}`, cb.lastError ? h('span', { class: 'muted' }, ' · ' + cb.lastError) : '', ' ', retry),
      h('p', {}, 'To ', h('code', {}, cb.url), cb.nextTryAt ? ` · next try ${time(cb.nextTryAt)}` : ''),
      attempts,
      h('details', {}, h('summary', {}, 'Body and headers'), h('pre', {}, cb.body), h('pre', {}, JSON.stringify(cb.headers, null, 2))));
  });
  section.append(items.length ? items : h('p', { class: 'muted' }, 'No callbacks.'),
    h('nav', { class: 'pager' },
      page > 1 ? h('a', { class: 'button', href: '#/callbacks' + qs({ ...f, page: page - 1 }) }, '← Newer') : '',
      more ? h('a', { class: 'button', href: '#/callbacks' + qs({ ...f, page: page + 1 }) }, 'Older →') : ''));
  return section;
}
