// The grid worker's pages, phone first: file a request (works offline) and "my tickets".

import { api, all, capabilities, OfflineError } from './api.js';
import { h, show, field, toast, errorBox, clear } from './dom.js';
import { when, TICKET_STATUS, SCORE, word } from './format.js';
import * as outbox from './outbox.js';
import { reference } from './ticket.js';

/** The filing form. Returns the page's clean-up. */
export async function fileForm(me) {
  const ref = await reference();
  const caps = await capabilities();
  const categories = ref.categories.filter((c) => c.active !== false);
  const grids = ref.grids;

  const category = h('select', { name: 'category', required: true },
    h('option', { value: '' }, '请选择类别'), categories.map((c) => h('option', { value: c.id }, c.name)));
  const urgent = h('input', { type: 'checkbox', name: 'urgent', id: 'f-urgent' });
  const title = h('input', { name: 'title', required: true, maxlength: 200, placeholder: '一句话说明问题' });
  const description = h('textarea', { name: 'description', required: true, rows: 4, maxlength: 4000, placeholder: '问题的经过、现场情况' });
  const grid = h('select', { name: 'grid', required: true },
    grids.map((g) => h('option', { value: g.id, selected: g.id === me.unit_id }, g.name)));
  if (!grids.some((g) => g.id === me.unit_id) && grids.length === 0) grid.append(h('option', { value: me.unit_id || '' }, '本网格'));
  const where = h('p', { class: 'muted', 'aria-live': 'polite', id: 'gps-status' }, '未使用定位：按所选网格上报');
  let point = null;
  const gps = h('button', { type: 'button', class: 'secondary', id: 'use-gps' }, '使用手机定位');
  gps.addEventListener('click', () => {
    if (!('geolocation' in navigator)) { where.textContent = '此设备不支持定位，请手动选择网格'; return; }
    where.textContent = '正在定位…';
    navigator.geolocation.getCurrentPosition(async (pos) => {
      point = { lat: Number(pos.coords.latitude.toFixed(6)), lon: Number(pos.coords.longitude.toFixed(6)) };
      where.textContent = `已定位：${point.lat}, ${point.lon}（精度约 ${Math.round(pos.coords.accuracy)} 米）`;
      try {
        const unit = (await api('GET', '/grid-units/locate', { query: point })).data;
        if (![...grid.options].some((o) => o.value === unit.id)) grid.append(h('option', { value: unit.id }, unit.name));
        grid.value = unit.id;
        where.textContent += `，所在网格：${unit.name}`;
      } catch (error) {
        where.textContent += error instanceof OfflineError ? '（离线，发送时由服务器确定网格）' : `；${error.message}，请手动选择网格`;
      }
    }, () => {
      point = null;
      where.textContent = '无法获取定位（未授权或信号弱），请手动选择网格';
    }, { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 });
  });
  const clearGps = h('button', { type: 'button', class: 'link' }, '不使用定位');
  clearGps.addEventListener('click', () => { point = null; where.textContent = '未使用定位：按所选网格上报'; });
  const address = h('input', { name: 'address', maxlength: 200, autocomplete: 'off', placeholder: '如：和平街 12 号 3 单元' });
  const name = h('input', { name: 'resident_name', maxlength: 50, autocomplete: 'off' });
  const phone = h('input', { name: 'resident_phone', type: 'tel', inputmode: 'tel', maxlength: 20, autocomplete: 'off', pattern: '[0-9+\\- ]{5,20}' });

  // 照片: shown once the server offers photo evidence (/api/v1/uploads in its /openapi.json).
  const uploads = [];
  const photoInput = h('input', { type: 'file', accept: 'image/*', capture: 'environment', multiple: true, name: 'photos' });
  const photoList = h('ul', { class: 'photos' });
  photoInput.addEventListener('change', () => uploadPhotos(photoInput, uploads, photoList));
  const photos = h('fieldset', { class: 'photos-section', id: 'photos', hidden: !caps.uploads },
    h('legend', {}, '照片'), field('拍照或选择照片', photoInput, '照片需联网上传；离线时可先提交文字，稍后补充'), photoList);

  const result = h('div', { 'aria-live': 'polite', id: 'file-result' });
  const form = h('form', { class: 'card', id: 'file-form', novalidate: false },
    h('h1', {}, '上报诉求'),
    field('诉求类别', category),
    h('div', { class: 'field inline' }, urgent, h('label', { for: 'f-urgent' }, '紧急（如安全隐患、人身危险）')),
    field('标题', title), field('问题描述', description),
    h('fieldset', {}, h('legend', {}, '位置'), h('div', { class: 'row' }, gps, clearGps), where, field('网格', grid), field('地址', address)),
    h('fieldset', {}, h('legend', {}, '居民联系方式（仅经办人可见）'), field('居民姓名', name), field('联系电话', phone)),
    photos,
    h('button', { type: 'submit', class: 'primary wide' }, '提交'),
    result);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear(result);
    if (!form.reportValidity()) return;
    const body = {
      category_id: category.value,
      priority: urgent.checked ? 'urgent' : 'normal',
      title: title.value.trim(),
      description: description.value.trim(),
      grid_unit_id: grid.value || undefined,
      channel: 'grid_app',
    };
    if (point) body.location = point;
    if (address.value.trim()) body.address = address.value.trim();
    if (name.value.trim() || phone.value.trim()) body.resident = { name: name.value.trim() || undefined, phone: phone.value.trim() || undefined };
    if (uploads.length) body.attachments = uploads.map((u) => ({ upload_id: u.id }));
    try {
      const outcome = await outbox.enqueue(body);
      if (outcome.queued && outcome.item.state === 'rejected') {
        result.append(h('div', { class: 'error', role: 'alert' }, `未能提交：${outcome.item.error}`));
        return;
      }
      form.reset();
      point = null; uploads.length = 0; clear(photoList);
      grid.value = me.unit_id || grid.value;
      where.textContent = '未使用定位：按所选网格上报';
      if (outcome.queued) {
        result.append(h('div', { class: 'notice pending' }, '已保存在本机（待发送），联网后自动发送，不会重复上报'));
        toast('已保存，待发送');
      } else {
        result.append(h('div', { class: 'notice ok' }, `已提交：${outcome.sent.number}`));
        toast(`已提交 ${outcome.sent.number}`, 'ok');
      }
    } catch (error) {
      result.append(errorBox(error));
    }
  });

  const queue = h('section', { class: 'card', id: 'outbox', 'aria-labelledby': 'outbox-h' });
  const renderQueue = () => outboxPanel(queue);
  const stop = outbox.onChange(renderQueue);
  await renderQueue();
  show(form, queue);
  return stop;
}

