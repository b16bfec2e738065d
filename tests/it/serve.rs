//! `tollgate serve` from an empty directory with environment settings only,
//! and the store commands acting on its database while it runs.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::util::tollgate;

const ADMIN: &str = "admin@example.com";
const PASSWORD: &str = "correct horse battery staple";

struct Served {
    child: Child,
    base: String,
    dir: TempDir,
    http: reqwest::Client,
}

impl Served {
    fn start() -> Served {
        let dir = tempfile::tempdir().unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut command = Command::new(env!("CARGO_BIN_EXE_tollgate"));
        command
            .env_clear()
            .current_dir(dir.path())
            .arg("serve")
            .arg("--log-format")
            .arg("json")
            .env("TOLLGATE_BIND", format!("127.0.0.1:{port}"))
            .env("TOLLGATE_BOOTSTRAP_ADMIN_EMAIL", ADMIN)
            .env("TOLLGATE_BOOTSTRAP_ADMIN_PASSWORD", PASSWORD)
            .env("RUST_LOG", "debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(path) = std::env::var_os("PATH") {
            command.env("PATH", path);
        }
        Served {
            child: command.spawn().unwrap(),
            base: format!("http://127.0.0.1:{port}"),
            dir,
            http: reqwest::Client::new(),
        }
    }

    fn database(&self) -> String {
        format!(
            "sqlite://{}/tollgate-data/tollgate.db",
            self.dir.path().display()
        )
    }

    /// Runs a store command on the served database.
    fn command(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut t = tollgate(args)
            .env("TOLLGATE_DATABASE_URL", &self.database())
            .env("TOLLGATE_BIND", self.base.trim_start_matches("http://"));
        if let Some(text) = stdin {
            t = t.stdin(text);
        }
        let run = t.run();
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        run.stdout
    }

    async fn wait_ready(&self) {
        for _ in 0..300 {
            let response = self.http.get(format!("{}/readyz", self.base)).send().await;
            if response.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("tollgate serve never became ready");
    }

    async fn login(&self, email: &str) -> Value {
        let response = self
            .http
            .post(format!("{}/v1/auth/login", self.base))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn introspect(&self, client: &(String, String), token: &str) -> Value {
        self.http
            .post(format!("{}/oauth/introspect", self.base))
            .basic_auth(&client.0, Some(&client.1))
            .form(&[("token", token)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// SIGTERM, then the exit code and everything logged.
    fn terminate(mut self) -> (i32, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let output = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap())
            .wait_with_output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kid(token: &str) -> String {
    let (header, _) = tollgate_core::jws::dangerous::insecure_decode(token).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn serve_runs_from_an_empty_directory_and_follows_the_store_commands() {
    let served = Served::start();
    served.wait_ready().await;
    let mut tokens = Vec::new();
    let admin = served.login(ADMIN).await;
    tokens.push(admin["access_token"].as_str().unwrap().to_owned());

    // A client registered by the CLI works at once.
    let added = served.command(
        &["client", "add", "rs-cli", "--scope", "introspect", "--json"],
        None,
    );
    let added: Value = serde_json::from_str(added.trim()).unwrap();
    let client = (
        "rs-cli".to_owned(),
        added["client_secret"].as_str().unwrap().to_owned(),
    );
    tokens.push(client.1.clone());
    assert_eq!(served.introspect(&client, &tokens[0]).await["active"], true);

    // A user added by the CLI logs in; disabling it by the CLI kills its
    // token at the running server.
    served.command(
        &["user", "add", "cli@example.com", "--password-stdin"],
        Some(PASSWORD),
    );
    let user = served.login("cli@example.com").await;
    let access = user["access_token"].as_str().unwrap().to_owned();
    tokens.push(access.clone());
    tokens.push(user["refresh_token"].as_str().unwrap().to_owned());
    served.command(
        &["user", "set", "cli@example.com", "--disabled", "true"],
        None,
    );
    let mut dead = false;
    for _ in 0..100 {
        if served.introspect(&client, &access).await == json!({"active": false}) {
            dead = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(dead, "the CLI's revocation never reached the server");

    // A rotation by the CLI is picked up within seconds; tokens of the old
    // key stay valid.
    let new_kid = served.command(&["keys", "rotate"], None).trim().to_owned();
    let mut signed_with_new = false;
    for _ in 0..100 {
        let token = served.login(ADMIN).await["access_token"]
            .as_str()
            .unwrap()
            .to_owned();
        tokens.push(token.clone());
        if kid(&token) == new_kid {
            signed_with_new = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        signed_with_new,
        "the server never signed with the rotated key"
    );
    assert_eq!(served.introspect(&client, &tokens[0]).await["active"], true);

    // A minted token is accepted by the server; inspect finds the keys in
    // the local store without --jwks.
    let minted = served.command(
        &[
            "token",
            "mint",
            "--sub",
            "someone",
            "--email",
            "s@example.com",
        ],
        None,
    );
    let minted = minted.trim().to_owned();
    tokens.push(minted.clone());
    let me = served
        .http
        .get(format!("{}/v1/auth/me", served.base))
        .bearer_auth(&minted)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let inspected = served.command(&["token", "inspect", &minted], None);
    assert_eq!(inspected.lines().last(), Some("valid"));

    let (code, logs) = served.terminate();
    assert_eq!(code, 0, "{logs}");
    assert!(logs.contains("\"stopped\""), "{logs}");
    for line in logs.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
    }
    for token in &tokens {
        assert!(
            !logs.contains(token.as_str()),
            "a token or secret was logged"
        );
    }
}
