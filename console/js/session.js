// The session. Decision (see README "Console"): the bearer token lives in memory and in
// sessionStorage — never in a cookie, so no request is sent with credentials the browser adds
// by itself and CSRF is not possible; sessionStorage keeps the session across reloads of the
// tab and ends with the tab. Stored with the token: its expiry and the user's own record (id,
// role, home unit or department, display name), so that a reload without network (the
// service worker serves the page) can still open the filing page. Residents' personal data is
// never put in the URL or in storage, except the offline queue of filings (outbox.js),
// cleared as each is sent.

const KEY = 'gridwhistle.session';
let session = null; // {token, expires_at, me}
let me = null;
const listeners = [];

function load() {
  try {
    const stored = JSON.parse(sessionStorage.getItem(KEY) || 'null');
    if (stored && stored.token && stored.expires_at > Date.now()) { session = stored; me = stored.me || null; } else sessionStorage.removeItem(KEY);
  } catch (_) { session = null; }
}
load();

export function currentToken() {
  if (session && session.expires_at <= Date.now()) expireSession();
  return session ? session.token : null;
}

export function currentUser() { return me; }
export function setCurrentUser(user) {
  me = user;
  if (session) {
    const { id, role, unit_id, department_id, display_name } = user;
    session.me = { id, role, unit_id, department_id, display_name };
    sessionStorage.setItem(KEY, JSON.stringify(session));
  }
}

export function onSessionEnd(fn) { listeners.push(fn); }

export function startSession(token, expiresIn) {
  session = { token, expires_at: Date.now() + expiresIn * 1000, me: session ? session.me : undefined };
  sessionStorage.setItem(KEY, JSON.stringify(session));
}

/** Forget the token (logout, expiry, 401). */
export function expireSession() {
  const had = session !== null;
  session = null;
  me = null;
  sessionStorage.removeItem(KEY);
  if (had) listeners.forEach((fn) => fn());
}

/** Swap the token for a fresh one before it runs out (the server caps the session's age). */
export function renewedSession(token, expiresIn) { startSession(token, expiresIn); }

export function expiresAt() { return session ? session.expires_at : 0; }
