//! The web console (`/console/`, `/account/`) over HTTP: sign-in through
//! the password login, the session cookies, CSRF, re-authentication, the
//! security headers, and every route's refusals (missing or wrong CSRF
//! token, wrong method, unknown ids, oversized and malformed forms).

use reqwest::StatusCode;
use reqwest::redirect::Policy;

use crate::common::{Api, PASSWORD};

/// A browser-like client: keeps the console cookies by hand (they are
/// `Secure`, which a cookie jar would not send over plain HTTP).
struct Browser<'a> {
    api: &'a Api,
    http: reqwest::Client,
    cookies: Vec<(String, String)>,
}

struct Page {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Page {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }

    /// The CSRF token in the page's forms.
    fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let at = self.text.find(marker).expect("a form with a CSRF token") + marker.len();
        self.text[at..at + 64].to_owned()
    }

    #[track_caller]
    fn expect(&self, status: u16) -> &Page {
        assert_eq!(self.status.as_u16(), status, "page: {}", self.text);
        self
    }
}

impl<'a> Browser<'a> {
    fn new(api: &'a Api) -> Browser<'a> {
        Browser {
            api,
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    async fn answer(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = if self.cookies.is_empty() {
            request
        } else {
            request.header("cookie", self.cookie_header())
        };
        let response = request.send().await.unwrap();
        for value in response.headers().get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            self.cookies.retain(|(k, _)| k != name);
            if !value.is_empty() {
                self.cookies.push((name.to_owned(), value.to_owned()));
            }
        }
        Page {
            status: response.status(),
            headers: response.headers().clone(),
            text: response.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let request = self.http.get(self.api.url(path));
        self.answer(request).await
    }

    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        let request = self.http.post(self.api.url(path)).form(form);
        self.answer(request).await
    }

    /// Posts `form` with the CSRF token of the page at `from`.
    async fn submit(&mut self, from: &str, path: &str, form: &[(&str, &str)]) -> Page {
        let csrf = self.get(from).await.expect(200).csrf();
        let mut fields = vec![("csrf", csrf.as_str())];
        fields.extend_from_slice(form);
        self.post(path, &fields).await
    }

    async fn sign_in(&mut self, email: &str, password: &str) -> Page {
        self.post(
            "/account/login",
            &[("email", email), ("password", password)],
        )
        .await
    }

    async fn admin(api: &'a Api) -> Browser<'a> {
        let mut browser = Browser::new(api);
        let page = browser
            .sign_in(api.server.admin_email(), api.server.admin_password())
            .await;
        page.expect(303);
        assert_eq!(page.header("location"), "/console/");
        browser
    }
}

#[track_caller]
fn assert_security_headers(page: &Page) {
    let csp = page.header("content-security-policy");
    assert!(csp.contains("default-src 'self'"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.header("x-frame-options"), "DENY");
    assert_eq!(page.header("referrer-policy"), "same-origin");
    assert_eq!(page.header("cache-control"), "no-store");
}

#[tokio::test]
async fn every_console_answer_carries_the_security_headers() {
    let api = Api::start().await;
    let mut browser = Browser::new(&api);
    let login = browser.get("/account/login").await;
    login.expect(200);
    assert!(login.header("content-type").starts_with("text/html"));
    assert_security_headers(&login);
    assert!(!login.text.contains("<script"));
    assert!(!login.text.contains("style="));
    assert_security_headers(browser.get("/console/nothing-here").await.expect(404));
    assert_security_headers(browser.get("/console/").await.expect(303));
    let css = browser.get("/console/static/console.css").await;
    css.expect(200);
    assert!(css.header("content-type").starts_with("text/css"));
    let mut admin = Browser::admin(&api).await;
    for path in [
        "/console/",
        "/console/clients",
        "/console/keys",
        "/console/revocations",
        "/console/config",
        "/console/usage",
        "/account/",
    ] {
        let page = admin.get(path).await;
        page.expect(200);
        assert_security_headers(&page);
        assert!(!page.text.contains("<script"), "{path}");
        assert!(!page.text.contains("style="), "{path}");
    }
    // The API's answers are untouched.
    let healthz = api.get("/healthz", None).await;
    assert_eq!(healthz.header("content-security-policy"), "");
}

#[tokio::test]
async fn signing_in_sets_session_cookies_and_wrong_passwords_are_refused() {
    let api = Api::start().await;
    let mut browser = Browser::new(&api);
    let wrong = browser
        .sign_in(api.server.admin_email(), "not the password at all")
        .await;
    wrong.expect(401);
    assert!(wrong.text.contains("The e-mail or password is wrong"));
    assert!(wrong.headers.get("set-cookie").is_none());
    let page = browser
        .sign_in(api.server.admin_email(), api.server.admin_password())
        .await;
    page.expect(303);
    let cookies: Vec<&str> = page
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
    for cookie in cookies {
        assert!(cookie.contains("; HttpOnly"), "{cookie}");
        assert!(cookie.contains("; SameSite=Strict"), "{cookie}");
        assert!(cookie.contains("; Path=/"), "{cookie}");
        // The test environment is not development: Secure even on loopback.
        assert!(cookie.contains("; Secure"), "{cookie}");
    }
    browser.get("/console/").await.expect(200);
}

#[tokio::test]
async fn a_login_post_from_another_origin_is_refused() {
    let api = Api::start().await;
    let browser = Browser::new(&api);
    let response = browser
        .http
        .post(api.url("/account/login"))
        .header("origin", "https://evil.example")
        .form(&[
            ("email", api.server.admin_email()),
            ("password", api.server.admin_password()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn the_console_login_shares_the_apis_failure_limit() {
    let api = Api::start().await;
    let mut browser = Browser::new(&api);
    // The per-account-and-address limit (TOLLGATE_LOGIN_FAILURES_PER_ACCOUNT)
    // counts the console's failures with the API's.
    let limit = api.server.config().login_failures_per_account;
    for _ in 0..limit {
        api.post_json(
            "/v1/auth/login",
            None,
            &serde_json::json!({"email": api.server.admin_email(), "password": "wrong wrong wrong"}),
        )
        .await;
    }
    let page = browser
        .sign_in(api.server.admin_email(), api.server.admin_password())
        .await;
    page.expect(429);
    assert!(page.header("retry-after").parse::<u64>().unwrap() >= 1);
}

#[tokio::test]
async fn without_a_session_pages_lead_to_sign_in_and_forms_are_refused() {
    let api = Api::start().await;
    let mut browser = Browser::new(&api);
    let page = browser.get("/console/users").await;
    page.expect(303);
    assert_eq!(page.header("location"), "/account/login");
    browser.get("/account/").await.expect(303);
    browser
        .post("/console/users", &[("email", "a@example.com")])
        .await
        .expect(401);
    browser.post("/account/logout", &[]).await.expect(401);
    // A forged cookie is no session.
    browser.cookies = vec![("tollgate_console".into(), "eyJhbGciOiJub25lIn0.e30.".into())];
    browser.get("/console/").await.expect(303);
}

#[tokio::test]
async fn a_user_without_role_admin_gets_403_on_the_console_and_their_own_account_page() {
    let api = Api::start().await;
    api.user("plain@example.com").await;
    let mut browser = Browser::new(&api);
    let page = browser.sign_in("plain@example.com", PASSWORD).await;
    page.expect(303);
    assert_eq!(page.header("location"), "/account/");
    for path in [
        "/console/",
        "/console/users",
        "/console/keys",
        "/console/config",
    ] {
        let page = browser.get(path).await;
        page.expect(403);
        assert_security_headers(&page);
    }
    let account = browser.get("/account/").await;
    account.expect(200);
    assert!(account.text.contains("plain@example.com"));
    assert!(account.text.contains("free"));
    // Not even with a valid CSRF token.
    let csrf = account.csrf();
    browser
        .post(
            "/console/keys/rotate",
            &[("csrf", &csrf), ("password", PASSWORD)],
        )
        .await
        .expect(403);
}

#[tokio::test]
async fn forms_without_the_sessions_csrf_token_are_refused() {
    let api = Api::start().await;
    let mut admin = Browser::admin(&api).await;
    let form = [
        ("email", "new@example.com"),
        ("password", PASSWORD),
        ("plan", "pro"),
    ];
    admin.post("/console/users", &form).await.expect(403);
    let mut wrong = vec![("csrf", "0".repeat(64))];
    wrong.extend(form.iter().map(|(k, v)| (*k, (*v).to_owned())));
    let wrong: Vec<(&str, &str)> = wrong.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let refused = admin.post("/console/users", &wrong).await;
    refused.expect(403);
    assert_security_headers(&refused);
    // Another session's token is no good either.
    let mut other = Browser::admin(&api).await;
    let theirs = other.get("/console/").await.csrf();
    let mine = admin.get("/console/").await.csrf();
    assert_ne!(theirs, mine);
    let mut fields = vec![("csrf", theirs.as_str())];
    fields.extend_from_slice(&form);
    admin.post("/console/users", &fields).await.expect(403);
    assert!(
        api.server
            .store()
            .find_user_by_email("new@example.com")
            .await
            .unwrap()
            .is_none()
    );
    // With it, the user is created on the plan asked for.
    let created = admin.submit("/console/", "/console/users", &form).await;
    created.expect(303);
    let user = api
        .server
        .store()
        .find_user_by_email("new@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.plan, "pro");
    assert_eq!(
        created.header("location"),
        format!("/console/users/{}", user.id)
    );
}

#[tokio::test]
async fn wrong_methods_answer_405_pages() {
    let api = Api::start().await;
    let mut admin = Browser::admin(&api).await;
    let id = api
        .server
        .create_user("m@example.com", PASSWORD, &[], None)
        .await;
    for path in [
        format!("/console/users/{id}/revoke"),
        format!("/console/users/{id}/plan"),
        "/console/keys/rotate".to_owned(),
        "/account/logout".to_owned(),
        "/account/sessions/end-others".to_owned(),
    ] {
        let page = admin.get(&path).await;
        page.expect(405);
        assert_security_headers(&page);
        assert!(
            page.header("content-type").starts_with("text/html"),
            "{path}"
        );
    }
    let request = admin.http.delete(api.url("/console/users"));
    admin.answer(request).await.expect(405);
    let request = admin.http.put(api.url("/account/"));
    admin.answer(request).await.expect(405);
}

#[tokio::test]
async fn unknown_ids_answer_404_pages() {
    let api = Api::start().await;
    let mut admin = Browser::admin(&api).await;
    admin.get("/console/users/no-such-user").await.expect(404);
    admin.get("/console/users/%00%01").await.expect(404);
    let id = api
        .server
        .create_user("u@example.com", PASSWORD, &[], None)
        .await;
    for path in [
        "/console/users/no-such-user/revoke".to_owned(),
        "/console/users/no-such-user/disabled".to_owned(),
        format!("/console/users/{id}/sessions/no-such-session/end"),
        "/account/sessions/no-such-session/end".to_owned(),
    ] {
        admin
            .submit("/console/", &path, &[("disabled", "true")])
            .await
            .expect(404);
    }
    // Another user's session is none of this one's business: 404 on /account/.
    let theirs = api
        .login("u@example.com", PASSWORD)
        .await
        .str("access_token");
    let sid = api.get("/v1/auth/me", Some(&theirs)).await.str("sid");
    admin
        .submit("/account/", &format!("/account/sessions/{sid}/end"), &[])
        .await
        .expect(404);
    // …and a session of another user is not this user's on /console/ either.
    let admin_id = api
        .server
        .store()
        .find_user_by_email(api.server.admin_email())
        .await
        .unwrap()
        .unwrap()
        .id;
    admin
        .submit(
            "/console/",
            &format!("/console/users/{admin_id}/sessions/{sid}/end"),
            &[],
        )
        .await
        .expect(404);
    api.get("/v1/auth/me", Some(&theirs))
        .await
        .expect(200, None);
}

#[tokio::test]
async fn oversized_and_malformed_forms_answer_clear_pages() {
    let api = Api::start().await;
    let mut admin = Browser::admin(&api).await;
    let csrf = admin.get("/console/").await.csrf();
    let big = "x".repeat(20 * 1024);
    admin
        .post("/console/users", &[("csrf", &csrf), ("email", &big)])
        .await
        .expect(413);
    // Not a form.
    let request = admin
        .http
        .post(api.url("/console/users"))
        .header("content-type", "application/json")
        .body("{}");
    admin.answer(request).await.expect(400);
    // A name twice.
    let request = admin
        .http
        .post(api.url("/console/users"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={csrf}&email=a%40b.c&email=d%40e.f"));
    admin.answer(request).await.expect(400);
    // Bad values.
    let bad = admin
        .post(
            "/console/users",
            &[
                ("csrf", &csrf),
                ("email", "not an e-mail"),
                ("password", PASSWORD),
            ],
        )
        .await;
    bad.expect(400);
    assert!(
        bad.text.contains("e-mail address is not valid"),
        "{}",
        bad.text
    );
    admin
        .post(
            "/console/users",
            &[
                ("csrf", &csrf),
                ("email", "x@example.com"),
                ("password", PASSWORD),
                ("plan", "gold"),
            ],
        )
        .await
        .expect(400);
    admin
        .post(
            "/console/users",
            &[("csrf", &csrf), ("email", "x@example.com")],
        )
        .await
        .expect(400);
    let id = api
        .server
        .create_user("v@example.com", PASSWORD, &[], None)
        .await;
    admin
        .post(
            &format!("/console/users/{id}/disabled"),
            &[("csrf", &csrf), ("disabled", "maybe")],
        )
        .await
        .expect(400);
    admin
        .post(
            &format!("/console/users/{id}/roles"),
            &[("csrf", &csrf), ("roles", "no/such role!")],
        )
        .await
        .expect(400);
    admin.get("/console/users?email=nope").await.expect(400);
    admin.get("/console/users?after=%00").await.expect(400);
    admin
        .get("/console/users?email=a%40b.c&email=d%40e.f")
        .await
        .expect(400);
}

#[tokio::test]
async fn search_and_pages_of_users() {
    let api = Api::start().await;
    let mut admin = Browser::admin(&api).await;
    for i in 0..55 {
        api.server
            .store()
            .create_user(tollgate_store::UserRecord {
                id: format!("user-{i:03}"),
                email: format!("person{i}@example.com"),
                password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
                    .into(),
                plan: "free".into(),
                roles: vec![],
                disabled: false,
                created_at: 0,
            })
            .await
            .unwrap();
    }
    let found = admin
        .get("/console/users?email=Person7%40Example.com")
        .await;
    found.expect(200);
    assert!(found.text.contains("person7@example.com"));
    assert!(!found.text.contains("person8@example.com"));
    let first = admin.get("/console/users").await;
    first.expect(200);
    assert!(first.text.contains("Next page"));
    let next = first
        .text
        .split("after=")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let second = admin.get(&format!("/console/users?after={next}")).await;
    second.expect(200);
    assert!(!second.text.contains("Next page"));
    let rows = |text: &str| text.matches("href=\"/console/users/").count();
    // 55 users and the admin: a page of 50, then 6.
    assert_eq!(rows(&first.text), 50);
    assert_eq!(rows(&second.text), 6);
}

#[tokio::test]
async fn an_admin_ends_a_users_session_and_the_token_is_refused() {
    let api = Api::start().await;
    let mut admin = Browser::admin(&api).await;
    let created = admin
        .submit(
            "/console/",
            "/console/users",
            &[
                ("email", "pro@example.com"),
                ("password", PASSWORD),
                ("plan", "pro"),
            ],
        )
        .await;
    created.expect(303);
    let user_page = created.header("location").to_owned();
    let token = api
        .login("pro@example.com", PASSWORD)
        .await
        .str("access_token");
    let sid = api.get("/v1/auth/me", Some(&token)).await.str("sid");
    let page = admin.get(&user_page).await;
    page.expect(200);
    assert!(page.text.contains(&sid), "the session is listed");
    admin
        .submit(&user_page, &format!("{user_page}/sessions/{sid}/end"), &[])
        .await
        .expect(303);
    api.get("/v1/auth/me", Some(&token))
        .await
        .expect(401, Some("invalid_token"));
    // Plan, roles, disable and revoke go through the API's rules.
    admin
        .submit(
            &user_page,
            &format!("{user_page}/plan"),
            &[("plan", "enterprise")],
        )
        .await
        .expect(303);
    admin
        .submit(
            &user_page,
            &format!("{user_page}/roles"),
            &[("roles", "support billing")],
        )
        .await
        .expect(303);
    let user = api
        .server
        .store()
        .find_user_by_email("pro@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.plan, "enterprise");
    assert_eq!(user.roles, ["support", "billing"]);
    let token = api
        .login("pro@example.com", PASSWORD)
        .await
        .str("access_token");
    admin
        .submit(&user_page, &format!("{user_page}/revoke"), &[])
        .await
        .expect(303);
    api.get("/v1/auth/me", Some(&token))
        .await
        .expect(401, Some("invalid_token"));
    admin
        .submit(
            &user_page,
            &format!("{user_page}/disabled"),
            &[("disabled", "true")],
        )
        .await
        .expect(303);
    let mut plain = Browser::new(&api);
    plain.sign_in("pro@example.com", PASSWORD).await.expect(401);
    // The last admin cannot be disabled (the API's rule, 409).
    let admin_id = api
        .server
        .store()
        .find_user_by_email(api.server.admin_email())
        .await
        .unwrap()
        .unwrap()
        .id;
    admin
        .submit(
            "/console/",
            &format!("/console/users/{admin_id}/disabled"),
            &[("disabled", "true")],
        )
        .await
        .expect(409);
}

#[tokio::test]
async fn logout_and_revocation_end_the_console_session() {
    let api = Api::start().await;
    let mut admin = Browser::admin(&api).await;
    let page = admin.submit("/console/", "/account/logout", &[]).await;
    page.expect(303);
    assert_eq!(page.header("location"), "/account/login");
    assert!(admin.cookies.is_empty(), "the cookies are cleared");
    // The old cookies, kept by an attacker, are dead too.
    let mut again = Browser::admin(&api).await;
    let kept = again.cookies.clone();
    let admin_id = api
        .server
        .store()
        .find_user_by_email(api.server.admin_email())
        .await
        .unwrap()
        .unwrap()
        .id;
    let token = api.admin_token().await;
    api.post_empty(&format!("/v1/admin/users/{admin_id}/revoke"), Some(&token))
        .await
        .expect(204, None);
    again.cookies = kept;
    again.get("/console/").await.expect(303);
}

#[tokio::test]
async fn an_expired_access_cookie_is_renewed_with_the_refresh_cookie() {
    let api = Api::start().await;
    let mut admin = Browser::admin(&api).await;
    let before = admin.cookies.clone();
    api.server
        .clock()
        .advance(api.server.config().access_token_ttl + 10);
    let page = admin.get("/console/keys").await;
    page.expect(200);
    assert_eq!(page.headers.get_all("set-cookie").iter().count(), 2);
    assert_ne!(before, admin.cookies);
    admin.get("/console/").await.expect(200);
}

#[tokio::test]
async fn a_user_ends_another_of_their_sessions_on_the_account_page() {
    let api = Api::start().await;
    api.user("me@example.com").await;
    let other = api
        .login("me@example.com", PASSWORD)
        .await
        .str("access_token");
    let other_sid = api.get("/v1/auth/me", Some(&other)).await.str("sid");
    let mut browser = Browser::new(&api);
    browser
        .sign_in("me@example.com", PASSWORD)
        .await
        .expect(303);
    let page = browser.get("/account/").await;
    page.expect(200);
    assert!(page.text.contains(&other_sid[..8]));
    browser
        .submit(
            "/account/",
            &format!("/account/sessions/{other_sid}/end"),
            &[],
        )
        .await
        .expect(303);
    api.get("/v1/auth/me", Some(&other))
        .await
        .expect(401, Some("invalid_token"));
    browser.get("/account/").await.expect(200);
    // All others: the API login's session ends, this one stays.
    let third = api
        .login("me@example.com", PASSWORD)
        .await
        .str("access_token");
    browser
        .submit("/account/", "/account/sessions/end-others", &[])
        .await
        .expect(303);
    api.get("/v1/auth/me", Some(&third))
        .await
        .expect(401, Some("invalid_token"));
    browser.get("/account/").await.expect(200);
}

#[tokio::test]
async fn a_client_secret_is_shown_once_and_only_after_the_password_again() {
    let api = Api::start().await;
    let mut admin = Browser::admin(&api).await;
    let form = [("client_id", "billing"), ("scopes", "introspect usage")];
    let mut with = form.to_vec();
    with.push(("password", "not my password"));
    admin
        .submit("/console/clients", "/console/clients", &with)
        .await
        .expect(401);
    admin
        .submit("/console/clients", "/console/clients", &form)
        .await
        .expect(401);
    assert!(
        api.server
            .store()
            .find_client("billing")
            .await
            .unwrap()
            .is_none()
    );
    let mut with = form.to_vec();
    with.push(("password", api.server.admin_password()));
    let shown = admin
        .submit("/console/clients", "/console/clients", &with)
        .await;
    shown.expect(200);
    assert_eq!(shown.header("cache-control"), "no-store");
    let at = shown.text.find("tgs_").expect("the secret is shown");
    let secret = shown.text[at..].split('"').next().unwrap().to_owned();
    api.service_token("billing", &secret).await;
    let list = admin.get("/console/clients").await;
    list.expect(200);
    assert!(list.text.contains("billing"));
    assert!(!list.text.contains(&secret));
    assert!(!list.text.contains("tgs_"));
    // The same id again: the API's conflict.
    admin
        .submit("/console/clients", "/console/clients", &with)
        .await
        .expect(409);
}

#[tokio::test]
async fn keys_rotate_after_the_password_again() {
    let api = Api::start().await;
    let mut admin = Browser::admin(&api).await;
    let before = admin.get("/console/keys").await;
    before.expect(200);
    assert!(before.text.contains("active"));
    admin
        .submit(
            "/console/keys",
            "/console/keys/rotate",
            &[("password", "wrong password here")],
        )
        .await
        .expect(401);
    admin
        .submit(
            "/console/keys",
            "/console/keys/rotate",
            &[("password", api.server.admin_password())],
        )
        .await
        .expect(303);
    let after = admin.get("/console/keys").await;
    after.expect(200);
    assert!(after.text.contains("verify_only"), "{}", after.text);
    assert!(after.text.contains("Leaves the JWKS"));
}

#[tokio::test]
async fn the_feed_usage_and_configuration_pages_render() {
    let api = Api::start().await;
    let mut admin = Browser::admin(&api).await;
    let user = api.user("feed@example.com").await.str("access_token");
    let sid = api.get("/v1/auth/me", Some(&user)).await.str("sid");
    api.post_empty("/v1/auth/logout", Some(&user))
        .await
        .expect(204, None);
    let feed = admin.get("/console/revocations").await;
    feed.expect(200);
    assert!(feed.text.contains(&sid));
    let usage = admin.get("/console/usage").await;
    usage.expect(200);
    assert!(usage.text.contains("Calls per plan"));
    let config = admin.get("/console/config").await;
    config.expect(200);
    assert!(config.text.contains("test"));
}

#[tokio::test]
async fn console_actions_are_in_the_audit_trail() {
    let api = Api::start().await;
    let mut admin = Browser::admin(&api).await;
    let created = admin
        .submit(
            "/console/",
            "/console/users",
            &[
                ("email", "audited@example.com"),
                ("password", PASSWORD),
                ("plan", "pro"),
            ],
        )
        .await;
    created.expect(303);
    let user_page = created.header("location").to_owned();
    let user_id = user_page.rsplit('/').next().unwrap().to_owned();
    admin
        .submit(
            &user_page,
            &format!("{user_page}/plan"),
            &[("plan", "free")],
        )
        .await
        .expect(303);
    admin
        .submit(&user_page, &format!("{user_page}/revoke"), &[])
        .await
        .expect(303);
    let password = api.server.admin_password().to_owned();
    admin
        .submit(
            "/console/keys",
            "/console/keys/rotate",
            &[("password", &password)],
        )
        .await
        .expect(303);
    admin
        .submit(
            "/console/clients",
            "/console/clients",
            &[("client_id", "audited"), ("password", &password)],
        )
        .await
        .expect(200);
    admin
        .submit("/console/", "/account/logout", &[])
        .await
        .expect(303);
    api.server.flush_audit().await;
    let token = api.admin_token().await;
    let trail = api.get("/v1/admin/audit?limit=1000", Some(&token)).await;
    trail.expect(200, None);
    let events = trail.body["events"].as_array().expect("events");
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    for kind in [
        "login.succeeded",
        "admin.user_created",
        "admin.user_updated",
        "revoked",
        "keys.rotated",
        "admin.client_created",
        "session.logout",
    ] {
        assert!(kinds.contains(&kind), "{kind} missing from {kinds:?}");
    }
    assert!(trail.text.contains(&user_id));
    assert!(!trail.text.contains(&password), "no password in the trail");
    assert!(
        !trail.text.contains("tgs_"),
        "no client secret in the trail"
    );
}

#[tokio::test]
async fn a_clients_secret_is_rotated_after_the_password_again_and_a_deleted_clients_tokens_die() {
    let api = Api::start().await;
    let mut admin = Browser::admin(&api).await;
    let (_, old_secret) = api.client("billing", &["introspect"]).await;
    let introspector = api.client("auditor", &["introspect"]).await;
    let token = api.service_token("billing", &old_secret).await;
    assert!(api.is_active(&introspector, &token).await);
    let page = "/console/clients/billing";
    admin.get(page).await.expect(200);
    admin.get("/console/clients/nobody").await.expect(404);
    admin
        .submit(
            page,
            "/console/clients/billing/rotate",
            &[("password", "wrong password here")],
        )
        .await
        .expect(401);
    let password = api.server.admin_password().to_owned();
    admin
        .submit(
            page,
            "/console/clients/nobody/rotate",
            &[("password", &password)],
        )
        .await
        .expect(404);
    let shown = admin
        .submit(
            page,
            "/console/clients/billing/rotate",
            &[("password", &password)],
        )
        .await;
    shown.expect(200);
    let at = shown.text.find("tgs_").expect("the new secret is shown");
    let new_secret = shown.text[at..].split('"').next().unwrap().to_owned();
    assert_ne!(new_secret, old_secret);
    api.post_form(
        "/oauth/token",
        Some(("billing", &old_secret)),
        &[("grant_type", "client_credentials")],
    )
    .await
    .expect(401, Some("invalid_client"));
    let fresh = api.service_token("billing", &new_secret).await;
    assert!(!admin.get(page).await.text.contains(&new_secret));

    admin
        .submit(page, "/console/clients/nobody/delete", &[])
        .await
        .expect(404);
    // A revocation kills what was issued before its second.
    api.server.clock().advance(1);
    let deleted = admin
        .submit(page, "/console/clients/billing/delete", &[])
        .await;
    deleted.expect(303);
    assert_eq!(deleted.header("location"), "/console/clients");
    assert!(!api.is_active(&introspector, &token).await);
    assert!(!api.is_active(&introspector, &fresh).await);
    api.post_form(
        "/oauth/token",
        Some(("billing", &new_secret)),
        &[("grant_type", "client_credentials")],
    )
    .await
    .expect(401, Some("invalid_client"));
    admin.get(page).await.expect(404);
    assert!(!admin.get("/console/clients").await.text.contains("billing"));
    api.server.flush_audit().await;
    let trail = api
        .get("/v1/admin/audit?limit=1000", Some(&api.admin_token().await))
        .await;
    assert!(trail.text.contains("admin.client_secret_rotated"));
    assert!(trail.text.contains("admin.client_deleted"));
    assert!(!trail.text.contains(&new_secret));
}
