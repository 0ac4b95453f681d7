// "Something changed, look again": how the clerk's inbox (and the dispatcher's queue) hear of
// new work. When the server offers the event stream (its /openapi.json lists
// /api/v1/events/stream-token), the page listens to it and does not poll; while the stream is
// down it polls, and it reopens the stream with a fresh stream token (they live a minute) and
// the last event id, so the events of the gap are replayed. Switching is this one function.

import { api, capabilities } from './api.js';

const POLL_MS = 15000;
const RECONNECT_MS = [1000, 5000, 15000, 60000];

/**
 * Calls `refresh()` whenever there may be news, and `onMode('live' | 'polling')` as the way it
 * hears changes (the page tells the user whether it is live). Returns a function that stops
 * watching.
 */
export function watch(refresh, onMode = () => {}) {
  let stopped = false;
  let timer = null;
  let retry = null;
  let source = null;
  let lastId = null;
  let failures = 0;
  // A burst of events (a whistle to three departments) is one refresh, plus one after it if
  // more arrived meanwhile: never two refreshes at once.
  let running = null;
  let again = false;
  const look = async () => {
    if (stopped) return;
    if (running) { again = true; return; }
    running = Promise.resolve(refresh()).catch(() => {});
    await running;
    running = null;
    if (again) { again = false; look(); }
  };

  const poll = () => {
    if (timer) return;
    timer = setInterval(() => { if (navigator.onLine) look(); }, POLL_MS);
    onMode('polling');
  };
  const stopPolling = () => { clearInterval(timer); timer = null; };

  async function listen() {
    retry = null;
    if (stopped) return;
    try {
      const { data } = await api('POST', '/events/stream-token', { body: {} });
      if (stopped) return;
      const url = new URL('/api/v1/events/stream', window.location.origin);
      url.searchParams.set('stream_token', data.stream_token);
      if (lastId) url.searchParams.set('last_event_id', lastId);
      source = new EventSource(url);
      source.onopen = () => {
        failures = 0;
        stopPolling();
        onMode('live');
      };
      source.onmessage = (message) => {
        if (message.lastEventId) lastId = message.lastEventId;
        look();
      };
      source.onerror = () => {
        // The browser would retry with the same (soon expired) token: reopen ourselves instead.
        source.close();
        source = null;
        reconnect();
      };
    } catch (_) {
      reconnect();
    }
  }

  function reconnect() {
    if (stopped || retry) return;
    poll();
    retry = setTimeout(listen, RECONNECT_MS[Math.min(failures, RECONNECT_MS.length - 1)]);
    failures += 1;
  }

  capabilities().then((caps) => {
    if (stopped) return;
    if (caps.events) listen(); else poll();
  });

  return () => {
    stopped = true;
    stopPolling();
    clearTimeout(retry);
    if (source) source.close();
  };
}
