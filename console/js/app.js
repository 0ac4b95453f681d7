// The console's shell: login, the navigation each role sees, and the hash routes.
// Routes hold only ids, never personal data: #/file, #/mine, #/ticket/<id>, #/inbox, #/queue, #/dashboard.

import { api, ApiError, OfflineError } from './api.js';
import { h, show, field, clear, toast, errorBox } from './dom.js';
import { ROLE } from './format.js';
import { currentToken, currentUser, setCurrentUser, startSession, expireSession, onSessionEnd, expiresAt } from './session.js';
import * as outbox from './outbox.js';
import { fileForm, myTickets } from './worker.js';
import { inbox } from './clerk.js';
import { queue } from './dispatcher.js';
import { dashboard } from './supervisor.js';
import { ticketPage, forgetReference } from './ticket.js';

const START = {
  grid_worker: '#/file', department_staff: '#/inbox', dispatcher: '#/queue', supervisor: '#/dashboard', admin: '#/dashboard',
};
const NAV = {
  grid_worker: [['#/file', '上报诉求'], ['#/mine', '我的工单']],
  department_staff: [['#/inbox', '待办派单']],
  dispatcher: [['#/queue', '派单台'], ['#/file', '受理登记']],
  supervisor: [['#/dashboard', '督办看板']],
  admin: [['#/dashboard', '督办看板'], ['#/queue', '派单台']],
};

let loggingOut = false;
let sending = false;
let leavePage = null; // the current page's clean-up (timers, watchers)

function loginPage(message) {
  const username = h('input', { name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none' });
  const password = h('input', { name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const status = h('div', { 'aria-live': 'polite' }, message ? h('div', { class: 'error', role: 'alert' }, message) : null);
  const form = h('form', { class: 'card login', id: 'login-form' },
    h('h1', {}, '登录'),
    h('p', { class: 'muted' }, '吹哨报到 · 接诉即办 工作台'),
    field('用户名', username), field('密码', password),
    h('button', { type: 'submit', class: 'primary' }, '登录'), status);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear(status);
    try {
      const { data } = await api('POST', '/auth/token', { body: { username: username.value.trim(), password: password.value }, anonymous: true });
      startSession(data.access_token, data.expires_in);
      password.value = '';
      await enter();
    } catch (error) {
      status.append(errorBox(error instanceof ApiError && error.status === 401 ? new Error('用户名或密码不正确') : error));
    }
  });
  renderHeader();
  show(form);
  username.focus();
}

function renderHeader() {
  const nav = document.getElementById('nav');
  const who = document.getElementById('who');
  clear(nav); clear(who);
  const me = currentUser();
  if (!me) return;
  for (const [href, label] of NAV[me.role] || []) {
    nav.append(h('a', { href, 'data-route': href }, label));
  }
  who.append(h('span', { class: 'user' }, `${me.display_name}（${ROLE[me.role] || me.role}）`),
    h('button', { type: 'button', class: 'link', id: 'logout', onclick: logout }, '退出'));
  markCurrent();
}

function markCurrent() {
  for (const a of document.querySelectorAll('#nav a')) {
    if (location.hash.startsWith(a.getAttribute('href'))) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

async function logout() {
  const waiting = (await outbox.pending()).length;
  if (waiting > 0 && !window.confirm(`还有 ${waiting} 条上报未发送。退出将删除它们，确定退出吗？`)) return;
  if (waiting > 0) await outbox.clearAll();
  try { await api('POST', '/auth/logout', { body: {} }); } catch (_) { /* the token ends here either way */ }
  loggingOut = true;
  forgetReference();
  expireSession();
  loggingOut = false;
  location.hash = '';
  loginPage();
}

async function enter() {
  let data;
  try {
    ({ data } = await api('GET', '/me'));
  } catch (error) {
    // Opened without network (the service worker served the page): the tab's session still
    // knows who this is, enough for the filing page and its offline queue.
    if (!(error instanceof OfflineError) || !currentUser()) throw error;
    data = currentUser();
  }
  setCurrentUser(data);
  renderHeader();
  if (!sending) { sending = true; outbox.startSending(); }
  const start = START[data.role] || '#/dashboard';
  if (!location.hash || location.hash === '#/' || location.hash === '#/login') location.hash = start;
  else route();
}

async function route() {
  if (leavePage) { leavePage(); leavePage = null; }
  const me = currentUser();
  if (!me) return;
  markCurrent();
  const [, page, id] = location.hash.split('/');
  try {
    switch (page) {
      case 'file': leavePage = await fileForm(me); break;
      case 'mine': leavePage = await myTickets(me); break;
      case 'inbox': leavePage = await inbox(me); break;
      case 'queue': leavePage = await queue(me); break;
      case 'dashboard': leavePage = await dashboard(me); break;
      case 'ticket': leavePage = await ticketPage(me, id); break;
      default: location.hash = START[me.role] || '#/dashboard';
    }
  } catch (error) {
    show(h('h1', {}, '出错了'), errorBox(error));
  }
}

window.addEventListener('hashchange', route);
onSessionEnd(() => { forgetReference(); if (!loggingOut) loginPage('登录已过期，请重新登录'); });

// Keep the session alive while the tab is open: refresh the token when half its life is gone.
setInterval(async () => {
  if (!currentToken() || !navigator.onLine) return;
  const left = expiresAt() - Date.now();
  if (left < 6 * 3600 * 1000) {
    try {
      const { data } = await api('POST', '/auth/refresh', { body: {} });
      startSession(data.access_token, data.expires_in);
    } catch (_) { /* a refused refresh ends the session through the 401 handler */ }
  }
}, 10 * 60 * 1000);

function showNetwork() {
  const el = document.getElementById('network');
  el.textContent = navigator.onLine ? '' : '离线：上报将保存在本机，联网后自动发送';
  el.className = navigator.onLine ? 'network' : 'network offline';
}
window.addEventListener('online', () => { showNetwork(); toast('网络已恢复'); });
window.addEventListener('offline', showNetwork);

(async function start() {
  showNetwork();
  if (currentToken()) {
    try { await enter(); return; } catch (error) { if (!(error instanceof OfflineError)) expireSession(); }
  }
  loginPage(navigator.onLine ? undefined : '离线：登录需要网络');
}());

// The app shell for opening the console without network (sw.js); a browser without service
// workers (or an insecure origin) simply works online only.
if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('/console/sw.js', { scope: '/console/' }).catch(() => {});
}
