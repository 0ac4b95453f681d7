// The console's service worker: keeps the app shell (the page, the stylesheet, our scripts and
// the vendored ECharts) so that a grid worker whose phone opens or reloads the console without
// network still gets the filing page, and the offline queue (outbox.js) still works.
//
// Network first: online, every shell file comes from the server as before (a new binary is
// seen at once) and the kept copy is refreshed; only when the server cannot be reached is the
// kept copy used. Nothing else is ever kept: requests outside /console/ (the API, the event
// stream, /openapi.json) and anything but GET pass by untouched, so no API answer — and no
// resident's data — is ever written to this cache.

const CACHE = 'gridwhistle-console-shell-v1';
const SHELL = [
  '/console/',
  '/console/app.css',
  '/console/icon.svg',
  '/console/js/app.js',
  '/console/js/api.js',
  '/console/js/dom.js',
  '/console/js/format.js',
  '/console/js/session.js',
  '/console/js/outbox.js',
  '/console/js/live.js',
  '/console/js/map.js',
  '/console/js/worker.js',
  '/console/js/clerk.js',
  '/console/js/dispatcher.js',
  '/console/js/supervisor.js',
  '/console/js/ticket.js',
  '/console/vendor/echarts-5.6.0/echarts.min.js',
];

self.addEventListener('install', (event) => {
  event.waitUntil(caches.open(CACHE).then((cache) => cache.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (event) => {
  event.waitUntil(caches.keys()
    .then((names) => Promise.all(names.filter((n) => n !== CACHE).map((n) => caches.delete(n))))
    .then(() => self.clients.claim()));
});

self.addEventListener('fetch', (event) => {
  const url = new URL(event.request.url);
  if (event.request.method !== 'GET' || url.origin !== self.location.origin || !url.pathname.startsWith('/console/')) return;
  event.respondWith(networkFirst(event.request, url));
});

async function networkFirst(request, url) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok && SHELL.includes(url.pathname)) cache.put(url.pathname, response.clone()).catch(() => {});
    return response;
  } catch (error) {
    // Every page of the console is /console/ (routes are in the hash).
    const kept = await cache.match(request.mode === 'navigate' ? '/console/' : url.pathname);
    if (kept) return kept;
    throw error;
  }
}
