// The one way the console talks to the server: the same /api/v1 and permissions as any
// client, with the bearer token held by session.js.

import { currentToken, expireSession } from './session.js';

export class ApiError extends Error {
  constructor(status, problem) {
    super((problem && (problem.detail || problem.title)) || `服务器返回 ${status}`);
    this.status = status;
    this.problem = problem;
    this.fields = problem && problem.errors;
  }
}

/** The network is unreachable: the request never got an answer. */
export class OfflineError extends Error {
  constructor() { super('网络不可用，请稍后再试'); }
}

/**
 * api('POST', '/tickets', {body, headers, query}) → {status, data, headers}.
 * Throws ApiError for a 4xx/5xx answer, OfflineError when there was no answer at all.
 */
export async function api(method, path, options = {}) {
  const url = new URL(`/api/v1${path}`, window.location.origin);
  for (const [k, v] of Object.entries(options.query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = { Accept: options.accept || 'application/json', 'Accept-Language': 'zh-CN', ...(options.headers || {}) };
  const token = currentToken();
  if (token && !options.anonymous) headers.Authorization = `Bearer ${token}`;
  let body;
  if (options.formData) {
    body = options.formData;
  } else if (options.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(options.body);
  }
  if (!navigator.onLine) throw new OfflineError();
  let response;
  try {
    response = await fetch(url, { method, headers, body, credentials: 'omit', cache: 'no-store' });
  } catch (_) {
    throw new OfflineError();
  }
  if (options.raw) {
    if (!response.ok) throw new ApiError(response.status, await problemOf(response));
    return response;
  }
  const data = response.status === 204 ? null : await response.json().catch(() => null);
  if (response.status === 401 && !options.anonymous) {
    expireSession();
    throw new ApiError(401, data || { detail: '登录已过期，请重新登录' });
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return { status: response.status, data, headers: response.headers };
}

async function problemOf(response) {
  try { return await response.json(); } catch (_) { return null; }
}

export const get = (path, query) => api('GET', path, { query }).then((r) => r.data);
export const post = (path, body, headers) => api('POST', path, { body: body || {}, headers }).then((r) => r.data);

/**
 * Every page of a list, following `next_cursor` (at most `pages` pages of 200; `Infinity` for
 * all of them). Ticket lists answer the summary of each ticket (issue 15: about a fifth of the
 * bytes); a page that reads dispatches, filers or return counts asks for `{ view: 'full' }`.
 */
export async function all(path, query = {}, pages = 5) {
  const items = [];
  let cursor;
  for (let i = 0; i < pages; i += 1) {
    const page = await get(path, { ...query, limit: 200, cursor });
    items.push(...page.items);
    if (!page.next_cursor || page.items.length === 0) break;
    cursor = page.next_cursor;
  }
  return items;
}

let described = null;
/**
 * What this server offers beyond the base API, read from its public /openapi.json (so asking
 * never produces a 404): `uploads` (photo evidence) and `events` (the push stream).
 */
export function capabilities() {
  if (!described) {
    described = fetch('/openapi.json', { cache: 'no-store' })
      .then((r) => (r.ok ? r.json() : { paths: {} }))
      .then((doc) => {
        const paths = doc.paths || {};
        return {
          uploads: '/api/v1/uploads' in paths,
          events: '/api/v1/events/stream-token' in paths && '/api/v1/events/stream' in paths,
        };
      })
      .catch(() => { described = null; return { uploads: false, events: false }; });
  }
  return described;
}

/** Downloads a CSV export (needs the token, so it cannot be a plain link). */
export async function download(path, query, filename) {
  const response = await api('GET', path, { query: { ...query, format: 'csv' }, accept: 'text/csv', raw: true });
  const blob = await response.blob();
  const href = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = href;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10000);
}
