//! Defects found by review and probing (issue 9): what one department sees of another's work,
//! clocks that outlive their ticket, personal data that leaks through lists, replays and
//! derived copies, and text that spoofs what a reader sees.

use chrono::Duration;
use gridwhistle::workers::sweeper;
use serde_json::{Value, json};

use crate::helpers::{RESIDENT_PHONE, Reply, TestApp, cst, each_backend, ticket_body};

fn id(value: &Value) -> String {
    value["id"].as_str().expect("id").to_owned()
}

fn clocks<'a>(ticket: &'a Value, name: &str) -> Vec<&'a Value> {
    ticket["sla"].as_array().expect("sla").iter().filter(|c| c["clock"] == name).collect()
}

/// A ticket of 市容环境 led by 城管局 (XF-CGJ) with 住建局 (XF-ZJJ) summoned by 吹哨, and a
/// clerk of 住建局. Returns (ticket id, lead dispatch, co-handler dispatch, 住建局 clerk).
async fn co_handled(app: &TestApp, grid: &str, dispatcher: &str, admin: &str) -> (String, String, String, String) {
    let environment = app.category("environment", admin).await;
    let ticket = app.file(grid, &environment).await;
    let ticket_id = id(&ticket);
    let lead = app.dispatch_of(&ticket, "XF-CGJ", admin).await;
    let zjj = app.id_by_code("departments", "XF-ZJJ", admin).await;
    let whistled = app
        .post(
            &format!("/api/v1/tickets/{ticket_id}/whistle"),
            dispatcher,
            json!({"department_ids": [zjj], "reason": "需住建局协同"}),
        )
        .await
        .expect(200);
    let co = app.dispatch_of(&whistled, "XF-ZJJ", admin).await;
    let clerk = app.user_in(admin, "zjj-clerk", "department_staff", "XF-ZJJ").await;
    (ticket_id, lead, co, clerk)
}

/// A supervisor orders supervision (督办) of a ticket by hand.
async fn supervise(app: &TestApp, supervisor: &str, ticket_id: &str, instruction: &str, due_at: &str) -> Reply {
    let body = json!({"instruction": instruction, "due_at": due_at});
    app.post(&format!("/api/v1/tickets/{ticket_id}/supervise"), supervisor, body).await
}

#[tokio::test]
async fn a_department_sees_its_own_dispatches_and_only_the_outline_of_others() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let (ticket_id, lead, co, zjj) = co_handled(&app, &demo.grid, &demo.dispatcher, &demo.admin).await;
        app.post(&format!("/api/v1/dispatches/{lead}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        app.post(&format!("/api/v1/dispatches/{co}/return"), &zjj, json!({"reason": "住建局内部理由：不归我们管"}))
            .await
            .expect(200);
        app.post(&format!("/api/v1/dispatches/{lead}/resolve"), &demo.dept, json!({"reply": "城管局答复：已清理"}))
            .await
            .expect(200);

        // 城管局 sees its own dispatch in full and 住建局 only as a department with a status.
        let seen = app.ticket(&ticket_id, &demo.dept).await;
        let dispatches = seen["dispatches"].as_array().expect("dispatches");
        assert_eq!(dispatches.len(), 1, "only the own dispatch in full: {seen}");
        assert_eq!(dispatches[0]["id"], lead.as_str());
        assert_eq!(dispatches[0]["reply"], "城管局答复：已清理");
        let others = seen["other_departments"].as_array().expect("other_departments");
        assert_eq!(others.len(), 1, "{seen}");
        assert_eq!(others[0]["department_name"], "忻府区住房和城乡建设局");
        assert_eq!(others[0]["role"], "co_handler");
        assert_eq!(others[0]["status"], "returned");
        let text = seen.to_string();
        assert!(!text.contains("住建局内部理由"), "another department's return reason leaks: {text}");
        assert!(!text.contains(&co), "another department's dispatch id leaks: {text}");
        assert!(seen["sla"].as_array().expect("sla").iter().all(|c| c["dispatch_id"] != co.as_str()));

        // 住建局 does not read 城管局's reply, on the ticket or on the timeline.
        let seen = app.ticket(&ticket_id, &zjj).await.to_string();
        assert!(!seen.contains("城管局答复"), "{seen}");
        let timeline = app.get(&format!("/api/v1/tickets/{ticket_id}/events?limit=200"), &zjj).await.expect(200);
        let text = timeline.to_string();
        assert!(!text.contains("城管局答复"), "the timeline leaks another department's reply: {text}");
        assert!(!text.contains(&lead), "another department's dispatch id leaks: {text}");
        assert!(text.contains("住建局内部理由"), "its own return stays on its timeline");
        let kinds: Vec<&str> = timeline["items"]
            .as_array()
            .expect("present")
            .iter()
            .map(|e| e["kind"].as_str().expect("present"))
            .collect();
        assert!(kinds.contains(&"resolved"), "ticket-level facts stay: {kinds:?}");

        // The dispatcher in charge still sees everything.
        let full = app.ticket(&ticket_id, &demo.dispatcher).await;
        assert_eq!(full["dispatches"].as_array().expect("present").len(), 2);
        assert!(full.to_string().contains("住建局内部理由"));
        let events = app.get(&format!("/api/v1/tickets/{ticket_id}/events?limit=200"), &demo.dispatcher).await;
        assert!(events.expect(200).to_string().contains("城管局答复"));
    })
    .await;
}

