// One ticket: what it is, its clocks, its dispatches and timeline, and the actions the
// viewer's role may take on it (the server decides; buttons only appear where they can work).

import { api, all, get, capabilities, OfflineError } from './api.js';
import { h, show, field, toast, errorBox, clear } from './dom.js';
import {
  when, countdown, clockState, CLOCK, CLOCK_STATE, TICKET_STATUS, DISPATCH_STATUS, PRIORITY, SCORE, EVENT, word,
} from './format.js';
import { currentUser } from './session.js';

let cached = null;
const REFERENCE_KEY = 'gridwhistle.reference';
/**
 * Categories, departments and grids in the viewer's reach: reference data, kept in memory, and
 * a copy (ids and names, no personal data) in the tab's sessionStorage so the filing page
 * opens without network too.
 */
export async function reference() {
  if (!cached) {
    const me = currentUser();
    let categories; let departments; let grids;
    try {
      [categories, departments, grids] = await Promise.all([
        all('/categories', {}, 1), all('/departments', {}, 1),
        all('/grid-units', me && me.unit_id ? { level: 'grid', under: me.unit_id } : { level: 'grid' }, 2),
      ]);
      const slim = (xs) => xs.map(({ id, name, active }) => ({ id, name, active }));
      sessionStorage.setItem(REFERENCE_KEY, JSON.stringify({ categories: slim(categories), departments: slim(departments), grids: slim(grids) }));
    } catch (error) {
      const kept = error instanceof OfflineError && JSON.parse(sessionStorage.getItem(REFERENCE_KEY) || 'null');
      if (!kept) throw error;
      ({ categories, departments, grids } = kept);
    }
    cached = {
      categories, departments, grids,
      category: Object.fromEntries(categories.map((c) => [c.id, c])),
      department: Object.fromEntries(departments.map((d) => [d.id, d])),
      grid: Object.fromEntries(grids.map((g) => [g.id, g])),
    };
  }
  return cached;
}
export function forgetReference() { cached = null; sessionStorage.removeItem(REFERENCE_KEY); }

export function clockBadge(clock, now = Date.now()) {
  const state = clockState(clock, now);
  const running = ['on_track', 'warning', 'breached'].includes(state);
  return h('span', { class: `badge ${state}`, 'data-due': running ? clock.due_at : null, 'data-clock': running ? JSON.stringify({ due_at: clock.due_at, started_at: clock.started_at, state: clock.state }) : null },
    `${word(CLOCK, clock.clock)} ${word(CLOCK_STATE, state)}${running ? ` · ${countdown(clock.due_at, now)}` : ''}`);
}

/** Re-draws every live countdown on the page once a second. */
export function tickCountdowns() {
  const timer = setInterval(() => {
    const now = Date.now();
    for (const el of document.querySelectorAll('[data-clock]')) {
      const clock = JSON.parse(el.getAttribute('data-clock'));
      const state = clockState({ ...clock, clock: '' }, now);
      el.className = `badge ${state}`;
      const label = el.textContent.split(' ')[0];
      el.textContent = `${label} ${word(CLOCK_STATE, state)} · ${countdown(clock.due_at, now)}`;
    }
  }, 1000);
  return () => clearInterval(timer);
}

function form(id, title, controls, submitLabel, onSubmit) {
  const out = h('div', { 'aria-live': 'polite' });
  const f = h('form', { class: 'action', id }, h('h3', {}, title), controls, h('button', { type: 'submit', class: 'primary' }, submitLabel), out);
  f.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear(out);
    if (!f.reportValidity()) return;
    const button = f.querySelector('button[type=submit]');
    button.disabled = true;
    try {
      await onSubmit();
      toast(`${submitLabel}：成功`, 'ok');
    } catch (error) {
      out.append(errorBox(error));
    } finally {
      button.disabled = false;
    }
  });
  return f;
}

