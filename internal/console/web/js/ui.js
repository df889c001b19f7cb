// Small DOM and formatting helpers shared by the pages.

// h builds an element: h('a', {href: '#', class: 'x', onclick: fn}, 'text', child, ...).
// Strings become text nodes (never HTML), so nothing from the API is interpreted as markup.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (k === 'checked') el.checked = !!v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

export function bytes(n) {
  if (!n && n !== 0) return '';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(n < 10 ? 2 : 1) : n) + ' ' + u[i];
}

export function kbps(bitPerSec) {
  if (!bitPerSec) return '—';
  return bitPerSec >= 1e6 ? (bitPerSec / 1e6).toFixed(2) + ' Mbit/s' : Math.round(bitPerSec / 1000) + ' kbit/s';
}

export function duration(sec) {
  if (sec === undefined || sec === null || isNaN(sec)) return '';
  sec = Math.max(0, Math.round(sec));
  const hh = Math.floor(sec / 3600), mm = Math.floor(sec / 60) % 60, ss = sec % 60;
  const two = (n) => String(n).padStart(2, '0');
  return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${mm}:${two(ss)}`;
}

export function time(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  // Local time, sortable and compact whatever the browser's locale: 2026-12-01 22:19:29.
  return toLocalInput(d).replace('T', ' ');
}

export function streamKey(o) { return `${o.domain}/${o.app}/${o.stream}`; }

// toast shows a short message (role=status, read by screen readers).
let toastTimer;
export function toast(msg, kind = 'ok') {
  const el = document.getElementById('toast');
  el.textContent = msg;
  el.className = 'show ' + kind;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.className = ''; }, 4000);
}

// confirmAction asks before something that cannot be undone; resolves to true on Confirm.
export function confirmAction(text, okLabel = 'Confirm') {
  const dlg = document.getElementById('confirm');
  document.getElementById('confirm-text').textContent = text;
  document.getElementById('confirm-ok').textContent = okLabel;
  dlg.returnValue = '';
  return new Promise((resolve) => {
    dlg.addEventListener('close', () => resolve(dlg.returnValue === 'ok'), { once: true });
    dlg.showModal();
  });
}

// errorBox renders an API error (or any error) as a paragraph.
export function errorBox(err) {
  return h('p', { class: 'error', role: 'alert' }, err && err.message ? err.message : String(err));
}

// toLocalInput / fromLocalInput convert between ISO times and <input type=datetime-local>.
export function toLocalInput(d) {
  if (!d) return '';
  d = new Date(d);
  const off = d.getTimezoneOffset() * 60000;
  return new Date(d.getTime() - off).toISOString().slice(0, 19);
}
export function fromLocalInput(v) { return v ? new Date(v).toISOString() : ''; }

// badge for a state string.
export function badge(text, kind) { return h('span', { class: 'badge ' + (kind || text || 'none') }, text || '—'); }

// labelCells gives each cell of the table's body its column's name (data-label): on a
// phone the rows become cards that show it before the value.
export function labelCells(table) {
  const names = [...table.querySelectorAll('thead th')].map((th) => th.textContent);
  for (const tr of table.tBodies[0].rows) {
    [...tr.cells].forEach((td, i) => { if (names[i]) td.dataset.label = names[i]; });
  }
  return table;
}
