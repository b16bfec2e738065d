//! How long console pages take with 100 000 users in the store: a real
//! server (the test-kit, SQLite), users seeded in one SQL statement, then
//! each page requested N times over loopback by a signed-in admin. Prints
//! the median, 95th percentile and maximum per page. A request's time over
//! loopback bounds the server's time from above.
//!
//!   cargo run --release -p tollgate-server --example console_pages -- [USERS] [REQUESTS]
//!
//! Figures and the command of record: BENCHMARKS.md.

use std::time::{Duration, Instant};

use sqlx::Connection;
use tollgate_server::testkit::TestServer;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let users: u64 = args.next().map_or(100_000, |a| a.parse().expect("USERS"));
    let requests: usize = args.next().map_or(200, |a| a.parse().expect("REQUESTS"));
    let server = TestServer::start().await;
    let db = server.data_dir().join("tollgate.db");
    let seeding = Instant::now();
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("the test-kit's SQLite file");
    let series = format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {users})"
    );
    let mut tx = conn.begin().await.expect("a transaction");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "{series} INSERT INTO subjects (subject, kind) SELECT printf('bench-%06d', i), 'user' FROM n"
    )))
    .execute(&mut *tx)
    .await
    .expect("seeding subjects");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "{series} INSERT INTO users (id, email, password_hash, plan, roles, disabled, created_at) \
         SELECT printf('bench-%06d', i), printf('user%06d@example.com', i), \
                '$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA', \
                CASE i % 3 WHEN 0 THEN 'free' WHEN 1 THEN 'pro' ELSE 'enterprise' END, \
                '[]', 0, 1700000000 + i FROM n"
    )))
    .execute(&mut *tx)
    .await
    .expect("seeding users");
    tx.commit().await.expect("commit");
    drop(conn);
    println!("seeded {users} users in {:.1?}", seeding.elapsed());

    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let signed_in = http
        .post(server.url("/account/login"))
        .form(&[
            ("email", server.admin_email()),
            ("password", server.admin_password()),
        ])
        .send()
        .await
        .expect("signing in");
    assert_eq!(signed_in.status(), 303, "signing in");
    let cookies: Vec<String> = signed_in
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(str::to_owned))
        .collect();
    let cookie = cookies.join("; ");
    let middle = format!("bench-{:06}", users / 2);
    let pages = [
        "/console/".to_owned(),
        format!("/console/users?after={middle}"),
        format!(
            "/console/users?email=user{:06}%40example.com",
            users * 7 / 9
        ),
        format!("/console/users/{middle}"),
        "/console/keys".to_owned(),
        "/console/revocations".to_owned(),
        "/console/usage".to_owned(),
        "/account/".to_owned(),
    ];
    println!("{:<44} {:>9} {:>9} {:>9}", "page", "median", "p95", "max");
    for page in &pages {
        let mut times: Vec<Duration> = Vec::with_capacity(requests);
        for i in 0..requests + 10 {
            let start = Instant::now();
            let response = http
                .get(server.url(page))
                .header("cookie", &cookie)
                .send()
                .await
                .expect("a page");
            assert_eq!(response.status(), 200, "{page}");
            let body = response.bytes().await.expect("the body");
            assert!(!body.is_empty());
            // The first ten warm caches up and are not counted.
            if i >= 10 {
                times.push(start.elapsed());
            }
        }
        times.sort();
        let at = |q: f64| times[((times.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "{:<44} {:>9.2?} {:>9.2?} {:>9.2?}",
            page,
            at(0.5),
            at(0.95),
            times[times.len() - 1]
        );
    }
    server.stop().await;
}
