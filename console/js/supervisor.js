// The supervisor's dashboard: 响应率 / 解决率 / 满意率 for a period and unit beside the
// previous period, the trend (Apache ECharts, vendored), the department ranking, overdue
// clocks, supervision orders, the grid map, and CSV exports.

import { get, all, download } from './api.js';
import { h, show, clear, field, errorBox, toast } from './dom.js';
import { when, cityToday, addDays, daysBetween, percent, number, CLOCK, CLOCK_STATE, word } from './format.js';
import { gridMap } from './map.js';

const ECHARTS = '/console/vendor/echarts-5.6.0/echarts.min.js';
let echartsLoading = null;
/** ECharts is 1 MB: loaded only on this page, from this origin (the CSP allows nothing else). */
function loadECharts() {
  if (window.echarts) return Promise.resolve(window.echarts);
  if (!echartsLoading) {
    echartsLoading = new Promise((resolve, reject) => {
      const s = document.createElement('script');
      s.src = ECHARTS;
      s.onload = () => resolve(window.echarts);
      s.onerror = () => { echartsLoading = null; reject(new Error('图表组件加载失败')); };
      document.head.append(s);
    });
  }
  return echartsLoading;
}

function periods() {
  const today = cityToday();
  const monthStart = `${today.slice(0, 8)}01`;
  const lastMonthEnd = addDays(monthStart, -1);
  return {
    month: ['本月', monthStart, today],
    last_month: ['上月', `${lastMonthEnd.slice(0, 8)}01`, lastMonthEnd],
    d7: ['近 7 天', addDays(today, -6), today],
    d30: ['近 30 天', addDays(today, -29), today],
  };
}

const METRICS = [['response_rate', '响应率', '按时签收 ÷ 派单'], ['resolution_rate', '解决率', '办结 ÷ 到期'], ['satisfaction_rate', '满意率', '评价 ≥ 3 ÷ 已评价']];