/** The ticket page. */
export async function ticketPage(me, id) {
  const ref = await reference();
  const response = await api('GET', `/tickets/${id}`);
  const t = response.data;
  const etag = response.headers.get('ETag');
  const events = (await get(`/tickets/${id}/events`, { limit: 200 })).items;
  const reload = () => ticketPage(me, id);
  const ifMatch = etag ? { 'If-Match': etag } : {};
  const act = (path, body) => api('POST', path, { body, headers: ifMatch }).then(reload);

  const dept = (d) => (ref.department[d] ? ref.department[d].name : '本部门');
  const facts = h('dl', { class: 'facts' },
    h('dt', {}, '状态'), h('dd', {}, h('span', { class: `status s-${t.status}` }, word(TICKET_STATUS, t.status))),
    h('dt', {}, '类别'), h('dd', {}, ref.category[t.category_id] ? ref.category[t.category_id].name : '—'),
    h('dt', {}, '紧急程度'), h('dd', {}, word(PRIORITY, t.priority)),
    h('dt', {}, '网格'), h('dd', {}, ref.grid[t.grid_unit_id] ? ref.grid[t.grid_unit_id].name : '—'),
    h('dt', {}, '地址'), h('dd', {}, t.address || '—'),
    h('dt', {}, '居民'), h('dd', { id: 'contact' }, `${(t.resident && t.resident.name) || '—'} ${(t.resident && t.resident.phone) || ''}`),
    h('dt', {}, '受理时间'), h('dd', {}, when(t.created_at)),
    t.rating ? [h('dt', {}, '评价'), h('dd', {}, `${SCORE[t.rating.score]}${t.rating.comment ? `：${t.rating.comment}` : ''}`)] : null);

  const parts = [h('h1', {}, `${t.number} ${t.title}`), h('section', { class: 'card' }, facts, h('p', { class: 'description' }, t.description))];

  if (t.contact_revealable && t.contact_masked) {
    const reason = h('input', { name: 'reason', required: true, maxlength: 200, value: '回访居民' });
    parts.push(h('section', { class: 'card' }, form('reveal-form', '查看完整联系方式（将记入审计）', field('查看原因', reason), '查看', async () => {
      const c = await get(`/tickets/${id}/contact`, { reason: reason.value });
      document.getElementById('contact').textContent = `${c.name || '—'} ${c.phone || ''} ${c.address || ''}`;
    })));
  }

  const images = (t.attachments || []).filter((a) => a.id && a.content_type && a.content_type.startsWith('image/'));
  const shown = [];
  if (images.length) {
    parts.push(h('section', { class: 'card', id: 'attachments' }, h('h2', {}, `照片（${images.length}）`),
      h('ul', { class: 'photo-grid' }, images.map((a) => h('li', {}, photo(a, shown))))));
  }

  if (t.sla && t.sla.length) {
    parts.push(h('section', { class: 'card' }, h('h2', {}, '时限'), h('div', { class: 'clocks' }, t.sla.map((c) => clockBadge(c)))));
  }

  const dispatchRows = (t.dispatches || []).map((d) => h('li', {},
    `${dept(d.department_id)}（${d.role === 'primary' ? '主办' : '协办'}）：${word(DISPATCH_STATUS, d.status)}`,
    d.return_reason ? h('div', { class: 'muted' }, `退单理由：${d.return_reason}`) : null,
    d.reply ? h('div', { class: 'muted' }, `办结答复：${d.reply}`) : null));
  const others = (t.other_departments || []).map((o) => h('li', {}, `${o.name || o.department_name || '其他部门'}：${word(DISPATCH_STATUS, o.status)}`));
  if (dispatchRows.length || others.length) parts.push(h('section', { class: 'card' }, h('h2', {}, '派单'), h('ul', {}, dispatchRows, others)));

  const actions = h('section', { class: 'card actions', id: 'actions' }, h('h2', {}, '办理'));
  const caps = await capabilities();

  // Department staff: their own dispatch.
  if (me.role === 'department_staff') {
    for (const d of (t.dispatches || []).filter((x) => x.department_id === me.department_id)) {
      if (d.status === 'pending') {
        actions.append(h('button', { type: 'button', class: 'primary', id: 'acknowledge', onclick: () => act(`/dispatches/${d.id}/acknowledge`, {}).catch((e) => actions.append(errorBox(e))) }, '签收报到'));
      }
      if (d.status === 'pending' || d.status === 'acknowledged') {
        const reason = h('textarea', { name: 'reason', required: true, rows: 2, maxlength: 1000 });
        actions.append(form('return-form', '退单（不属于本部门职责）', field('退单理由', reason, '退单窗口期内可退；超过时限服务器会拒绝'), '退单', () => act(`/dispatches/${d.id}/return`, { reason: reason.value.trim() })));
      }
      if (d.status === 'acknowledged') {
        const note = h('textarea', { name: 'note', required: true, rows: 2, maxlength: 2000 });
        const contacted = h('input', { type: 'checkbox', name: 'contacted_resident', id: 'f-contacted' });
        actions.append(form('progress-form', '办理进展', [field('进展说明', note), h('div', { class: 'field inline' }, contacted, h('label', { for: 'f-contacted' }, '已联系居民'))], '提交进展',
          () => act(`/dispatches/${d.id}/progress`, { note: note.value.trim(), contacted_resident: contacted.checked })));
        const reply = h('textarea', { name: 'reply', required: true, rows: 3, maxlength: 4000 });
        const resolvePhotos = h('fieldset', { class: 'photos-section', id: 'resolve-photos', hidden: !caps.uploads }, h('legend', {}, '照片（办结后现场）'),
          field('拍照或选择照片', h('input', { type: 'file', accept: 'image/*', capture: 'environment', multiple: true, name: 'after_photos' })));
        const uploaded = [];
        resolvePhotos.querySelector('input').addEventListener('change', async (e) => {
          for (const file of e.target.files) {
            const fd = new FormData(); fd.append('file', file);
            try { uploaded.push(await (await api('POST', '/uploads', { raw: true, formData: fd })).json()); } catch (err) { resolvePhotos.append(errorBox(err)); }
          }
        });
        actions.append(form('resolve-form', '办结', [field('答复居民', reply), resolvePhotos], '办结', () => {
          const body = { reply: reply.value.trim() };
          if (uploaded.length) body.attachments = uploaded.map((u) => ({ upload_id: u.id, kind: 'after' }));
          return act(`/dispatches/${d.id}/resolve`, body);
        }));
        const why = h('input', { name: 'reason', required: true, maxlength: 1000 });
        const duration = h('select', { name: 'duration' }, ['1d working', '2d working', '3d working'].map((v) => h('option', { value: v }, `${v[0]} 个工作日`)));
        actions.append(form('extension-form', '申请延期', [field('延期理由', why), field('延长', duration)], '提交申请',
          () => api('POST', `/dispatches/${d.id}/extension-requests`, { body: { reason: why.value.trim(), duration: duration.value } }).then(reload)));
      }
    }
  }

  // Dispatcher (and admin): the township's actions.
  if (me.role === 'dispatcher' || me.role === 'admin') {
    if (t.status === 'filed') {
      const primary = h('select', { name: 'primary', id: 'f-primary' }, h('option', { value: '' }, '按规则自动派单'), ref.departments.filter((d) => d.active !== false).map((d) => h('option', { value: d.id }, d.name)));
      const hint = h('small', { class: 'hint', id: 'suggestion' }, '');
      const grid = ref.grid[t.grid_unit_id];
      const cat = ref.category[t.category_id];
      if (grid && cat) {
        get('/routing/resolve', { category: cat.id, unit: grid.id })
          .then((r) => {
            const p = r.primary_department_id && ref.department[r.primary_department_id];
            const co = (r.co_handler_department_ids || []).map((x) => dept(x));
            hint.textContent = p ? `建议主办部门：${p.name}${co.length ? `；协办：${co.join('、')}` : ''}（留空即按此规则派单）` : '无匹配规则：请手动选择部门';
          })
          .catch(() => { hint.textContent = '无匹配规则：请手动选择部门'; });
      }
      actions.append(form('dispatch-form', '派单', [field('主办部门', primary), hint], '派单',
        () => act(`/tickets/${id}/dispatch`, primary.value ? { primary_department_id: primary.value, co_handler_department_ids: [] } : {})));
    }
    if (['dispatched', 'in_progress'].includes(t.status)) {
      const depts = h('select', { name: 'department_ids', multiple: true, size: 4, required: true }, ref.departments.map((d) => h('option', { value: d.id }, d.name)));
      const reason = h('input', { name: 'reason', required: true, maxlength: 1000 });
      actions.append(form('whistle-form', '吹哨（增派部门）', [field('部门（可多选）', depts), field('理由', reason)], '吹哨',
        () => act(`/tickets/${id}/whistle`, { department_ids: [...depts.selectedOptions].map((o) => o.value), reason: reason.value.trim() })));
    }
    for (const d of (t.dispatches || []).filter((x) => x.status === 'returned' && !x.return_refused)) {
      actions.append(h('button', { type: 'button', class: 'secondary', onclick: () => act(`/dispatches/${d.id}/reject-return`, {}).catch((e) => actions.append(errorBox(e))) }, `驳回 ${dept(d.department_id)} 的退单`));
    }
    if (!['closed', 'cancelled'].includes(t.status)) {
      const reason = h('input', { name: 'reason', required: true, maxlength: 1000, placeholder: '如：重复工单' });
      actions.append(form('cancel-form', '取消工单', field('取消理由', reason), '取消工单', () => act(`/tickets/${id}/cancel`, { reason: reason.value.trim() })));
    }
  }

  // The filing grid worker or the dispatcher records the resident's rating (回访).
  if (t.status === 'resolved' && (me.role === 'dispatcher' || (me.role === 'grid_worker' && t.filed_by === me.id))) {
    const score = h('select', { name: 'score', required: true }, [5, 4, 3, 2, 1].map((s) => h('option', { value: s }, `${s} ${SCORE[s]}`)));
    const comment = h('input', { name: 'comment', maxlength: 1000 });
    actions.append(form('rating-form', '回访评价（好差评）', [field('居民评价', score), field('意见', comment)], '提交评价',
      () => act(`/tickets/${id}/rating`, { score: Number(score.value), comment: comment.value.trim() || undefined })));
  }
  if (actions.children.length > 1) parts.push(actions);

  parts.push(h('section', { class: 'card' }, h('h2', {}, '办理记录'), h('ol', { class: 'timeline' }, events.map((e) => h('li', {},
    h('time', { datetime: e.at }, when(e.at)), ' ', h('strong', {}, word(EVENT, e.kind)), describe(e, dept))))));

  show(...parts);
  const stopTicking = tickCountdowns();
  return () => { stopTicking(); shown.forEach((url) => URL.revokeObjectURL(url)); };
}