#[tokio::test]
async fn resolving_meets_the_first_contact_clock() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 09:00"));
        let demo = app.demo().await;
        let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let ticket_id = id(&ticket);
        let lead = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;
        app.post(&format!("/api/v1/dispatches/{lead}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        app.clock.advance(Duration::hours(1));
        // Resolved straight away, with no separate progress note.
        let resolved =
            app.post(&format!("/api/v1/dispatches/{lead}/resolve"), &demo.dept, json!({"reply": "已处理"})).await;
        let resolved = resolved.expect(200);
        let first_contact = clocks(&resolved["ticket"], "first_contact");
        assert_eq!(first_contact[0]["state"], "met", "{resolved}");
        assert!(resolved["ticket"]["first_contact_at"].is_string());
        // A day later, inside the rating window, nothing is late and nothing escalates.
        app.clock.advance(Duration::hours(30));
        sweeper::run_once(&app.ctx).await.expect("sweeper runs");
        let dispatcher = app.demo_token("demo-dispatcher").await;
        let timeline = app.timeline(&ticket_id, &dispatcher).await;
        assert!(!timeline.iter().any(|k| k == "sla_breached" || k == "sla_warning"), "{timeline:?}");
        let overdue = app.get("/api/v1/tickets?overdue=true", &dispatcher).await.expect(200);
        assert_eq!(overdue["items"].as_array().expect("present").len(), 0, "{overdue}");
    })
    .await;
}

#[tokio::test]
async fn closing_a_ticket_ends_every_dispatch_and_clock_and_nothing_reopens() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 09:00"));
        let demo = app.demo().await;
        let (ticket_id, lead, co, zjj) = co_handled(&app, &demo.grid, &demo.dispatcher, &demo.admin).await;
        app.post(&format!("/api/v1/dispatches/{lead}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        app.post(&format!("/api/v1/dispatches/{lead}/resolve"), &demo.dept, json!({"reply": "已处理"}))
            .await
            .expect(200);
        // The co-handler never reported in; the resident is satisfied and the ticket closes.
        let closed =
            app.post(&format!("/api/v1/tickets/{ticket_id}/rating"), &demo.grid, json!({"score": 5})).await.expect(200);
        assert_eq!(closed["status"], "closed");
        let co_view =
            closed["dispatches"].as_array().expect("present").iter().find(|d| d["id"] == co.as_str()).cloned();
        assert_eq!(co_view.expect("co dispatch")["status"], "cancelled", "{closed}");
        for clock in closed["sla"].as_array().expect("present") {
            assert!(clock["stopped_at"].is_string(), "a clock still runs on a closed ticket: {clock}");
        }
        let never_acknowledged = closed["sla"]
            .as_array()
            .expect("present")
            .iter()
            .find(|c| c["dispatch_id"] == co.as_str())
            .cloned()
            .expect("the co-handler's acknowledge clock");
        assert_eq!(never_acknowledged["state"], "cancelled", "stopped by closure, goal not met");
        // The co-handler can no longer act on it.
        let late = app.post(&format!("/api/v1/dispatches/{co}/acknowledge"), &zjj, json!({})).await;
        assert_eq!(late.status.as_u16(), 409, "{}", late.body);

        // Much later nothing fires.
        app.clock.advance(Duration::days(30));
        sweeper::run_once(&app.ctx).await.expect("sweeper runs");
        let timeline = app.timeline(&ticket_id, &app.demo_token("demo-dispatcher").await).await;
        assert!(!timeline.iter().any(|k| k.starts_with("sla_") || k == "escalated"), "{timeline:?}");
    })
    .await;
}

