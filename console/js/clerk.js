// The department clerk's inbox: every pending and active dispatch of the department with a
// live countdown, pending first and the nearest deadline first, new work highlighted as it
// arrives (live.js: the event stream, or polling where there is none).
//
// The inbox is built from the department's dispatches (`/dispatches?status=…`, every page
// followed to the end, so no department is ever cut off at some count) and the summaries of
// its active tickets (number, title, category, priority, next deadline); the full ticket is
// read only when the clerk opens it. The list shows `SHOWN` rows per section and a "more"
// button, so a department with thousands of dispatches still gets a quick page.

import { all, api } from './api.js';
import { h, show, clear, toast, errorBox } from './dom.js';
import { when, PRIORITY, DISPATCH_STATUS, word } from './format.js';
import { reference, clockBadge, tickCountdowns } from './ticket.js';
import { watch } from './live.js';

const SHOWN = 50;
const EVERY_PAGE = Infinity;

/** The dispatch's own deadline: a pending one races its acknowledge clock, an acknowledged one the ticket's next. */
function clockOf(d, summary) {
  const next = summary && summary.next_deadline;
  if (d.status === 'pending') {
    if (!d.ack_due_at) return null;
    const own = next && next.dispatch_id === d.id && next.clock === 'acknowledge' ? next : null;
    return { clock: 'acknowledge', due_at: d.ack_due_at, started_at: d.dispatched_at, state: own ? own.state : 'on_track' };
  }
  return next ? { clock: next.clock, due_at: next.due_at, state: next.state } : null;
}

const dueOf = (row) => (row.clock && row.clock.due_at) || '9999';

export async function inbox(me) {
  const ref = await reference();
  const list = h('div', { id: 'inbox-list', 'aria-live': 'polite' });
  const stamp = h('p', { class: 'muted', id: 'inbox-updated' });
  const shown = { pending: SHOWN, acknowledged: SHOWN };
  let known = null;
  let rows = [];
  let fresh = new Set();
  let mode = 'polling';
  let updated = null;
  let lastDrawn = null;
  const stampNow = () => { stamp.textContent = `更新于 ${when(updated)}（${mode === 'live' ? '实时推送' : '每 15 秒自动刷新'}）`; };

  async function load() {
    const mine = me.department_id ? { department: me.department_id } : {};
    const [pending, acknowledged, dispatched, working] = await Promise.all([
      all('/dispatches', { ...mine, status: 'pending' }, EVERY_PAGE),
      all('/dispatches', { ...mine, status: 'acknowledged' }, EVERY_PAGE),
      all('/tickets', { ...mine, status: 'dispatched' }, EVERY_PAGE),
      all('/tickets', { ...mine, status: 'in_progress' }, EVERY_PAGE),
    ]);
    const summaries = new Map([...dispatched, ...working].map((t) => [t.id, t]));
    // A dispatch still open on a ticket in another state (rare): read that ticket alone.
    for (const d of [...pending, ...acknowledged]) {
      if (!summaries.has(d.ticket_id)) {
        const t = (await api('GET', `/tickets/${d.ticket_id}`)).data;
        summaries.set(t.id, t);
      }
    }
    return [...pending, ...acknowledged].map((d) => {
      const t = summaries.get(d.ticket_id);
      return { t, d, clock: clockOf(d, t) };
    }).sort((a, b) => (a.d.status === b.d.status ? 0 : a.d.status === 'pending' ? -1 : 1)
      || dueOf(a).localeCompare(dueOf(b))
      || a.d.dispatched_at.localeCompare(b.d.dispatched_at));
  }

  const row = ({ t, d, clock }) => h('li', { class: `inbox-item${fresh.has(d.id) ? ' new' : ''}`, 'data-dispatch': d.id, 'data-number': t.number },
    h('div', { class: 'row' },
      h('a', { href: `#/ticket/${t.id}`, class: 'number' }, t.number),
      t.priority === 'urgent' ? h('span', { class: 'badge breached' }, word(PRIORITY, 'urgent')) : null,
      h('span', { class: 'status' }, `${d.role === 'primary' ? '主办' : '协办'} · ${word(DISPATCH_STATUS, d.status)}`),
      clock ? clockBadge(clock) : null),
    h('div', { class: 'title' }, t.title),
    h('small', { class: 'muted' }, `${ref.category[t.category_id] ? ref.category[t.category_id].name : ''} · 派单于 ${when(d.dispatched_at)}`),
    d.status === 'pending' ? h('div', { class: 'row' },
      h('button', { type: 'button', class: 'primary', 'data-action': 'acknowledge', onclick: (e) => acknowledge(e.target, d.id, t.number) }, '签收报到'),
      h('a', { href: `#/ticket/${t.id}`, class: 'button secondary' }, '退单…'))
      : h('div', { class: 'row' }, h('a', { href: `#/ticket/${t.id}`, class: 'button secondary', 'data-action': 'open' }, '进展 / 办结 / 延期')));

  function render() {
    clear(list);
    if (!rows.length) { list.append(h('p', { class: 'muted' }, '暂无待办派单')); }
    for (const section of ['pending', 'acknowledged']) {
      const mine = rows.filter((r) => r.d.status === section);
      if (!mine.length) continue;
      const visible = mine.slice(0, shown[section]);
      const rest = mine.length - visible.length;
      list.append(h('section', { id: `inbox-${section}` },
        h('h2', {}, section === 'pending' ? `待签收（${mine.length}）` : `办理中（${mine.length}）`),
        h('ul', { class: 'inbox' }, visible.map(row)),
        rest > 0 ? h('button', {
          type: 'button', class: 'secondary wide', 'data-action': 'more',
          onclick: () => { shown[section] += SHOWN; render(); },
        }, `再显示 ${Math.min(rest, SHOWN)} 件（还有 ${rest} 件）`) : null));
    }
  }

  async function refresh() {
    try {
      rows = await load();
    } catch (error) {
      clear(list).append(errorBox(error));
      return;
    }
    const arrived = known ? rows.filter((r) => !known.has(r.d.id)) : [];
    if (arrived.length) toast(`新派单 ${arrived.length} 件`, 'ok');
    // What arrived while the inbox was open stays marked new (a burst of events brings a second
    // refresh at once), as long as it is in the inbox.
    known = new Set(rows.map((r) => r.d.id));
    fresh = new Set([...fresh, ...arrived.map((r) => r.d.id)].filter((id) => known.has(id)));
    // Redraw only when something shown changed: an event that changes nothing here (another
    // department's news, a second refresh of a burst) must not rebuild the list under the
    // clerk's pointer.
    const drawn = JSON.stringify(rows.map(({ t, d, clock }) => [d.id, d.status, t.version, t.title, clock && clock.due_at, clock && clock.state, fresh.has(d.id)]));
    if (drawn !== lastDrawn) render();
    lastDrawn = drawn;
    updated = new Date().toISOString();
    stampNow();
  }

  async function acknowledge(button, dispatchId, number) {
    button.disabled = true;
    try {
      await api('POST', `/dispatches/${dispatchId}/acknowledge`, { body: {} });
      toast(`${number} 已签收`, 'ok');
      await refresh();
    } catch (error) {
      button.disabled = false;
      button.after(errorBox(error));
    }
  }

  show(h('h1', {}, '待办派单'), stamp, list);
  await refresh();
  const stopWatching = watch(refresh, (how) => { mode = how; stampNow(); });
  const stopTicking = tickCountdowns();
  return () => { stopWatching(); stopTicking(); };
}
