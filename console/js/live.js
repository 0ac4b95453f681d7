// "Something changed, look again": how the clerk's inbox (and the dispatcher's queue) hear of
// new work. Today it polls; when the server offers the event stream (its /openapi.json lists
// /api/v1/events/stream-token), it listens to that instead and polls only as a fallback.
// Switching is this one function.

import { api, capabilities } from './api.js';

const POLL_MS = 15000;

/** Calls `refresh()` whenever there may be news; returns a function that stops watching. */
export function watch(refresh) {
  let stopped = false;
  let timer = null;
  let source = null;

  const poll = () => {
    clearInterval(timer);
    timer = setInterval(() => { if (!stopped && navigator.onLine) refresh(); }, POLL_MS);
  };

  capabilities().then(async (caps) => {
    if (stopped) return;
    if (!caps.events) { poll(); return; }
    try {
      const { data } = await api('POST', '/events/stream-token', { body: {} });
      const token = data.stream_token || data.token;
      source = new EventSource(`/api/v1/events/stream?stream_token=${encodeURIComponent(token)}`);
      source.onmessage = () => { if (!stopped) refresh(); };
      source.addEventListener('error', () => { source.close(); source = null; if (!stopped) poll(); });
      // Named events (e.g. `dispatch.created`) also mean "look again".
      ['ticket', 'dispatch', 'dispatch.created', 'ticket.updated'].forEach((name) => source.addEventListener(name, () => { if (!stopped) refresh(); }));
    } catch (_) {
      poll();
    }
  });

  return () => {
    stopped = true;
    clearInterval(timer);
    if (source) source.close();
  };
}