#[tokio::test]
async fn a_refused_return_on_a_closed_ticket_revives_nothing() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 09:00"));
        let demo = app.demo().await;
        let (ticket_id, lead, co, zjj) = co_handled(&app, &demo.grid, &demo.dispatcher, &demo.admin).await;
        app.post(&format!("/api/v1/dispatches/{co}/return"), &zjj, json!({"reason": "不归我们管"})).await.expect(200);
        app.post(&format!("/api/v1/dispatches/{lead}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        app.post(&format!("/api/v1/dispatches/{lead}/resolve"), &demo.dept, json!({"reply": "已处理"}))
            .await
            .expect(200);
        app.post(&format!("/api/v1/tickets/{ticket_id}/rating"), &demo.grid, json!({"score": 4})).await.expect(200);
        let refused = app
            .post(
                &format!("/api/v1/dispatches/{co}/reject-return"),
                &demo.dispatcher,
                json!({"reason": "属于协同范围"}),
            )
            .await;
        assert_eq!(refused.status.as_u16(), 409, "{}", refused.body);
        let ticket = app.ticket(&ticket_id, &demo.dispatcher).await;
        assert!(ticket["sla"].as_array().expect("present").iter().all(|c| c["stopped_at"].is_string()), "{ticket}");

        // Cancelled tickets likewise.
        let again = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let again_id = id(&again);
        let zjj_id = app.id_by_code("departments", "XF-ZJJ", &demo.admin).await;
        let whistled = app
            .post(
                &format!("/api/v1/tickets/{again_id}/whistle"),
                &demo.dispatcher,
                json!({"department_ids": [zjj_id], "reason": "协同"}),
            )
            .await
            .expect(200);
        let co = app.dispatch_of(&whistled, "XF-ZJJ", &demo.admin).await;
        app.post(&format!("/api/v1/dispatches/{co}/return"), &zjj, json!({"reason": "不归我们管"})).await.expect(200);
        app.post(&format!("/api/v1/tickets/{again_id}/cancel"), &demo.dispatcher, json!({"reason": "重复工单"}))
            .await
            .expect(200);
        let refused = app
            .post(
                &format!("/api/v1/dispatches/{co}/reject-return"),
                &demo.dispatcher,
                json!({"reason": "属于协同范围"}),
            )
            .await;
        assert_eq!(refused.status.as_u16(), 409, "{}", refused.body);
    })
    .await;
}

#[tokio::test]
async fn a_refused_return_moves_the_acknowledge_deadline_it_is_judged_by() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 09:00"));
        let demo = app.demo().await;
        let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let lead = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;
        let first_due = ticket["dispatches"][0]["ack_due_at"].clone();
        assert_eq!(first_due, "2026-12-01T03:00:00Z", "{ticket}");
        app.clock.advance(Duration::hours(1));
        app.post(&format!("/api/v1/dispatches/{lead}/return"), &demo.dept, json!({"reason": "不归我们管"}))
            .await
            .expect(200);
        app.clock.set(cst("2026-12-01 15:00"));
        let refused = app
            .post(
                &format!("/api/v1/dispatches/{lead}/reject-return"),
                &demo.dispatcher,
                json!({"reason": "属于协同范围"}),
            )
            .await
            .expect(200);
        // Two working hours from 15:00 is 17:00 local.
        assert_eq!(refused["dispatch"]["ack_due_at"], "2026-12-01T09:00:00Z", "{refused}");
    })
    .await;
}

