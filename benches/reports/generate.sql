-- Loads :n tickets (default a million) with their dispatches, ratings, breached clocks and
-- supervision orders into a database that holds the demo reference data (gridwhistle
-- seed-demo). Distributions: filed evenly over September–November 2026; 70 % closed, 5 %
-- resolved, 15 % in progress, 7 % dispatched, 3 % cancelled; 90 % reported in within 0–4 h;
-- 5 % with a returned dispatch; 70 % rated (5: 50 %, 4: 25 %, 3: 12 %, 2: 8 %, 1: 5 %);
-- 10 % with a breached resolve clock, 3 % with a supervision order. PostgreSQL only.
\set ON_ERROR_STOP on

CREATE TEMP TABLE u AS
SELECT g.id,
       (SELECT a.id FROM grid_units a WHERE a.level = 'township' AND g.path LIKE a.path || '%') AS township_id,
       (SELECT a.id FROM grid_units a WHERE a.level = 'county' AND g.path LIKE a.path || '%') AS county_id,
       row_number() OVER (ORDER BY g.code) AS k
FROM grid_units g WHERE g.level IN ('grid', 'community', 'township');
CREATE TEMP TABLE c AS SELECT id, row_number() OVER (ORDER BY code) AS k FROM categories;
CREATE TEMP TABLE dep AS SELECT id, row_number() OVER (ORDER BY code) AS k FROM departments;

CREATE TEMP TABLE gen AS
SELECT n, gen_random_uuid() AS id,
       timestamptz '2026-09-01 00:00+08' + random() * interval '91 days' AS created_at,
       random() AS r1, random() AS r2, random() AS r3, random() AS r4,
       1 + floor(random() * (SELECT count(*) FROM u))::int AS uk,
       1 + floor(random() * (SELECT count(*) FROM c))::int AS ck,
       1 + floor(random() * (SELECT count(*) FROM dep))::int AS dk
FROM generate_series(1, :n) AS n;

INSERT INTO tickets (id, number, category_id, priority, title, description, unit_id, lat, lon, address,
    resident_name, resident_phone, channel, attachments, filed_by, status, version, return_count,
    needs_arbitration, created_at, updated_at, first_dispatched_at, first_contact_at, resolved_at,
    rating_due_at, closed_at, township_id, county_id, resolve_due_at, resolve_working_seconds)
SELECT g.id, 'BENCH-' || lpad(g.n::text, 7, '0'), c.id,
       CASE WHEN g.r4 < 0.1 THEN 'urgent' ELSE 'normal' END, '压测工单', '压测', u.id, NULL, NULL, NULL,
       NULL, NULL, 'grid_app', '[]'::json, (SELECT id FROM users WHERE username = 'demo-grid'),
       CASE WHEN g.r1 < 0.70 THEN 'closed' WHEN g.r1 < 0.75 THEN 'resolved' WHEN g.r1 < 0.90 THEN 'in_progress'
            WHEN g.r1 < 0.97 THEN 'dispatched' ELSE 'cancelled' END,
       1, CASE WHEN g.r4 > 0.95 THEN 1 ELSE 0 END, false, g.created_at, g.created_at,
       g.created_at + interval '10 minutes', g.created_at + interval '3 hours',
       CASE WHEN g.r1 < 0.75 THEN g.created_at + (1 + g.r2 * 9) * interval '1 day' END,
       NULL, CASE WHEN g.r1 < 0.70 THEN g.created_at + (2 + g.r2 * 9) * interval '1 day' END,
       u.township_id, u.county_id, g.created_at + interval '9 days',
       CASE WHEN g.r1 < 0.75 THEN (3600 + g.r2 * 60 * 3600)::bigint END
FROM gen g JOIN u ON u.k = g.uk JOIN c ON c.k = g.ck;

INSERT INTO dispatches (id, ticket_id, department_id, role, status, dispatched_by, created_at, acknowledged_at,
    returned_at, return_reason, return_refused, resolved_at, reply, updated_at, ack_due_at, ack_working_seconds)
SELECT gen_random_uuid(), g.id, dep.id, 'primary',
       CASE WHEN g.r1 < 0.75 THEN 'resolved' WHEN g.r1 < 0.90 THEN 'acknowledged' WHEN g.r1 < 0.97 THEN 'pending'
            ELSE 'cancelled' END,
       NULL, g.created_at + interval '10 minutes',
       CASE WHEN g.r1 < 0.90 THEN g.created_at + interval '10 minutes' + g.r3 * interval '4 hours' END,
       NULL, NULL, false, CASE WHEN g.r1 < 0.75 THEN g.created_at + (1 + g.r2 * 9) * interval '1 day' END, NULL,
       g.created_at, g.created_at + interval '130 minutes', CASE WHEN g.r1 < 0.90 THEN (g.r3 * 4 * 3600)::bigint END
FROM gen g JOIN dep ON dep.k = g.dk;

-- A returned dispatch before the current one for 5 % of tickets.
INSERT INTO dispatches (id, ticket_id, department_id, role, status, dispatched_by, created_at, acknowledged_at,
    returned_at, return_reason, return_refused, resolved_at, reply, updated_at, ack_due_at, ack_working_seconds)
SELECT gen_random_uuid(), g.id, dep.id, 'primary', 'returned', NULL, g.created_at + interval '5 minutes', NULL,
       g.created_at + interval '8 minutes', '不属于本部门', false, NULL, NULL, g.created_at,
       g.created_at + interval '125 minutes', NULL
FROM gen g JOIN dep ON dep.k = 1 + (g.dk % (SELECT count(*) FROM dep))::int WHERE g.r4 > 0.95;

INSERT INTO ratings (id, ticket_id, score, comment, rated_by, created_at)
SELECT gen_random_uuid(), g.id,
       CASE WHEN g.r4 < 0.5 THEN 5 WHEN g.r4 < 0.75 THEN 4 WHEN g.r4 < 0.87 THEN 3 WHEN g.r4 < 0.95 THEN 2 ELSE 1 END,
       NULL, (SELECT id FROM users WHERE username = 'demo-grid'), g.created_at + (2 + g.r2 * 9) * interval '1 day'
FROM gen g WHERE g.r1 < 0.70;

INSERT INTO sla_clocks (id, ticket_id, dispatch_id, clock, duration, started_at, warn_at, due_at, followup_at,
    next_check_at, warned_at, breached_at, followed_up_at, stopped_at, estimated)
SELECT gen_random_uuid(), g.id, NULL, 'resolve', '7d working', g.created_at, g.created_at + interval '7 days',
       g.created_at + interval '9 days', NULL, NULL, g.created_at + interval '7 days',
       g.created_at + interval '9 days 1 hour', NULL,
       CASE WHEN g.r1 < 0.75 OR g.r1 >= 0.97 THEN g.created_at + interval '10 days' END, false
FROM gen g WHERE g.r2 > 0.9;

INSERT INTO supervision_orders (id, ticket_id, department_id, level, instruction, due_at, status, issued_by, reply,
    replied_by, replied_at, created_at)
SELECT gen_random_uuid(), g.id, dep.id, 'supervise', '请加快办理', g.created_at + interval '12 days', 'open', NULL,
       NULL, NULL, NULL, g.created_at + interval '9 days 1 hour'
FROM gen g JOIN dep ON dep.k = g.dk WHERE g.r2 > 0.97;

ANALYZE;
