//! Bad input: every malformed request gets a clear 4xx JSON error, never a
//! 500, never a panic, and nothing is half-written.

use crate::common::{Answer, Api, PASSWORD};

async fn raw(
    api: &Api,
    method: reqwest::Method,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> Answer {
    let mut request = api.http.request(method, api.url(path)).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    Answer::from(request.send().await.unwrap()).await
}

/// Path, content type, body, expected status and code.
type Case = (
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    u16,
    &'static str,
);

const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

#[tokio::test]
async fn malformed_bodies_wrong_types_and_sizes_are_clear_4xx() {
    let api = Api::start().await;
    let post = reqwest::Method::POST;
    let cases: Vec<Case> = vec![
        // Wrong or missing content types: OAuth's 400 at /oauth/*, 415 elsewhere.
        (
            "/oauth/token",
            Some(JSON),
            br#"{"grant_type":"client_credentials"}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/oauth/token",
            None,
            b"grant_type=client_credentials".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/oauth/introspect",
            Some("text/plain"),
            b"token=x".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/v1/auth/login",
            Some(FORM),
            b"email=a&password=b".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "/v1/auth/login",
            None,
            br#"{"email":"a","password":"b"}"#.to_vec(),
            415,
            "unsupported_media_type",
        ),
        // Malformed JSON and forms.
        (
            "/v1/auth/login",
            Some(JSON),
            b"{".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/v1/auth/login",
            Some(JSON),
            b"".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/v1/auth/login",
            Some(JSON),
            b"[1,2]".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/v1/auth/login",
            Some(JSON),
            br#"{"email":"a@b.c"}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/v1/auth/login",
            Some(JSON),
            br#"{"email":1,"password":2}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/v1/auth/register",
            Some(JSON),
            b"{\"email\":\"\xff@x.y\",\"password\":\"xxxxxxxxxx\"}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/v1/auth/register",
            Some(JSON),
            br#"{"email":"\ud800@x.y","password":"xxxxxxxxxx"}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/v1/auth/refresh",
            Some(JSON),
            br#"{"refresh_token":null}"#.to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/oauth/token",
            Some(FORM),
            b"grant_type=%zz".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/oauth/token",
            Some(FORM),
            b"grant_type=%ff%fe".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/oauth/token",
            Some(FORM),
            b"grant_type=\xff".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/oauth/token",
            Some(FORM),
            b"grant_type=a&grant_type=b".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "/oauth/token",
            Some(FORM),
            b"&&&".to_vec(),
            400,
            "invalid_request",
        ),
        // Oversized bodies.
        (
            "/oauth/token",
            Some(FORM),
            vec![b'a'; 70 * 1024],
            413,
            "payload_too_large",
        ),
        (
            "/v1/auth/login",
            Some(JSON),
            [
                b"{\"email\":\"".to_vec(),
                vec![b'a'; 70 * 1024],
                b"\"}".to_vec(),
            ]
            .concat(),
            413,
            "payload_too_large",
        ),
    ];
    for (path, content_type, body, status, code) in cases {
        let preview = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
        let answer = raw(&api, post.clone(), path, content_type, body).await;
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{path} {content_type:?} {preview}: {}",
            answer.text
        );
        assert_eq!(
            answer.body["error"], code,
            "{path} {preview}: {}",
            answer.text
        );
        assert!(answer.body["error_description"].is_string());
        assert!(!answer.header("x-request-id").is_empty());
    }
    // Nothing was half-written: no user exists but the admin.
    assert_eq!(
        api.server.store().list_users(None, 10).await.unwrap().len(),
        1
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_are_json_404_and_405() {
    let api = Api::start().await;
    let missing = api.get("/v2/nothing", None).await;
    missing.expect(404, Some("not_found"));
    let wrong = raw(&api, reqwest::Method::GET, "/oauth/token", None, Vec::new()).await;
    wrong.expect(405, Some("method_not_allowed"));
    let wrong = raw(
        &api,
        reqwest::Method::DELETE,
        "/v1/auth/me",
        None,
        Vec::new(),
    )
    .await;
    wrong.expect(405, Some("method_not_allowed"));
    let admin = api.admin_token().await;
    for path in [
        "/v1/admin/users/%ff",
        "/v1/admin/users/a%20b",
        "/v1/admin/clients/%00",
    ] {
        api.get(path, Some(&admin))
            .await
            .expect(404, Some("not_found"));
    }
}

#[tokio::test]
async fn bad_authorization_headers_are_refused_before_decoding() {
    let api = Api::start().await;
    let huge = "a".repeat(9 * 1024);
    for (value, code) in [
        (format!("Bearer {huge}"), "invalid_token"),
        ("Bearer ".to_owned(), "invalid_token"),
        ("Bearer a.b".to_owned(), "invalid_token"),
        ("Bearer a.b.c.d.e".to_owned(), "invalid_token"),
        ("Basic Zm9vOmJhcg==".to_owned(), "missing_token"),
        ("Token abc".to_owned(), "missing_token"),
    ] {
        let answer = Answer::from(
            api.http
                .get(api.url("/v1/auth/me"))
                .header("authorization", value.clone())
                .send()
                .await
                .unwrap(),
        )
        .await;
        answer.expect(401, Some(code));
    }
    let answer = Answer::from(
        api.http
            .get(api.url("/v1/auth/me"))
            .header(
                "authorization",
                reqwest::header::HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap(),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    answer.expect(401, Some("invalid_token"));
    // Broken Basic credentials at the token endpoint.
    for value in ["Basic !!!", "Basic Zm9v", "Basic "] {
        let answer = Answer::from(
            api.http
                .post(api.url("/oauth/token"))
                .header("authorization", value)
                .form(&[("grant_type", "client_credentials")])
                .send()
                .await
                .unwrap(),
        )
        .await;
        answer.expect(401, Some("invalid_client"));
    }
    // Very long passwords and e-mails are refused or fail cleanly.
    let long = "x".repeat(5000);
    api.post_json(
        "/v1/auth/login",
        None,
        &serde_json::json!({"email": "a@b.c", "password": long}),
    )
    .await
    .expect(401, Some("invalid_credentials"));
    api.post_json(
        "/v1/auth/register",
        None,
        &serde_json::json!({"email": format!("{long}@b.c"), "password": PASSWORD}),
    )
    .await
    .expect(400, Some("invalid_email"));
    api.post_json(
        "/v1/auth/register",
        None,
        &serde_json::json!({"email": "a@b.c", "password": long}),
    )
    .await
    .expect(400, Some("weak_password"));
}