/**
 * One photo of the ticket: its thumbnail, and the picture itself on a tap. Both are read with
 * the bearer token (an <img src> could not send it) and shown from a blob: URL, which the
 * page's policy allows (`img-src blob:`); `urls` collects them to be released on leaving.
 */
function photo(a, urls) {
  const label = `${a.kind === 'after' ? '办结照片' : '现场照片'} ${when(a.uploaded_at)}`;
  const img = h('img', { alt: label, width: a.width && a.width < 320 ? a.width : null });
  const load = async (path) => {
    try {
      const blob = await (await api('GET', path, { raw: true, accept: 'image/*' })).blob();
      const url = URL.createObjectURL(blob);
      urls.push(url);
      img.src = url;
    } catch (error) {
      img.replaceWith(h('span', { class: 'muted' }, `照片无法显示：${error.message}`));
    }
  };
  load(`/attachments/${a.id}/thumbnail`);
  let full = false;
  const button = h('button', { type: 'button', class: 'photo', 'aria-label': `${label}（点按查看原图）` }, img);
  button.addEventListener('click', () => { if (!full) { full = true; load(`/attachments/${a.id}`); } });
  return h('figure', {}, button, h('figcaption', { class: 'muted' }, label));
}

function describe(e, dept) {
  const p = e.payload || {};
  const bits = [p.reason, p.note, p.reply, p.comment, p.instruction, p.department_id ? dept(p.department_id) : null, p.score ? SCORE[p.score] : null, p.clock ? CLOCK[p.clock] : null].filter(Boolean);
  return bits.length ? h('span', { class: 'muted' }, `：${bits.join('，')}`) : null;
}