export async function dashboard(me) {
  const everyUnit = await all('/grid-units', me.unit_id ? { under: me.unit_id } : {}, 3);
  const unitNames = Object.fromEntries(everyUnit.map((u) => [u.id, u.name]));
  const units = everyUnit.filter((u) => ['city', 'county', 'township'].includes(u.level));
  const p = periods();
  const period = h('select', { name: 'period', id: 'f-period' }, Object.entries(p).map(([k, [label]]) => h('option', { value: k }, label)));
  const unit = h('select', { name: 'unit', id: 'f-unit' }, units.length ? null : h('option', { value: '' }, '全部'),
    units.map((u) => h('option', { value: u.id, selected: u.id === me.unit_id }, `${u.level === 'township' ? '　　' : u.level === 'county' ? '　' : ''}${u.name}`)));
  const controls = h('form', { class: 'card controls', id: 'dashboard-controls' }, field('统计期间', period), field('单位', unit));
  const body = h('div', { id: 'dashboard-body' });
  let chart = null;

  async function render() {
    const [, from, to] = p[period.value];
    const len = daysBetween(from, to);
    const prevTo = addDays(from, -1);
    const prevFrom = addDays(prevTo, -(len - 1));
    const scope = unit.value ? { unit: unit.value } : {};
    clear(body).append(h('p', { class: 'muted' }, '加载中…'));
    try {
      const echartsReady = loadECharts();
      const [now, before, trend, overdue, orders, grids, byGrid] = await Promise.all([
        get('/reports/sla', { from, to, group_by: 'department', ...scope }),
        get('/reports/sla', { from: prevFrom, to: prevTo, group_by: 'department', ...scope }),
        get('/reports/trend', { from, to, interval: len > 62 ? 'week' : 'day', ...scope }),
        get('/reports/overdue', { limit: 50 }),
        get('/supervision-orders', { limit: 50 }),
        all('/grid-units', { level: 'grid', ...(unit.value ? { under: unit.value } : {}) }, 2),
        get('/reports/sla', { from: addDays(cityToday(), -365), to: cityToday(), group_by: 'grid', ...scope }),
      ]);
      const open = await openByGrid(scope);
      clear(body);

      body.append(h('section', { class: 'kpis', id: 'kpis', 'aria-label': '核心指标' }, METRICS.map(([key, label, how]) => {
        const a = now.total[key]; const b = before.total[key];
        const delta = a !== null && b !== null ? a - b : null;
        return h('div', { class: 'card kpi', 'data-metric': key },
          h('div', { class: 'kpi-label' }, label), h('div', { class: 'kpi-value' }, percent(a)),
          h('div', { class: 'muted' }, `上期 ${percent(b)}${delta === null ? '' : `（${delta >= 0 ? '↑' : '↓'} ${percent(Math.abs(delta))}）`}`),
          h('small', { class: 'muted' }, how));
      }), h('div', { class: 'card kpi' }, h('div', { class: 'kpi-label' }, '当前超时'), h('div', { class: 'kpi-value' }, number(now.total.overdue)),
        h('div', { class: 'muted' }, `派单 ${number(now.total.dispatched)} · 退单 ${number(now.total.returns)}`))));
      body.append(h('p', { class: 'muted' }, `本期 ${from} 至 ${to}，上期 ${prevFrom} 至 ${prevTo}`));

      const chartBox = h('div', { class: 'chart', id: 'trend-chart', role: 'img', 'aria-label': '三率趋势图' });
      body.append(h('section', { class: 'card' }, h('h2', {}, '趋势'), chartBox,
        h('button', { type: 'button', class: 'secondary', onclick: () => exportCsv('/reports/trend', { from, to, interval: len > 62 ? 'week' : 'day', ...scope }, `趋势_${from}_${to}.csv`) }, '导出 CSV')));

      body.append(h('section', { class: 'card' }, h('h2', {}, '部门排名'), rankingTable(now.rows.filter((r) => r.group_id)),
        h('button', { type: 'button', class: 'secondary', onclick: () => exportCsv('/reports/sla', { from, to, group_by: 'department', ...scope }, `部门考核_${from}_${to}.csv`) }, '导出 CSV')));

      const stats = {};
      for (const r of byGrid.rows) if (r.group_id) stats[r.group_id] = { overdue: r.overdue || 0, open: 0 };
      for (const [g, n] of Object.entries(open)) stats[g] = { overdue: (stats[g] && stats[g].overdue) || 0, open: n };
      body.append(h('section', { class: 'card', id: 'grid-map' }, h('h2', {}, '网格地图'), gridMap(grids, stats, unitNames)));

      body.append(h('section', { class: 'card', id: 'overdue' }, h('h2', {}, `超时与预警（${overdue.items.length}）`),
        overdue.items.length ? h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, h('tr', {}, ['工单', '时限', '状态', '到期', '责任部门'].map((x) => h('th', { scope: 'col' }, x)))),
          h('tbody', {}, overdue.items.map((o) => h('tr', {}, h('td', {}, h('a', { href: `#/ticket/${o.ticket_id}` }, o.number)), h('td', {}, word(CLOCK, o.clock)),
            h('td', {}, h('span', { class: `badge ${o.state}` }, word(CLOCK_STATE, o.state))), h('td', {}, when(o.due_at)), h('td', {}, o.department_name || '—')))))) : h('p', { class: 'muted' }, '无'),
        h('button', { type: 'button', class: 'secondary', onclick: () => exportCsv('/reports/overdue', { limit: 500 }, `超时清单_${cityToday()}.csv`) }, '导出 CSV')));

      body.append(h('section', { class: 'card', id: 'orders' }, h('h2', {}, `督办单（${orders.items.length}）`),
        orders.items.length ? h('ul', { class: 'orders' }, orders.items.map((o) => h('li', {},
          h('span', { class: `badge ${o.status === 'open' ? 'warning' : 'on_track'}` }, o.status === 'open' ? '待答复' : '已答复'), ' ',
          h('strong', {}, o.level === 'listed' ? '挂牌督办' : '督办'), ` ${o.instruction}`,
          h('small', { class: 'muted' }, ` 期限 ${when(o.due_at)}${o.reply ? ` · 答复：${o.reply}` : ''}`), ' ',
          h('a', { href: `#/ticket/${o.ticket_id}` }, '查看工单')))) : h('p', { class: 'muted' }, '无')));

      const echarts = await echartsReady;
      if (chart) chart.dispose();
      chart = echarts.init(chartBox, null, { renderer: 'canvas' });
      chart.setOption({
        animation: false,
        tooltip: { trigger: 'axis', renderMode: 'richText', valueFormatter: (v) => percent(v) },
        legend: { data: METRICS.map((m) => m[1]) },
        grid: { left: 48, right: 16, top: 36, bottom: 28 },
        xAxis: { type: 'category', data: trend.points.map((x) => x.from.slice(5)) },
        yAxis: { type: 'value', min: 0, max: 1, axisLabel: { formatter: (v) => `${Math.round(v * 100)}%` } },
        series: METRICS.map(([key, label]) => ({ name: label, type: 'line', connectNulls: true, showSymbol: true, symbolSize: 6, data: trend.points.map((x) => x[key]) })),
      });
    } catch (error) {
      clear(body).append(errorBox(error));
    }
  }

  period.addEventListener('change', render);
  unit.addEventListener('change', render);
  const onResize = () => chart && chart.resize();
  window.addEventListener('resize', onResize);
  show(h('h1', {}, '督办看板'), controls, body);
  await render();
  return () => { window.removeEventListener('resize', onResize); if (chart) chart.dispose(); };
}

