// The grid worker's outbox: every filing is first written to IndexedDB with its own
// Idempotency-Key, then sent. Without network it waits ("待发送") and goes out when the
// network returns; a retry after a lost answer carries the same key, so the server files it
// exactly once. A filing leaves the browser's storage as soon as the server has it
// ("已提交"): the queue is the only place the console keeps residents' data.

import { api, ApiError, OfflineError } from './api.js';

const DB = 'gridwhistle-console';
const STORE = 'outbox';
const sent = []; // this tab's filings that reached the server: {key, number, id, title, at}
const listeners = new Set();
let flushing = null;

function open() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(STORE, { keyPath: 'key' });
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function tx(mode, work) {
  const db = await open();
  try {
    return await new Promise((resolve, reject) => {
      const t = db.transaction(STORE, mode);
      const store = t.objectStore(STORE);
      let result;
      Promise.resolve(work(store)).then((r) => { result = r; });
      t.oncomplete = () => resolve(result);
      t.onerror = () => reject(t.error);
      t.onabort = () => reject(t.error);
    });
  } finally {
    db.close();
  }
}

const req = (r) => new Promise((resolve, reject) => { r.onsuccess = () => resolve(r.result); r.onerror = () => reject(r.error); });

/** A random key that works outside secure contexts too. */
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40; b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, '0')).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export function onChange(fn) { listeners.add(fn); return () => listeners.delete(fn); }
const changed = () => listeners.forEach((fn) => fn());

/** Keeps a filing and tries to send it at once. Resolves with what happened to it. */
export async function enqueue(body) {
  const item = { key: newKey(), body, queued_at: new Date().toISOString(), state: 'pending', error: null };
  await tx('readwrite', (s) => s.put(item));
  changed();
  await flush();
  const stillQueued = await tx('readonly', (s) => req(s.get(item.key)));
  return stillQueued ? { queued: true, item: stillQueued } : { queued: false, sent: sent.find((x) => x.key === item.key) };
}

export async function pending() {
  return tx('readonly', (s) => req(s.getAll()));
}

export function sentItems() { return [...sent]; }

export async function discard(key) {
  await tx('readwrite', (s) => s.delete(key));
  changed();
}

/**
 * Sends every waiting filing, oldest first. One flush at a time: a call during a flush waits
 * for it and then runs its own, so a filing queued meanwhile is not left for the next timer.
 */
export async function flush() {
  while (flushing) await flushing;
  flushing = doFlush().finally(() => { flushing = null; });
  return flushing;
}

async function doFlush() {
  if (!navigator.onLine) return;
  const items = (await pending()).filter((i) => i.state === 'pending').sort((a, b) => a.queued_at.localeCompare(b.queued_at));
  for (const item of items) {
    try {
      const { data } = await api('POST', '/tickets', { body: item.body, headers: { 'Idempotency-Key': item.key } });
      await tx('readwrite', (s) => s.delete(item.key));
      sent.unshift({ key: item.key, id: data.id, number: data.number, title: data.title, at: new Date().toISOString() });
      changed();
    } catch (error) {
      if (error instanceof OfflineError) return;
      if (error instanceof ApiError && error.status >= 400 && error.status < 500 && ![401, 408, 429].includes(error.status)) {
        // The server refused it (e.g. a place outside the grid): keep it, marked, for the worker to fix or drop.
        await tx('readwrite', (s) => s.put({ ...item, state: 'rejected', error: error.message }));
        changed();
        continue;
      }
      return; // 5xx, 503, 429, 401: try again later, same key.
    }
  }
}

/** Sends when the network comes back, and every half minute while anything waits. */
export function startSending() {
  window.addEventListener('online', () => flush());
  setInterval(() => { if (navigator.onLine) flush(); }, 30000);
  flush();
}

/** Empties the queue (logout on a shared phone, after the worker confirmed). */
export async function clearAll() {
  await tx('readwrite', (s) => s.clear());
  changed();
}
