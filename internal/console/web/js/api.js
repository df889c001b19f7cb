// The JSON API client. With apiTokens configured the server wants a bearer token: it is
// kept in sessionStorage (this tab only, gone when it closes), sent in the Authorization
// header and never put in a URL. Without tokens the API answers loopback clients as is.

const tokenKey = 'livrec.token';

export function token() { return sessionStorage.getItem(tokenKey) || ''; }
export function setToken(t) {
  if (t) sessionStorage.setItem(tokenKey, t); else sessionStorage.removeItem(tokenKey);
}

// ApiError carries the API's {"error", "field", "errors"} answer.
export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.field = body && body.field;
    this.errors = (body && body.errors) || (this.field ? [{ field: this.field, message: this.message }] : []);
  }
}

// onUnauthorized is set by the app: it shows the login form.
export const hooks = { onUnauthorized: () => {} };

export async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  const t = token();
  if (t) headers.Authorization = 'Bearer ' + t;
  const init = { method, headers, credentials: 'omit', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const resp = await fetch('/api/v1' + path, init);
  let data = null;
  const text = await resp.text();
  if (text) {
    try { data = JSON.parse(text); } catch { data = { error: text.trim() }; }
  }
  if (resp.status === 401) hooks.onUnauthorized();
  if (!resp.ok) throw new ApiError(resp.status, data);
  return data;
}

export const get = (path) => api('GET', path);
export const post = (path, body) => api('POST', path, body);
export const put = (path, body) => api('PUT', path, body);
export const del = (path) => api('DELETE', path);

// qs builds a query string from the non-empty values of obj.
export function qs(obj) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(obj)) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  const s = p.toString();
  return s ? '?' + s : '';
}

// streamPath is /streams/{domain}/{app}/{stream}, each part escaped.
export function streamPath(s) {
  return `/streams/${encodeURIComponent(s.domain)}/${encodeURIComponent(s.app)}/${encodeURIComponent(s.stream)}`;
}