async function openByGrid(scope) {
  const counts = {};
  for (const status of ['filed', 'dispatched', 'in_progress']) {
    for (const t of await all('/tickets', { ...scope, status }, 3)) counts[t.grid_unit_id] = (counts[t.grid_unit_id] || 0) + 1;
  }
  return counts;
}

async function exportCsv(path, query, filename) {
  try {
    await download(path, query, filename);
    toast(`已导出 ${filename}`, 'ok');
  } catch (error) {
    toast(error.message, 'error');
  }
}

const COLUMNS = [['group_name', '部门', 'text'], ['score', '综合得分', 'score'], ['response_rate', '响应率', 'pct'], ['resolution_rate', '解决率', 'pct'],
  ['satisfaction_rate', '满意率', 'pct'], ['dispatched', '派单', 'n'], ['returns', '退单', 'n'], ['breaches', '超时', 'n'], ['overdue', '当前超时', 'n']];

/** A table sorted by score; any column header sorts it (keyboard too: they are buttons). */
function rankingTable(rows) {
  let key = 'score'; let desc = true;
  const tbody = h('tbody');
  const heads = COLUMNS.map(([k, label]) => h('th', { scope: 'col', 'aria-sort': k === key ? 'descending' : 'none' },
    h('button', { type: 'button', class: 'sort', 'data-key': k, onclick: () => { desc = key === k ? !desc : k !== 'group_name'; key = k; fill(); } }, label)));
  const fill = () => {
    const sorted = [...rows].sort((a, b) => {
      const x = a[key]; const y = b[key];
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      const c = typeof x === 'string' ? x.localeCompare(y, 'zh-CN') : x - y;
      return desc ? -c : c;
    });
    clear(tbody).append(...sorted.map((r, i) => h('tr', {}, h('td', {}, String(i + 1)), COLUMNS.map(([k, , kind]) => h('td', { class: kind === 'text' ? '' : 'num' },
      kind === 'pct' ? percent(r[k]) : kind === 'score' ? (r[k] === null ? '—' : (r[k] * 100).toFixed(1)) : kind === 'n' ? number(r[k]) : r[k])))));
    heads.forEach((th, i) => th.setAttribute('aria-sort', COLUMNS[i][0] === key ? (desc ? 'descending' : 'ascending') : 'none'));
  };
  fill();
  return h('div', { class: 'table-wrap' }, h('table', { id: 'ranking' }, h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, '名次'), heads)), tbody));
}
