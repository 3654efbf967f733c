use reqwest::StatusCode;
use serde_json::json;

use crate::servers;

#[tokio::test]
async fn an_auditor_reads_audit_logs_but_cannot_manage_users() {
    for server in servers().await {
        let admin = server.admin().await;
        let auditor = admin
            .user_with_roles(&server, "audrey@example.com", &["auditor"])
            .await;
        let (status, me) = auditor.get("/auth/me").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            me["permissions"],
            json!([
                "audit_logs.view",
                "audit_logs.export",
                "session_recordings.view"
            ])
        );
        let (status, body) = auditor.get("/users").await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(body["error"]["code"], "forbidden");
        let (status, _) = auditor
            .post("/users", json!({"email": "x@example.com", "roles": []}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        server.stop().await;
    }
}

#[tokio::test]
async fn invalid_user_input_names_every_field_at_fault() {
    for server in servers().await {
        let admin = server.admin().await;
        let (status, body) = admin
            .post(
                "/users",
                json!({"email": "not-an-email", "password": "short", "roles": []}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        let fields = &body["error"]["details"]["fields"];
        assert!(
            fields["email"].is_string() && fields["password"].is_string(),
            "{body}"
        );
        let (status, body) = admin
            .post(
                "/users",
                json!({"email": "a@example.com", "roles": ["root"]}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["error"]["details"]["fields"]["roles"].is_string(),
            "{body}"
        );
        let (status, body) = admin
            .post(
                "/users",
                json!({"email": "a@example.com", "colour": "blue"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["error"]["details"]["fields"]["colour"].is_string(),
            "{body}"
        );
        let (status, body) = admin.post("/users", json!({"email": 42})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["error"]["details"]["fields"]["email"].is_string(),
            "{body}"
        );
        let response = admin
            .request(reqwest::Method::POST, "/users")
            .header("content-type", "application/json")
            .body("{\"email\": ")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let (_, users) = admin.get("/users").await;
        assert_eq!(
            users["items"].as_array().unwrap().len(),
            1,
            "nothing was half-written"
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn administrators_cannot_lock_themselves_out() {
    for server in servers().await {
        let admin = server.admin().await;
        let (_, me) = admin.get("/auth/me").await;
        let me = format!("/users/{}", me["user_id"].as_str().unwrap());
        let (status, body) = admin.patch(&me, json!({"roles": ["viewer"]})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["error"]["details"]["fields"]["roles"].is_string(),
            "{body}"
        );
        let (status, body) = admin.patch(&me, json!({"active": false})).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            body["error"]["details"]["fields"]["active"].is_string(),
            "{body}"
        );
        assert_eq!(admin.delete(&me).await.0, StatusCode::CONFLICT);
        let (status, body) = admin
            .patch(&me, json!({"roles": ["admin", "viewer"]}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(admin.get("/users").await.0, StatusCode::OK);
        server.stop().await;
    }
}

#[tokio::test]
async fn duplicate_emails_and_names_are_conflicts() {
    for server in servers().await {
        let admin = server.admin().await;
        let body = json!({"email": "dup@example.com", "roles": ["viewer"]});
        assert_eq!(
            admin.post("/users", body.clone()).await.0,
            StatusCode::CREATED
        );
        let (status, error) = admin.post("/users", body).await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(error["error"]["code"], "conflict");
        assert_eq!(
            admin.post("/organizations", json!({"name": "ops"})).await.0,
            StatusCode::CREATED
        );
        assert_eq!(
            admin.post("/organizations", json!({"name": "ops"})).await.0,
            StatusCode::CONFLICT
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn another_accounts_objects_are_404_for_every_verb() {
    for server in servers().await {
        let admin = server.admin().await;
        let (_, orgs) = admin.get("/organizations").await;
        let org = orgs[0]["id"].as_str().unwrap().to_owned();
        let (_, host) = admin
            .post(
                "/hosts",
                json!({"organization_id": org, "hostname": "web-1"}),
            )
            .await;
        let host = host["id"].as_str().unwrap().to_owned();
        spog_server::bootstrap::create_account(
            &server.state.store,
            "globex",
            &spog_core::validate::Email::parse("e", "root@globex.example").unwrap(),
            "globex admin password",
            spog_core::audit::Source::Cli,
        )
        .await
        .unwrap();
        let globex = server
            .login("root@globex.example", "globex admin password")
            .await;
        assert_eq!(
            globex.get(&format!("/hosts/{host}")).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            globex
                .patch(&format!("/hosts/{host}"), json!({"name": "x"}))
                .await
                .0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            globex.delete(&format!("/hosts/{host}")).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            globex.get(&format!("/organizations/{org}")).await.0,
            StatusCode::NOT_FOUND
        );
        let (status, body) = globex
            .post(
                "/hosts",
                json!({"organization_id": org, "hostname": "sneaky"}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (_, hosts) = globex.get("/hosts").await;
        assert_eq!(hosts["items"], json!([]));
        server.stop().await;
    }
}

#[tokio::test]
async fn users_see_only_hosts_they_were_granted() {
    for server in servers().await {
        let admin = server.admin().await;
        let (_, orgs) = admin.get("/organizations").await;
        let org = orgs[0]["id"].as_str().unwrap();
        let (_, web) = admin
            .post(
                "/hosts",
                json!({"organization_id": org, "hostname": "web-1"}),
            )
            .await;
        let (_, db) = admin
            .post(
                "/hosts",
                json!({"organization_id": org, "hostname": "db-1"}),
            )
            .await;
        let viewer = admin
            .user_with_roles(&server, "val@example.com", &["viewer"])
            .await;
        let (_, me) = viewer.get("/auth/me").await;
        let user = me["user_id"].as_str().unwrap();
        let web_id = web["id"].as_str().unwrap();
        let grant = admin
            .post(&format!("/hosts/{web_id}/access/{user}"), json!({}))
            .await;
        assert_eq!(grant.0, StatusCode::NO_CONTENT, "{}", grant.1);
        let (_, hosts) = viewer.get("/hosts").await;
        let names: Vec<_> = hosts["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["hostname"].clone())
            .collect();
        assert_eq!(names, [json!("web-1")]);
        let db_id = db["id"].as_str().unwrap();
        assert_eq!(
            viewer.get(&format!("/hosts/{db_id}")).await.0,
            StatusCode::NOT_FOUND
        );
        admin
            .delete(&format!("/hosts/{web_id}/access/{user}"))
            .await;
        assert_eq!(
            viewer.get(&format!("/hosts/{web_id}")).await.0,
            StatusCode::NOT_FOUND
        );
        server.stop().await;
    }
}
