//! CRUD round trips of grid units, departments, categories and routing rules, and paging.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::each_backend;

fn square(w: f64, s: f64, e: f64, n: f64) -> Value {
    json!({"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]})
}

#[tokio::test]
async fn grid_unit_tree_round_trip() {
    each_backend(|app| async move {
        let admin = app.admin_token().await;
        let city = app
            .post("/api/v1/grid-units", &admin, json!({"code": "140100", "name": "太原市", "level": "city"}))
            .await;
        assert!(city.headers.get("location").is_some(), "201 carries Location");
        let city = city.expect(201);
        assert_eq!(city["level"], "city");
        assert_eq!(city["parent_id"], Value::Null);
        let city_id = city["id"].as_str().expect("id").to_owned();

        let county = app
            .post(
                "/api/v1/grid-units",
                &admin,
                json!({"code": "140105", "name": "小店区", "level": "county", "parent_id": city_id, "boundary": square(112.5, 37.7, 112.7, 37.9)}),
            )
            .await
            .expect(201);
        let county_id = county["id"].as_str().expect("id").to_owned();
        assert_eq!(county["boundary"]["type"], "Polygon");

        // The tree's shape is enforced: a grid cannot hang under a county.
        let skip = app
            .post("/api/v1/grid-units", &admin, json!({"code": "G1", "name": "网格", "level": "grid", "parent_id": county_id}))
            .await
            .problem(422);
        assert!(skip["errors"]["parent_id"].as_str().is_some_and(|m| m.contains("grid")), "{skip}");

        let fetched = app.get(&format!("/api/v1/grid-units/{county_id}"), &admin).await.expect(200);
        assert_eq!(fetched["name"], "小店区");
        assert_eq!(fetched["parent_id"], city_id.as_str());

        let renamed = app
            .patch(&format!("/api/v1/grid-units/{county_id}"), &admin, json!({"name": "小店区（新）", "boundary": null}))
            .await
            .expect(200);
        assert_eq!(renamed["name"], "小店区（新）");
        assert_eq!(renamed["boundary"], Value::Null);

        let children = app.get(&format!("/api/v1/grid-units/{city_id}/children"), &admin).await.expect(200);
        assert_eq!(children["items"].as_array().map(Vec::len), Some(1));
        let counties = app.get("/api/v1/grid-units?level=county", &admin).await.expect(200);
        assert_eq!(counties["items"][0]["code"], "140105");
        let subtree = app.get(&format!("/api/v1/grid-units?under={city_id}"), &admin).await.expect(200);
        assert_eq!(subtree["items"].as_array().map(Vec::len), Some(2));

        // A parent with children cannot go; the leaf can, then the parent.
        app.delete(&format!("/api/v1/grid-units/{city_id}"), &admin).await.problem(409);
        app.delete(&format!("/api/v1/grid-units/{county_id}"), &admin).await.expect(204);
        app.get(&format!("/api/v1/grid-units/{county_id}"), &admin).await.problem(404);
        app.delete(&format!("/api/v1/grid-units/{city_id}"), &admin).await.expect(204);
    })
    .await;
}

#[tokio::test]
async fn moving_a_unit_moves_its_subtree() {
    each_backend(|app| async move {
        app.seed_demo().await;
        let admin = app.demo_token("demo-admin").await;
        let community = app.id_by_code("grid-units", "140902001001", &admin).await;
        let other_street = app.id_by_code("grid-units", "140902002000", &admin).await;
        let old_street = app.id_by_code("grid-units", "140902001000", &admin).await;

        app.patch(&format!("/api/v1/grid-units/{community}"), &admin, json!({"parent_id": other_street}))
            .await
            .expect(200);
        // Its grids now count in the new street's subtree and no longer in the old one's.
        let under_new =
            app.get(&format!("/api/v1/grid-units?under={other_street}&level=grid"), &admin).await.expect(200);
        let codes: HashSet<&str> =
            under_new["items"].as_array().expect("items").iter().filter_map(|u| u["code"].as_str()).collect();
        assert!(codes.contains("140902001001-G01") && codes.contains("140902001001-G02"), "{codes:?}");
        let under_old = app.get(&format!("/api/v1/grid-units?under={old_street}&level=grid"), &admin).await.expect(200);
        assert_eq!(under_old["items"].as_array().map(Vec::len), Some(2), "only 建设社区's grids remain");

        // A unit cannot move into its own subtree.
        let grid = app.id_by_code("grid-units", "140902001001-G01", &admin).await;
        let street_under_grid =
            app.patch(&format!("/api/v1/grid-units/{other_street}"), &admin, json!({"parent_id": grid})).await;
        street_under_grid.problem(422);
    })
    .await;
}

#[tokio::test]
async fn departments_categories_and_rules_round_trip() {
    each_backend(|app| async move {
        app.seed_demo().await;
        let admin = app.demo_token("demo-admin").await;
        let county = app.id_by_code("grid-units", "140902", &admin).await;

        let department = app
            .post("/api/v1/departments", &admin, json!({"code": "XF-SWJ", "name": "忻府区水务局", "unit_id": county, "email": "swj@gridwhistle.example"}))
            .await
            .expect(201);
        assert_eq!(department["active"], true);
        let department_id = department["id"].as_str().expect("id").to_owned();
        app.post("/api/v1/departments", &admin, json!({"code": "XF-SWJ", "name": "重复", "unit_id": county, "email": "x@gridwhistle.example"}))
            .await
            .problem(409);
        let switched_off = app.patch(&format!("/api/v1/departments/{department_id}"), &admin, json!({"active": false})).await.expect(200);
        assert_eq!(switched_off["active"], false);
        let inactive = app.get("/api/v1/departments?active=false", &admin).await.expect(200);
        assert_eq!(inactive["items"][0]["code"], "XF-SWJ");

        let category = app.post("/api/v1/categories", &admin, json!({"code": "water", "name": "供水"})).await.expect(201);
        assert_eq!(category["default_priority"], "normal");
        assert_eq!(category["auto_dispatch"], false);
        let category_id = category["id"].as_str().expect("id").to_owned();
        let urgent = app
            .patch(&format!("/api/v1/categories/{category_id}"), &admin, json!({"default_priority": "urgent", "auto_dispatch": true}))
            .await
            .expect(200);
        assert_eq!(urgent["default_priority"], "urgent");

        let zjj = app.id_by_code("departments", "XF-ZJJ", &admin).await;
        let rule = app
            .post(
                "/api/v1/routing-rules",
                &admin,
                json!({"category_id": category_id, "unit_id": county, "primary_department_id": department_id, "co_handler_department_ids": [zjj, zjj]}),
            )
            .await
            .expect(201);
        assert_eq!(rule["co_handler_department_ids"], json!([zjj]), "duplicates collapse");
        let rule_id = rule["id"].as_str().expect("id").to_owned();
        // One rule per (category, unit).
        app.post("/api/v1/routing-rules", &admin, json!({"category_id": category_id, "unit_id": county, "primary_department_id": zjj}))
            .await
            .problem(409);
        let changed = app
            .patch(&format!("/api/v1/routing-rules/{rule_id}"), &admin, json!({"co_handler_department_ids": []}))
            .await
            .expect(200);
        assert_eq!(changed["co_handler_department_ids"], json!([]));
        let by_department = app.get(&format!("/api/v1/routing-rules?department={department_id}"), &admin).await.expect(200);
        assert_eq!(by_department["items"][0]["id"], rule_id.as_str());

        // Referenced rows cannot be deleted; once the rule is gone they can.
        app.delete(&format!("/api/v1/departments/{department_id}"), &admin).await.problem(409);
        app.delete(&format!("/api/v1/categories/{category_id}"), &admin).await.problem(409);
        app.delete(&format!("/api/v1/routing-rules/{rule_id}"), &admin).await.expect(204);
        app.delete(&format!("/api/v1/departments/{department_id}"), &admin).await.expect(204);
        app.delete(&format!("/api/v1/categories/{category_id}"), &admin).await.expect(204);
        app.get(&format!("/api/v1/categories/{category_id}"), &admin).await.problem(404);
    })
    .await;
}

#[tokio::test]
async fn cursor_pagination_visits_every_item_once() {
    each_backend(|app| async move {
        app.seed_demo().await;
        let admin = app.demo_token("demo-admin").await;
        let mut seen = Vec::new();
        let mut path = "/api/v1/grid-units?limit=7".to_owned();
        loop {
            let page = app.get(&path, &admin).await.expect(200);
            let items = page["items"].as_array().expect("items");
            assert!(items.len() <= 7);
            seen.extend(items.iter().map(|u| u["id"].as_str().expect("id").to_owned()));
            match page["next_cursor"].as_str() {
                Some(cursor) => path = format!("/api/v1/grid-units?limit=7&cursor={cursor}"),
                None => break,
            }
        }
        let unique: HashSet<&String> = seen.iter().collect();
        assert_eq!(seen.len(), 29, "the demo set has 29 units");
        assert_eq!(unique.len(), 29, "no unit twice");

        let default_page = app.get("/api/v1/categories", &admin).await.expect(200);
        assert_eq!(default_page["items"].as_array().map(Vec::len), Some(15));
        assert_eq!(default_page["next_cursor"], Value::Null);
        app.get("/api/v1/categories?limit=201", &admin).await.problem(422);
        app.get("/api/v1/categories?limit=0", &admin).await.problem(422);
        app.get("/api/v1/categories?cursor=abc", &admin).await.problem(422);
    })
    .await;
}