async function uploadPhotos(input, uploads, list) {
  for (const file of input.files) {
    const item = h('li', {}, `${file.name}：上传中…`);
    list.append(item);
    try {
      const form = new FormData();
      form.append('file', file);
      const response = await api('POST', '/uploads', { raw: true, formData: form });
      const data = await response.json();
      uploads.push(data);
      item.textContent = `${file.name}：已上传`;
    } catch (error) {
      item.textContent = `${file.name}：${error.message}`;
    }
  }
  input.value = '';
}

/** 待发送 / 已提交, per filing. */
async function outboxPanel(section) {
  const waiting = await outbox.pending();
  const sent = outbox.sentItems();
  clear(section);
  section.append(h('h2', { id: 'outbox-h' }, '上报记录'));
  if (!waiting.length && !sent.length) {
    section.append(h('p', { class: 'muted' }, '本次登录尚无上报'));
    return;
  }
  const list = h('ul', { class: 'outbox' });
  for (const item of waiting) {
    const rejected = item.state === 'rejected';
    list.append(h('li', { class: rejected ? 'rejected' : 'pending', 'data-key': item.key },
      h('span', { class: `badge ${rejected ? 'breached' : 'warning'}` }, rejected ? '被拒绝' : '待发送'),
      ` ${item.body.title}`, h('small', { class: 'muted' }, ` 保存于 ${when(item.queued_at)}`),
      rejected ? h('div', { class: 'error' }, item.error) : null,
      h('button', { type: 'button', class: 'link', onclick: () => { if (window.confirm('删除这条未发送的上报？')) outbox.discard(item.key); } }, '删除')));
  }
  for (const item of sent) {
    list.append(h('li', { class: 'sent' }, h('span', { class: 'badge on_track' }, '已提交'), ' ',
      h('a', { href: `#/ticket/${item.id}` }, item.number), ` ${item.title}`));
  }
  section.append(list);
}

/** The tickets this grid worker filed, newest first. */
export async function myTickets(me) {
  const section = h('section', { class: 'card', id: 'outbox' });
  const stop = outbox.onChange(() => outboxPanel(section));
  await outboxPanel(section);
  let tickets = [];
  const listBox = h('div', { id: 'my-tickets' });
  try {
    // The full shape: the list is filtered by filer and shows the rating.
    tickets = (await all('/tickets', { view: 'full' }, 2)).filter((t) => t.filed_by === me.id);
  } catch (error) {
    listBox.append(errorBox(error));
  }
  listBox.append(tickets.length === 0 ? h('p', { class: 'muted' }, '暂无工单') : h('ul', { class: 'tickets' }, tickets.map((t) => h('li', {},
    h('a', { href: `#/ticket/${t.id}`, class: 'ticket-link' },
      h('span', { class: 'number' }, t.number), ' ', h('span', { class: `status s-${t.status}` }, word(TICKET_STATUS, t.status)),
      h('div', { class: 'title' }, t.title),
      h('small', { class: 'muted' }, `${when(t.created_at)}${t.rating ? ` · 评价：${SCORE[t.rating.score]}` : ''}${t.status === 'resolved' ? ' · 待回访评价' : ''}`))))));
  show(h('h1', {}, '我的工单'), section, h('section', { class: 'card' }, h('h2', {}, '已受理'), listBox));
  return stop;
}
