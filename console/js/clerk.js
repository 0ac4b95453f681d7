// The department clerk's inbox: pending and active dispatches with live countdowns, new
// work highlighted as it arrives (live.js: polling now, the event stream once it exists).

import { all, api } from './api.js';
import { h, show, clear, toast, errorBox } from './dom.js';
import { when, PRIORITY, DISPATCH_STATUS, word } from './format.js';
import { reference, clockBadge, tickCountdowns } from './ticket.js';
import { watch } from './live.js';

export async function inbox(me) {
  const ref = await reference();
  const list = h('div', { id: 'inbox-list', 'aria-live': 'polite' });
  const stamp = h('p', { class: 'muted', id: 'inbox-updated' });
  let known = null;

  async function refresh() {
    let tickets;
    try {
      tickets = await all('/tickets', me.department_id ? { department: me.department_id } : {}, 2);
    } catch (error) {
      clear(list).append(errorBox(error));
      return;
    }
    const rows = [];
    for (const t of tickets) {
      for (const d of (t.dispatches || []).filter((x) => x.department_id === me.department_id && ['pending', 'acknowledged'].includes(x.status))) {
        // A pending dispatch races its acknowledge clock, an acknowledged one the ticket's resolve clock.
        const clock = d.status === 'pending' ? d.sla : (t.sla || []).find((c) => c.clock === 'resolve' && !c.stopped_at);
        rows.push({ t, d, clock });
      }
    }
    rows.sort((a, b) => (a.d.status === b.d.status ? 0 : a.d.status === 'pending' ? -1 : 1)
      || ((a.clock && a.clock.due_at) || '9').localeCompare((b.clock && b.clock.due_at) || '9'));
    const ids = new Set(rows.map((r) => r.d.id));
    const fresh = known ? rows.filter((r) => !known.has(r.d.id)) : [];
    if (fresh.length) toast(`新派单 ${fresh.length} 件`, 'ok');
    known = ids;
    clear(list);
    if (!rows.length) { list.append(h('p', { class: 'muted' }, '暂无待办派单')); }
    for (const section of ['pending', 'acknowledged']) {
      const mine = rows.filter((r) => r.d.status === section);
      if (!mine.length) continue;
      list.append(h('h2', {}, section === 'pending' ? `待签收（${mine.length}）` : `办理中（${mine.length}）`));
      list.append(h('ul', { class: 'inbox' }, mine.map(({ t, d, clock }) => h('li', { class: `inbox-item${fresh.some((f) => f.d.id === d.id) ? ' new' : ''}`, 'data-dispatch': d.id, 'data-number': t.number },
        h('div', { class: 'row' },
          h('a', { href: `#/ticket/${t.id}`, class: 'number' }, t.number),
          t.priority === 'urgent' ? h('span', { class: 'badge breached' }, word(PRIORITY, 'urgent')) : null,
          h('span', { class: 'status' }, `${d.role === 'primary' ? '主办' : '协办'} · ${word(DISPATCH_STATUS, d.status)}`),
          clock ? clockBadge(clock) : null),
        h('div', { class: 'title' }, t.title),
        h('small', { class: 'muted' }, `${ref.category[t.category_id] ? ref.category[t.category_id].name : ''} · 派单于 ${when(d.dispatched_at)} · 居民 ${(t.resident && t.resident.name) || '—'} ${(t.resident && t.resident.phone) || ''}`),
        d.status === 'pending' ? h('div', { class: 'row' },
          h('button', { type: 'button', class: 'primary', 'data-action': 'acknowledge', onclick: (e) => acknowledge(e.target, d.id, t.number) }, '签收报到'),
          h('a', { href: `#/ticket/${t.id}`, class: 'button secondary' }, '退单…'))
          : h('div', { class: 'row' }, h('a', { href: `#/ticket/${t.id}`, class: 'button secondary', 'data-action': 'open' }, '进展 / 办结 / 延期'))))));
    }
    stamp.textContent = `更新于 ${when(new Date().toISOString())}（自动刷新）`;
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
  const stopWatching = watch(refresh);
  const stopTicking = tickCountdowns();
  return () => { stopWatching(); stopTicking(); };
}