#[tokio::test]
async fn lists_mask_contacts_for_everyone_and_the_reveal_needs_a_reason() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let ticket_id = id(&ticket);
        for (who, token) in [("dispatcher", &demo.dispatcher), ("grid worker", &demo.grid)] {
            let listed = app.get("/api/v1/tickets?limit=200&view=full", token).await.expect(200);
            assert_eq!(listed["items"][0]["resident"]["phone"], "138****5678", "{who} sees the full shape");
            let summary = app.get("/api/v1/tickets?limit=200", token).await.expect(200);
            let text = format!("{listed}{summary}");
            assert!(!text.contains(RESIDENT_PHONE), "{who}'s list shows a phone");
            assert!(!text.contains("张三丰"), "{who}'s list shows a name");
            assert!(!text.contains("和平街12号"), "{who}'s list shows the home address");
            // The single read is masked too: unmasked data only through the audited reveal.
            let single = app.ticket(&ticket_id, token).await;
            assert_eq!(single["resident"], json!({"name": "张**", "phone": "138****5678"}), "{who}");
            assert_eq!(single["contact_masked"], true);
            assert_eq!(single["contact_revealable"], true, "{who} may reveal it");
        }
        let no_reason = app.get(&format!("/api/v1/tickets/{ticket_id}/contact"), &demo.dispatcher).await;
        let problem = no_reason.problem(422);
        assert!(problem["errors"]["reason"].is_string(), "{problem}");
        let revealed = app
            .get(&format!("/api/v1/tickets/{ticket_id}/contact?reason=回访核实"), &demo.dispatcher)
            .await
            .expect(200);
        assert_eq!(revealed["phone"], RESIDENT_PHONE);
        assert_eq!(revealed["address"], "和平街12号3号楼");
        let audit = app.get("/api/v1/audit?limit=200", &demo.admin).await.expect(200);
        let reveals: Vec<&Value> =
            audit["items"].as_array().expect("present").iter().filter(|e| e["action"] == "contact_revealed").collect();
        assert_eq!(reveals.len(), 1, "one reveal, one audit record: {audit}");
        assert_eq!(reveals[0]["detail"]["reason"], "回访核实");
    })
    .await;
}

#[tokio::test]
async fn erasure_leaves_nothing_to_recover_the_phone_from() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let environment = app.category("environment", &demo.admin).await;
        let body = ticket_body(&environment);
        let filed = app
            .client
            .post(app.url("/api/v1/tickets"))
            .bearer_auth(&demo.grid)
            .header("Idempotency-Key", "phone-oracle")
            .json(&body)
            .send()
            .await
            .expect("sent");
        assert_eq!(filed.status().as_u16(), 201);
        let ticket: Value = filed.json().await.expect("json");
        let ticket_id = id(&ticket);
        app.post(
            &format!("/api/v1/tickets/{ticket_id}/erase-personal-data"),
            &demo.admin,
            json!({"reason": "居民申请删除"}),
        )
        .await
        .expect(200);
        let erased = app.ticket(&ticket_id, &demo.dispatcher).await;
        assert_eq!(erased["resident"], Value::Null, "{erased}");
        assert_eq!(erased["address"], Value::Null, "the home address is personal data too");

        // Replaying the key with a guessed phone must not tell right from wrong.
        let mut answers = Vec::new();
        for phone in [RESIDENT_PHONE, "13900000000"] {
            let mut guess = body.clone();
            guess["resident"]["phone"] = json!(phone);
            let reply = app
                .client
                .post(app.url("/api/v1/tickets"))
                .bearer_auth(&demo.grid)
                .header("Idempotency-Key", "phone-oracle")
                .json(&guess)
                .send()
                .await
                .expect("sent");
            answers.push(reply.status().as_u16());
        }
        assert_eq!(answers[0], answers[1], "a replay is an oracle for the erased phone: {answers:?}");
        let fingerprint: Option<String> = {
            use sea_orm::{ConnectionTrait, Statement};
            let row = app
                .ctx
                .db
                .query_one_raw(Statement::from_string(
                    app.ctx.db.get_database_backend(),
                    "SELECT request_hash FROM idempotency_keys WHERE key = 'phone-oracle'".to_owned(),
                ))
                .await
                .expect("query");
            row.map(|r| r.try_get::<String>("", "request_hash").expect("hash"))
        };
        let original = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(serde_json::to_vec(&body).expect("json")))
        };
        assert_ne!(fingerprint.as_deref(), Some(original.as_str()), "the body's hash survives erasure");
    })
    .await;
}

