//! Locating a point to its grid, and routing resolution precedence.

use serde_json::{Value, json};

use crate::helpers::each_backend;

#[tokio::test]
async fn locate_finds_the_deepest_unit() {
    each_backend(|app| async move {
        app.seed_demo().await;
        let token = app.demo_token("demo-grid").await;
        let locate = |lat: f64, lon: f64| format!("/api/v1/grid-units/locate?lat={lat}&lon={lon}");

        let inside = app.get(&locate(38.41, 112.705), &token).await.expect(200);
        assert_eq!(inside["code"], "140902001001-G01");
        assert_eq!(inside["level"], "grid");
        let second_grid = app.get(&locate(38.41, 112.72), &token).await.expect(200);
        assert_eq!(second_grid["code"], "140902001001-G02");

        // On the street between two grids: the point belongs to a grid, deterministically the
        // first by code, never to the community above them.
        let edge = app.get(&locate(38.41, 112.7125), &token).await.expect(200);
        assert_eq!(edge["code"], "140902001001-G01");
        let corner = app.get(&locate(38.4, 112.7), &token).await.expect(200);
        assert_eq!(corner["level"], "grid");

        // Inside the county but in no street with a boundary: the county answers.
        let county = app.get(&locate(38.6, 112.4), &token).await.expect(200);
        assert_eq!(county["code"], "140902");

        let outside = app.get(&locate(30.0, 120.0), &token).await.problem(404);
        assert!(outside["detail"].as_str().is_some_and(|d| d.contains("outside")), "{outside}");
        let bad_lat = app.get(&locate(91.0, 112.7), &token).await.problem(422);
        assert!(bad_lat["errors"]["lat"].is_string());
        app.get("/api/v1/grid-units/locate?lat=abc&lon=1", &token).await.problem(422);
        app.get("/api/v1/grid-units/locate?lat=38.4", &token).await.problem(422);
    })
    .await;
}

#[tokio::test]
async fn a_rejected_boundary_changes_nothing() {
    each_backend(|app| async move {
        app.seed_demo().await;
        let admin = app.demo_token("demo-admin").await;
        let grid = app.id_by_code("grid-units", "140902001001-G01", &admin).await;
        let open_ring = json!({"type": "Polygon", "coordinates": [[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]]});
        let reply =
            app.patch(&format!("/api/v1/grid-units/{grid}"), &admin, json!({"boundary": open_ring})).await.problem(422);
        assert!(reply["errors"]["boundary"].as_str().is_some_and(|m| m.contains("closed")), "{reply}");
        let located = app.get("/api/v1/grid-units/locate?lat=38.41&lon=112.705", &admin).await.expect(200);
        assert_eq!(located["id"], grid.as_str(), "the old boundary still locates");
    })
    .await;
}

#[tokio::test]
async fn routing_takes_the_most_specific_rule() {
    each_backend(|app| async move {
        app.seed_demo().await;
        let admin = app.demo_token("demo-admin").await;
        let dispatcher = app.demo_token("demo-dispatcher").await;
        let resolve = |category: &str, unit: &str| format!("/api/v1/routing/resolve?category={category}&unit={unit}");

        // The street's mediation centre (a township-level rule) beats the county's 司法局.
        let in_street = app.get(&resolve("dispute", "140902001001-G01"), &dispatcher).await.expect(200);
        assert_eq!(
            in_street["primary_department_id"],
            app.id_by_code("departments", "XJL-ZZZX", &admin).await.as_str()
        );
        assert_eq!(
            in_street["co_handler_department_ids"],
            json!([app.id_by_code("departments", "XF-SFJ", &admin).await])
        );
        assert_eq!(in_street["candidates"].as_array().map(Vec::len), Some(2), "both rules match, deepest first");
        assert_eq!(
            in_street["dispatcher_unit_id"],
            app.id_by_code("grid-units", "140902001000", &admin).await.as_str()
        );
        // Another street of the same county falls back to the county rule.
        let elsewhere = app.get(&resolve("dispute", "140902002001-G01"), &dispatcher).await.expect(200);
        assert_eq!(elsewhere["primary_department_id"], app.id_by_code("departments", "XF-SFJ", &admin).await.as_str());

        // An all-categories rule on a deeper unit beats an exact one higher up; on the same
        // unit the exact category wins.
        let street = app.id_by_code("grid-units", "140902002000", &admin).await;
        let cgj = app.id_by_code("departments", "XF-CGJ", &admin).await;
        let wildcard = json!({"category_id": null, "unit_id": street, "primary_department_id": cgj});
        app.post("/api/v1/routing-rules", &admin, wildcard).await.expect(201);
        let deeper_wildcard = app.get(&resolve("dispute", "140902002001-G01"), &dispatcher).await.expect(200);
        assert_eq!(deeper_wildcard["primary_department_id"], cgj.as_str());
        let category = app.id_by_code("categories", "dispute", &admin).await;
        let sfj = app.id_by_code("departments", "XF-SFJ", &admin).await;
        let exact = json!({"category_id": category, "unit_id": street, "primary_department_id": sfj});
        app.post("/api/v1/routing-rules", &admin, exact).await.expect(201);
        let exact_wins = app.get(&resolve("dispute", "140902002001-G01"), &dispatcher).await.expect(200);
        assert_eq!(exact_wins["primary_department_id"], sfj.as_str());
        assert_eq!(exact_wins["candidates"].as_array().map(Vec::len), Some(3));

        // A switched-off primary department falls through to the next rule.
        app.patch(&format!("/api/v1/departments/{sfj}"), &admin, json!({"active": false})).await.expect(200);
        let fallthrough = app.get(&resolve("dispute", "140902002001-G01"), &dispatcher).await.expect(200);
        assert_eq!(fallthrough["primary_department_id"], cgj.as_str());

        // No rule at all: the ticket stays with the township dispatcher.
        let unrouted = app.get(&resolve("other", "140902001001-G01"), &dispatcher).await.expect(200);
        assert_eq!(unrouted["primary_department_id"], Value::Null);
        assert_eq!(unrouted["rule_id"], Value::Null);
        assert!(unrouted["dispatcher_unit_id"].is_string());

        // By id works like by code; unknown ones name the parameter.
        let by_id = app.get(&resolve(&category, &street), &dispatcher).await.expect(200);
        assert_eq!(by_id["unit_id"], street.as_str());
        let unknown = app.get(&resolve("no-such-category", "140902"), &dispatcher).await.problem(422);
        assert!(unknown["errors"]["category"].is_string());
    })
    .await;
}
