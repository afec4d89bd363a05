//! `GET /v1/models`.

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_are_listed_in_openai_shape() {
    let app = spawn_app(config(
        "[providers.demo]\nkind = \"mock\"\n[models.alpha]\nprovider = \"demo\"\n[models.\"beta/2\"]\nprovider = \"demo\"\n",
    ))
    .await;
    let list = app
        .openai()
        .models()
        .list()
        .await
        .expect("the client reads the list");
    assert_eq!(list.object, "list");
    let ids: Vec<&str> = list.data.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["alpha", "beta/2"]);
    assert!(list
        .data
        .iter()
        .all(|m| m.owned_by == "demo" && m.object == "model"));
    let one = app
        .openai()
        .models()
        .retrieve("beta/2")
        .await
        .expect("retrieve works");
    assert_eq!(one.id, "beta/2");
    let missing = app.get("/v1/models/gamma").send().await.unwrap();
    assert_eq!(missing.status(), 404);
}