#[tokio::test]
async fn text_cannot_spoof_what_a_reader_sees_and_responses_are_not_cached() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let mut body = ticket_body(&app.category("environment", &demo.admin).await);
        body["title"] = json!("楼道\u{202E}物杂放堆");
        body["description"] = json!("描述\u{2066}隐藏\u{2069}内容");
        let filed = app.post("/api/v1/tickets", &demo.grid, body.clone()).await.expect(201);
        assert_eq!(filed["title"], "楼道物杂放堆", "bidirectional overrides are stripped");
        assert_eq!(filed["description"], "描述隐藏内容");

        for bad in [
            "../../etc/passwd",
            "a/b.jpg",
            "c:\\x.jpg",
            "..",
            "photo\u{202e}gpj.exe",
            "a／b.jpg",
            "\u{200b}",
            "x\u{2028}y.jpg",
        ] {
            let mut body = body.clone();
            body["attachments"][0]["file_name"] = json!(bad);
            let problem = app.post("/api/v1/tickets", &demo.grid, body).await.problem(422);
            assert!(problem["errors"]["attachments[0].file_name"].is_string(), "{bad}: {problem}");
        }

        let reply = app
            .client
            .get(app.url(&format!("/api/v1/tickets/{}", id(&filed))))
            .bearer_auth(&demo.grid)
            .send()
            .await
            .expect("sent");
        assert_eq!(reply.headers()["cache-control"], "no-store");
        assert_eq!(reply.headers()["x-content-type-options"], "nosniff");
        let health = app.client.get(app.url("/healthz")).send().await.expect("sent");
        assert_eq!(health.headers()["x-content-type-options"], "nosniff");
    })
    .await;
}

#[tokio::test]
async fn moving_a_unit_moves_its_tickets_in_reports_and_visibility() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 09:00"));
        let demo = app.demo().await;
        let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let ticket_id = id(&ticket);
        // 和平社区 moves from 新建路街道 to 长征街街道 (140902002000).
        let community = app.id_by_code("grid-units", "140902001001", &demo.admin).await;
        let other_street = app.id_by_code("grid-units", "140902002000", &demo.admin).await;
        app.patch(&format!("/api/v1/grid-units/{community}"), &demo.admin, json!({"parent_id": other_street}))
            .await
            .expect(200);
        let dispatcher2 = app.user_in(&demo.admin, "dispatcher2", "dispatcher", "140902002000").await;
        app.ticket(&ticket_id, &dispatcher2).await;
        let missing = app.get(&format!("/api/v1/tickets/{ticket_id}"), &demo.dispatcher).await;
        assert_eq!(missing.status.as_u16(), 404);
        let report = app
            .get("/api/v1/reports/sla?group_by=township&from=2026-12-01&to=2026-12-31", &demo.supervisor)
            .await
            .expect(200);
        let rows = report["rows"].as_array().expect("rows");
        let street = rows.iter().find(|r| r["group_name"] == "长征街街道").cloned();
        let street = street.unwrap_or_else(|| panic!("长征街街道 has the moved ticket: {report}"));
        assert_eq!(street["dispatched"], 1, "{street}");
        let old = rows.iter().find(|r| r["group_name"] == "新建路街道").cloned();
        assert!(old.is_none_or(|r| r["dispatched"] == 0), "{report}");
    })
    .await;
}

#[tokio::test]
async fn a_department_that_returned_the_ticket_is_not_the_one_supervised() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 09:00"));
        let demo = app.demo().await;
        let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let ticket_id = id(&ticket);
        let lead = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;
        app.post(&format!("/api/v1/dispatches/{lead}/return"), &demo.dept, json!({"reason": "不归我们管"}))
            .await
            .expect(200);
        // Back with the dispatcher: no department is responsible, least of all the one that
        // returned it.
        let order =
            supervise(&app, &demo.supervisor, &ticket_id, "请尽快重新派单", "2026-12-03T09:00:00Z").await.expect(201);
        assert_eq!(order["department_id"], Value::Null, "{order}");
        let cgj_orders = app.get("/api/v1/supervision-orders", &demo.dept).await.expect(200);
        assert_eq!(cgj_orders["items"].as_array().map(Vec::len), Some(0), "{cgj_orders}");

        // Re-dispatched to 住建局: the next order names it.
        let zjj = app.id_by_code("departments", "XF-ZJJ", &demo.admin).await;
        app.post(
            &format!("/api/v1/tickets/{ticket_id}/dispatch"),
            &demo.dispatcher,
            json!({"primary_department_id": zjj}),
        )
        .await
        .expect(200);
        let order =
            supervise(&app, &demo.supervisor, &ticket_id, "请加快办理", "2026-12-03T09:00:00Z").await.expect(201);
        assert_eq!(order["department_id"], zjj.as_str());
    })
    .await;
}

