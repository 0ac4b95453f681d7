-- The November 2026 department report for the city supervisor, written by hand: the same
-- figures as GET /api/v1/reports/sla?from=2026-11-01&to=2026-11-30&group_by=department.
-- :path is the supervisor's unit path (the city).
\set ON_ERROR_STOP on
\set start '''2026-11-01 00:00+08'''
\set finish '''2026-12-01 00:00+08'''
\set scope 't.unit_id IN (SELECT id FROM grid_units WHERE path LIKE ' :'path' ' || ''%'')'

SELECT d.department_id, count(*), count(d.acknowledged_at),
       sum(CASE WHEN d.acknowledged_at <= d.ack_due_at THEN 1 ELSE 0 END),
       sum(CASE WHEN d.status = 'returned' THEN 1 ELSE 0 END)
FROM dispatches d JOIN tickets t ON t.id = d.ticket_id
WHERE d.created_at >= :start AND d.created_at < :finish AND :scope GROUP BY d.department_id;

SELECT p.department_id, count(*), count(t.resolved_at),
       sum(CASE WHEN t.resolved_at <= t.resolve_due_at THEN 1 ELSE 0 END)
FROM tickets t LEFT JOIN dispatches p ON p.ticket_id = t.id AND p.role = 'primary' AND p.status IN ('pending', 'acknowledged', 'resolved')
WHERE t.resolve_due_at >= :start AND t.resolve_due_at < :finish AND t.status <> 'cancelled' AND :scope GROUP BY p.department_id;

SELECT p.department_id, count(*), sum(CASE WHEN r.score >= 3 THEN 1 ELSE 0 END), sum(CASE WHEN r.score <= 2 THEN 1 ELSE 0 END)
FROM ratings r JOIN tickets t ON t.id = r.ticket_id
LEFT JOIN dispatches p ON p.ticket_id = t.id AND p.role = 'primary' AND p.status IN ('pending', 'acknowledged', 'resolved')
WHERE r.created_at >= :start AND r.created_at < :finish AND :scope GROUP BY p.department_id;

SELECT COALESCE(cd.department_id, p.department_id), count(*)
FROM sla_clocks c JOIN tickets t ON t.id = c.ticket_id LEFT JOIN dispatches cd ON cd.id = c.dispatch_id
LEFT JOIN dispatches p ON p.ticket_id = t.id AND p.role = 'primary' AND p.status IN ('pending', 'acknowledged', 'resolved')
WHERE c.breached_at >= :start AND c.breached_at < :finish AND :scope GROUP BY 1;

SELECT o.department_id, count(*) FROM supervision_orders o JOIN tickets t ON t.id = o.ticket_id
WHERE o.created_at >= :start AND o.created_at < :finish AND :scope GROUP BY o.department_id;

SELECT COALESCE(cd.department_id, p.department_id), count(DISTINCT t.id)
FROM sla_clocks c JOIN tickets t ON t.id = c.ticket_id LEFT JOIN dispatches cd ON cd.id = c.dispatch_id
LEFT JOIN dispatches p ON p.ticket_id = t.id AND p.role = 'primary' AND p.status IN ('pending', 'acknowledged', 'resolved')
WHERE c.stopped_at IS NULL AND c.due_at <= now() AND :scope GROUP BY 1;

SELECT count(DISTINCT t.id) FROM sla_clocks c JOIN tickets t ON t.id = c.ticket_id
WHERE c.stopped_at IS NULL AND c.due_at <= now() AND :scope;

SELECT d.department_id, percentile_disc(0.5) WITHIN GROUP (ORDER BY d.ack_working_seconds),
       percentile_disc(0.9) WITHIN GROUP (ORDER BY d.ack_working_seconds)
FROM dispatches d JOIN tickets t ON t.id = d.ticket_id
WHERE d.created_at >= :start AND d.created_at < :finish AND d.ack_working_seconds IS NOT NULL AND :scope GROUP BY d.department_id;

SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY d.ack_working_seconds), percentile_disc(0.9) WITHIN GROUP (ORDER BY d.ack_working_seconds)
FROM dispatches d JOIN tickets t ON t.id = d.ticket_id
WHERE d.created_at >= :start AND d.created_at < :finish AND d.ack_working_seconds IS NOT NULL AND :scope;

SELECT p.department_id, percentile_disc(0.5) WITHIN GROUP (ORDER BY t.resolve_working_seconds),
       percentile_disc(0.9) WITHIN GROUP (ORDER BY t.resolve_working_seconds)
FROM tickets t LEFT JOIN dispatches p ON p.ticket_id = t.id AND p.role = 'primary' AND p.status IN ('pending', 'acknowledged', 'resolved')
WHERE t.resolved_at >= :start AND t.resolved_at < :finish AND t.resolve_working_seconds IS NOT NULL AND :scope GROUP BY p.department_id;

SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY t.resolve_working_seconds), percentile_disc(0.9) WITHIN GROUP (ORDER BY t.resolve_working_seconds)
FROM tickets t WHERE t.resolved_at >= :start AND t.resolved_at < :finish AND t.resolve_working_seconds IS NOT NULL AND :scope;
