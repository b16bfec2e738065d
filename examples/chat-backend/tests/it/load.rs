//! Issue 13: a short load run in CI — 500 authenticated connections across
//! 50 users against one backend; every handshake succeeds, and revoking
//! one user closes exactly that user's connections with 4403. Correctness
//! only: nothing here is timed.

use futures::{StreamExt, stream};

use crate::Backend;
use crate::ws::{Socket, chat_works, closed_with, connect};

const USERS: usize = 50;
const PER_USER: usize = 10;

#[tokio::test]
async fn five_hundred_connections_open_and_a_user_revocation_closes_all_of_theirs_with_4403() {
    let backend = Backend::start().await;
    // A user revocation kills the tokens issued *before* it (at second
    // granularity): tokens minted in the same second as `revoke_user`
    // below would outlive it on a fast machine, so they are a little older.
    let issued_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        - 5;
    let tokens: Vec<(usize, String)> = (0..USERS * PER_USER)
        .map(|i| {
            let user = i % USERS;
            let token = backend
                .issuer
                .user(&format!("load-{user}"))
                .plan("enterprise")
                .session(&format!("s-{i}"))
                .issued_at(issued_at)
                .mint();
            (user, token)
        })
        .collect();
    let mut sockets: Vec<(usize, Socket)> = stream::iter(tokens)
        .map(|(user, token)| {
            let backend = &backend;
            async move { (user, connect(backend, &token).await) }
        })
        .buffer_unordered(50)
        .collect()
        .await;
    assert_eq!(sockets.len(), USERS * PER_USER, "every handshake succeeded");
    assert_eq!(backend.ws.live_connections(), USERS * PER_USER);

    backend.issuer.revoke_user("load-7");
    let mut closed = 0;
    for (user, socket) in &mut sockets {
        if *user == 7 {
            assert_eq!(closed_with(socket).await, 4403);
            closed += 1;
        }
    }
    assert_eq!(closed, PER_USER);
    // Everyone else still chats (a sample of each user).
    for (_, socket) in sockets.iter_mut().filter(|(u, _)| *u != 7).take(USERS * 2) {
        chat_works(socket).await;
    }
}