#[tokio::test]
async fn a_nul_byte_is_never_a_server_error() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        for path in ["/api/v1/users?username=%00", "/api/v1/categories?code=%00", "/api/v1/audit?action=%00"] {
            // SQLite finds nothing (200), PostgreSQL refuses the text (400): never a 500.
            let reply = app.get(path, &demo.admin).await;
            assert!(!reply.status.is_server_error(), "{path}: {} {}", reply.status, reply.body);
        }
        let login = app.request(
            reqwest::Method::POST,
            "/api/v1/auth/token",
            None,
            Some(json!({"username": "demo-grid\u{0}", "password": "x"})),
        );
        let login = login.await;
        assert!(login.status.is_client_error(), "{} {}", login.status, login.body);
        let mut body = ticket_body(&app.category("environment", &demo.admin).await);
        body["address"] = json!("和平街\u{0}12号");
        let filed = app.post("/api/v1/tickets", &demo.grid, body).await;
        assert!(filed.status.is_client_error(), "{} {}", filed.status, filed.body);
    })
    .await;
}

#[tokio::test]
async fn nothing_acts_on_a_cancelled_ticket_through_extensions_or_supervision() {
    each_backend(|app| async move {
        app.clock.set(cst("2026-12-01 09:00"));
        let demo = app.demo().await;
        let ticket = app.file(&demo.grid, &app.category("environment", &demo.admin).await).await;
        let ticket_id = id(&ticket);
        let lead = app.dispatch_of(&ticket, "XF-CGJ", &demo.admin).await;
        app.post(&format!("/api/v1/dispatches/{lead}/acknowledge"), &demo.dept, json!({})).await.expect(200);
        let request = app
            .post(
                &format!("/api/v1/dispatches/{lead}/extension-requests"),
                &demo.dept,
                json!({"reason": "需协调物业", "duration": "1d working"}),
            )
            .await
            .expect(201);
        let order =
            supervise(&app, &demo.supervisor, &ticket_id, "请加快办理", "2026-12-03T09:00:00Z").await.expect(201);
        app.post(&format!("/api/v1/tickets/{ticket_id}/cancel"), &demo.dispatcher, json!({"reason": "重复工单"}))
            .await
            .expect(200);
        let approve = app
            .post(&format!("/api/v1/extension-requests/{}/approve", id(&request)), &demo.dispatcher, json!({}))
            .await;
        assert_eq!(approve.status.as_u16(), 409, "{}", approve.body);
        let reply = app
            .post(&format!("/api/v1/supervision-orders/{}/reply", id(&order)), &demo.dept, json!({"reply": "已办"}))
            .await;
        assert_eq!(reply.status.as_u16(), 409, "{}", reply.body);
        let far = supervise(&app, &demo.supervisor, &ticket_id, "x", "9999-12-31T23:59:59Z").await;
        assert_eq!(far.status.as_u16(), 422, "{}", far.body);
    })
    .await;
}

#[tokio::test]
/// Idempotent replays pass the read's visibility check, before the body is compared: a
/// dispatcher who moved to another street sees neither the ticket nor whether a guess matches.
async fn a_replay_by_someone_who_moved_away_tells_nothing_about_the_body() {
    each_backend(|app| async move {
        let demo = app.demo().await;
        let environment = app.category("environment", &demo.admin).await;
        let worker = app.user_in(&demo.admin, "mover", "dispatcher", "140902001000").await;
        let body = ticket_body(&environment);
        let send = |token: String, body: Value| {
            let app = &app;
            async move {
                app.client
                    .post(app.url("/api/v1/tickets"))
                    .bearer_auth(token)
                    .header("Idempotency-Key", "dm-1")
                    .json(&body)
                    .send()
                    .await
                    .expect("sent")
                    .status()
                    .as_u16()
            }
        };
        assert_eq!(send(worker.clone(), body.clone()).await, 201);
        let users = app.get("/api/v1/users?limit=200", &demo.admin).await.expect(200);
        let mover = users["items"].as_array().expect("items").iter().find(|u| u["username"] == "mover").cloned();
        let elsewhere = app.id_by_code("grid-units", "140902002000", &demo.admin).await;
        app.patch(&format!("/api/v1/users/{}", id(&mover.expect("mover"))), &demo.admin, json!({"unit_id": elsewhere}))
            .await
            .expect(200);
        let worker = app.token("mover", "a long test password").await;
        let mut guess = body.clone();
        guess["resident"]["phone"] = json!("13900000000");
        assert_eq!(send(worker.clone(), body).await, 404);
        assert_eq!(send(worker, guess).await, 404, "a different body must not answer differently");
    })
    .await;
}
