// The jurisdiction's grids drawn from their stored boundary polygons (GeoJSON) as SVG: no
// map tiles, nothing fetched. Each grid is coloured by its overdue and open tickets.

import { h, svg } from './dom.js';

function rings(boundary) {
  if (!boundary) return [];
  if (boundary.type === 'Polygon') return [boundary.coordinates];
  if (boundary.type === 'MultiPolygon') return boundary.coordinates;
  return [];
}

/**
 * grids: [{id, name, parent_id, boundary}], stats: {gridId: {open, overdue}}, names: {unitId: name}.
 * One panel per community, each scaled to its own grids: communities lie kilometres apart, and
 * one map of all of them would shrink every grid to a dot.
 */
export function gridMap(grids, stats, names = {}) {
  const drawn = grids.filter((g) => rings(g.boundary).length);
  if (!drawn.length) return h('p', { class: 'muted' }, '辖区内的网格没有边界数据');
  const groups = new Map();
  for (const g of drawn) {
    if (!groups.has(g.parent_id)) groups.set(g.parent_id, []);
    groups.get(g.parent_id).push(g);
  }
  const panels = [...groups.entries()].map(([parent, members]) => panel(members, stats, names[parent] || '社区'));
  return h('figure', { class: 'map' },
    h('div', { class: 'map-panels' }, panels),
    h('figcaption', {}, h('span', { class: 'key overdue' }, '有超时'), h('span', { class: 'key open' }, '有未结'), h('span', { class: 'key calm' }, '无未结'), ' 数字：未结/超时'));
}

function panel(grids, stats, title) {
  let minX = Infinity; let minY = Infinity; let maxX = -Infinity; let maxY = -Infinity;
  for (const g of grids) for (const poly of rings(g.boundary)) for (const ring of poly) for (const [x, y] of ring) {
    minX = Math.min(minX, x); maxX = Math.max(maxX, x); minY = Math.min(minY, y); maxY = Math.max(maxY, y);
  }
  // Equirectangular, with longitude shrunk by cos(latitude) so shapes keep their proportions.
  const k = Math.cos(((minY + maxY) / 2) * Math.PI / 180);
  const spanX = Math.max((maxX - minX) * k, 1e-9); const spanY = Math.max(maxY - minY, 1e-9);
  const box = 280;
  const s = Math.min(box / spanX, box / spanY);
  const width = spanX * s + 20; const height = spanY * s + 20;
  const px = (x) => 10 + (x - minX) * k * s;
  const py = (y) => height - 10 - (y - minY) * s;

  const shapes = grids.map((g) => {
    const st = stats[g.id] || { open: 0, overdue: 0 };
    const level = st.overdue > 0 ? 'overdue' : st.open > 0 ? 'open' : 'calm';
    const d = rings(g.boundary).map((poly) => poly.map((ring) => `M${ring.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join('L')}Z`).join('')).join('');
    let cx = 0; let cy = 0; let n = 0;
    for (const [x, y] of rings(g.boundary)[0][0].slice(0, -1)) { cx += px(x); cy += py(y); n += 1; }
    cx /= n; cy /= n;
    return svg('g', { class: `grid ${level}`, 'data-grid': g.id },
      svg('path', { d }, svg('title', {}, `${g.name}：未结 ${st.open} 件，超时 ${st.overdue} 件`)),
      svg('text', { x: cx.toFixed(1), y: (cy - 4).toFixed(1), 'text-anchor': 'middle' }, g.name.replace(/^.*社区/, '')),
      svg('text', { x: cx.toFixed(1), y: (cy + 14).toFixed(1), 'text-anchor': 'middle', class: 'count' }, `${st.open}/${st.overdue}`));
  });
  return h('div', { class: 'map-panel' }, h('div', { class: 'map-title' }, title),
    svg('svg', { viewBox: `0 0 ${width.toFixed(0)} ${height.toFixed(0)}`, role: 'img', 'aria-label': `${title}网格地图：按未结和超时工单着色` }, shapes));
}
