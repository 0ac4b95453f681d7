// The township dispatcher's queue: new tickets, returned tickets and arbitration flags.

import { all } from './api.js';
import { h, show, clear, errorBox } from './dom.js';
import { when, PRIORITY, word } from './format.js';
import { reference } from './ticket.js';
import { watch } from './live.js';

export async function queue(me) {
  const ref = await reference();
  const box = h('div', { id: 'queue-list', 'aria-live': 'polite' });
  const scope = me.unit_id ? { unit: me.unit_id } : {};

  const item = (t) => h('li', { class: 'inbox-item', 'data-number': t.number },
    h('div', { class: 'row' }, h('a', { href: `#/ticket/${t.id}`, class: 'number' }, t.number),
      t.priority === 'urgent' ? h('span', { class: 'badge breached' }, word(PRIORITY, 'urgent')) : null,
      t.return_count > 0 ? h('span', { class: 'badge warning' }, `退单 ${t.return_count} 次`) : null,
      t.needs_arbitration ? h('span', { class: 'badge breached' }, '待仲裁') : null),
    h('div', { class: 'title' }, t.title),
    h('small', { class: 'muted' }, `${ref.category[t.category_id] ? ref.category[t.category_id].name : ''} · ${ref.grid[t.grid_unit_id] ? ref.grid[t.grid_unit_id].name : ''} · ${when(t.created_at)}`));

  async function refresh() {
    try {
      // The full shape: the queue splits by return count and flags arbitration.
      const full = { ...scope, view: 'full' };
      const [filed, arbitration] = await Promise.all([all('/tickets', { ...full, status: 'filed' }, 2), all('/tickets', { ...full, needs_arbitration: true }, 1)]);
      const fresh = filed.filter((t) => t.return_count === 0);
      const returned = filed.filter((t) => t.return_count > 0);
      clear(box);
      for (const [title, list, id] of [['新工单', fresh, 'q-new'], ['被退回', returned, 'q-returned'], ['仲裁', arbitration, 'q-arbitration']]) {
        box.append(h('section', { class: 'card', id }, h('h2', {}, `${title}（${list.length}）`),
          list.length ? h('ul', { class: 'inbox' }, list.map(item)) : h('p', { class: 'muted' }, '无')));
      }
    } catch (error) {
      clear(box).append(errorBox(error));
    }
  }
  show(h('h1', {}, '派单台'), box);
  await refresh();
  return watch(refresh);
}
