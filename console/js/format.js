// Dates, numbers and the words of the domain, in Chinese and the city's time (UTC+8).

export const TIME_ZONE = 'Asia/Shanghai';

const dateTime = new Intl.DateTimeFormat('zh-CN', {
  timeZone: TIME_ZONE, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hour12: false,
});
const dateOnly = new Intl.DateTimeFormat('zh-CN', { timeZone: TIME_ZONE, year: 'numeric', month: '2-digit', day: '2-digit' });

export function when(iso) {
  if (!iso) return '—';
  return dateTime.format(new Date(iso));
}

export function day(iso) {
  return iso ? dateOnly.format(new Date(iso)) : '—';
}

/** Today's date in the city, YYYY-MM-DD. */
export function cityToday(offsetDays = 0) {
  const t = new Date(Date.now() + offsetDays * 86400000);
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-CA', { timeZone: TIME_ZONE, year: 'numeric', month: '2-digit', day: '2-digit' })
    .formatToParts(t).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day}`;
}

/** YYYY-MM-DD plus n days (calendar arithmetic on the date itself). */
export function addDays(ymd, n) {
  const d = new Date(`${ymd}T00:00:00Z`);
  d.setUTCDate(d.getUTCDate() + n);
  return d.toISOString().slice(0, 10);
}

export function daysBetween(from, to) {
  return Math.round((new Date(`${to}T00:00:00Z`) - new Date(`${from}T00:00:00Z`)) / 86400000) + 1;
}

const pct = new Intl.NumberFormat('zh-CN', { style: 'percent', maximumFractionDigits: 1 });
export function percent(rate) {
  return rate === null || rate === undefined ? '—' : pct.format(rate);
}

const num = new Intl.NumberFormat('zh-CN', { maximumFractionDigits: 1 });
export function number(n) {
  return n === null || n === undefined ? '—' : num.format(n);
}

/** "剩余 3小时12分" or "超时 1天2小时". */
export function countdown(dueIso, now = Date.now()) {
  if (!dueIso) return '—';
  let s = Math.round((new Date(dueIso).getTime() - now) / 1000);
  const late = s < 0;
  s = Math.abs(s);
  const d = Math.floor(s / 86400); const hh = Math.floor((s % 86400) / 3600);
  const mm = Math.floor((s % 3600) / 60); const ss = s % 60;
  let text;
  if (d > 0) text = `${d}天${hh}小时`;
  else if (hh > 0) text = `${hh}小时${mm}分`;
  else text = `${mm}分${String(ss).padStart(2, '0')}秒`;
  return late ? `超时 ${text}` : `剩余 ${text}`;
}

/** on_track / warning / breached of a running clock, as the server defines it (80 % warns). */
export function clockState(clock, now = Date.now()) {
  if (!clock) return 'none';
  if (clock.stopped_at || !['on_track', 'warning', 'breached'].includes(clock.state)) return clock.state;
  const due = new Date(clock.due_at).getTime();
  const start = new Date(clock.started_at).getTime();
  if (now >= due) return 'breached';
  if (clock.state === 'warning' || now >= start + 0.8 * (due - start)) return 'warning';
  return 'on_track';
}

export const CLOCK_STATE = {
  on_track: '正常', warning: '即将超时', breached: '已超时', met: '已达成', missed: '未达成', cancelled: '已取消', none: '—',
};
export const TICKET_STATUS = {
  filed: '待派单', dispatched: '已派单', in_progress: '办理中', resolved: '已办结', closed: '已关闭', cancelled: '已取消',
};
export const DISPATCH_STATUS = {
  pending: '待签收', acknowledged: '已签收', returned: '已退回', resolved: '已办结', cancelled: '已取消',
};
export const CLOCK = { acknowledge: '签收报到', first_contact: '首次响应', resolve: '办结', rectify: '差评整改' };
export const PRIORITY = { normal: '一般', urgent: '紧急' };
export const ROLE = {
  grid_worker: '网格员', dispatcher: '街乡派单员', department_staff: '部门承办人', supervisor: '督办员', admin: '系统管理员',
};
export const SCORE = { 5: '非常满意', 4: '满意', 3: '基本满意', 2: '不满意', 1: '非常不满意' };
export const EVENT = {
  filed: '受理登记', dispatched: '派单', whistled: '吹哨', acknowledged: '签收报到', work_started: '开始办理', progress: '办理进展',
  dispatch_resolved: '部门办结', resolved: '办结', rated: '评价', closed: '关闭', auto_closed: '逾期未评自动关闭',
  reopened: '差评重办', escalated: '升级', cancelled: '取消', returned: '退单', return_refused: '驳回退单',
  arbitration_requested: '申请仲裁', sla_warning: '即将超时预警', sla_breached: '超时', supervision_ordered: '督办',
  supervision_replied: '督办答复', extension_requested: '申请延期', extension_approved: '同意延期', extension_rejected: '驳回延期',
  contact_revealed: '查看联系方式', personal_data_erased: '删除个人信息',
};
export const word = (table, key) => table[key] || key || '—';
