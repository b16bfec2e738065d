//! WebSocket authentication for hosts that drive the socket themselves
//! (the Python SDK's ASGI glue): the same handshake rules and the same
//! [`Supervisor`] as [`super::AuthenticatedUpgrade`], with the socket
//! replaced by two channels.
//!
//! [`WsAuth::admit`] judges a handshake from its request head (origin,
//! token carriers and the protocol to select, the token, the requirements,
//! the plan's connection limit) and takes the connection slot;
//! [`Admission::start`] spawns the supervisor on the current tokio runtime
//! and returns the handler's [`Connection`] with the host's ends of the
//! socket: [`FromClient`] (what the client sent, in order) and
//! [`ToClient`] (each [`Frame`] to send, the close frame last). Every
//! decision stays in the supervisor: the host relays frames, nothing more.
//!
//! **Invariant:** the slot lives in the supervisor's task, which ends when
//! the host reports the socket gone ([`FromClient::closed`], or dropping
//! it), when the close handshake's grace runs out, or when the handler side
//! is dropped; so a host cannot leak a connection count.

use axum::extract::ws::{CloseFrame, Message};
use axum::http::HeaderValue;
use axum::http::request::Parts;
use futures::SinkExt;
use futures::channel::mpsc as frames;
use futures::stream::StreamExt;
use serde_json::Value;
use std::sync::Arc;

use tokio::sync::mpsc;

use super::registry::Live;
use super::{Closed, Connection, QUEUE, Slot, WsAuth, supervised};
use crate::{AuthError, Principal};

/// A handshake [`WsAuth::admit`] accepted: who connects, the protocol to
/// select in the answer, and the connection slot (released when this is
/// dropped without [`Admission::start`]).
#[derive(Debug)]
pub struct Admission {
    principal: Principal,
    protocol: Option<HeaderValue>,
    slot: Slot,
}

impl WsAuth {
    /// Judges a WebSocket handshake from its request head exactly as the
    /// [`super::AuthenticatedUpgrade`] extractor does (see the module docs
    /// of `ws`), and takes a connection slot. A refusal is the error to
    /// answer with (its HTTP mapping), before any upgrade.
    pub async fn admit(&self, parts: &Parts) -> Result<Admission, AuthError> {
        let (principal, protocol) = self.handshake(parts).await?;
        let slot = self.take_slot(&principal).await?;
        Ok(Admission {
            principal,
            protocol,
            slot,
        })
    }
}

impl Admission {
    /// Who connects.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The `Sec-WebSocket-Protocol` to select in the handshake's answer
    /// (the first offered entry that carries no token, else the
    /// token-carrying one); `None`: select none.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_ref().and_then(|p| p.to_str().ok())
    }

    /// Starts supervising the connection, once the host has accepted the
    /// handshake with [`Admission::protocol`]. Must be called within a
    /// tokio runtime: the supervisor runs as a task of its own. The
    /// connection ends as described in [`super::AuthenticatedUpgrade::on_upgrade`]:
    /// dropping the [`Connection`] closes it with 1000.
    pub fn start(self) -> (Connection, FromClient, ToClient) {
        drop(self.principal);
        let max = self.slot.ws.inner.max_message_size;
        let (connection, supervisor, incoming) = supervised(self.slot);
        let (from_client, stream) = frames::channel(QUEUE);
        let (sink, to_client) = frames::channel(QUEUE);
        tokio::spawn(supervisor.run(sink, stream, incoming));
        (
            connection,
            FromClient {
                sender: from_client,
                max,
            },
            ToClient {
                receiver: to_client,
            },
        )
    }
}

/// The host's end for what the client sends. Cheap to clone.
#[derive(Debug, Clone)]
pub struct FromClient {
    sender: frames::Sender<Result<Message, axum::Error>>,
    /// The largest message accepted ([`super::WsAuthBuilder::max_message_size`]).
    max: usize,
}

/// The supervisor is gone: nothing more is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the WebSocket connection is no longer supervised")]
pub struct Gone;

impl FromClient {
    /// A text message from the client (over the maximum, 64 KiB by
    /// default: the supervisor closes
    /// with 1009, as if the socket had refused it). Waits while the
    /// supervisor is behind.
    pub async fn text(&self, text: String) -> Result<(), Gone> {
        let message = if text.len() > self.max {
            Err(too_big(text.len(), self.max))
        } else {
            Ok(Message::Text(text.into()))
        };
        self.send(message).await
    }

    /// A binary message from the client (the protocol has none: the
    /// supervisor closes with 1008).
    pub async fn binary(&self, bytes: Vec<u8>) -> Result<(), Gone> {
        let message = if bytes.len() > self.max {
            Err(too_big(bytes.len(), self.max))
        } else {
            Ok(Message::Binary(bytes.into()))
        };
        self.send(message).await
    }

    /// The client closed the connection, or the socket failed: supervision
    /// ends and the slot is released.
    pub fn closed(&self) {
        self.sender.clone().close_channel();
    }

    async fn send(&self, message: Result<Message, axum::Error>) -> Result<(), Gone> {
        self.sender.clone().send(message).await.map_err(|_| Gone)
    }
}

fn too_big(size: usize, max_size: usize) -> axum::Error {
    axum::Error::new(tungstenite::Error::Capacity(
        tungstenite::error::CapacityError::MessageTooLong { size, max_size },
    ))
}

/// What the host must send to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text message (JSON).
    Text(String),
    /// A close frame: send it, then finish the close handshake.
    Close {
        /// The close code (4401, 4403, 1001, 1008, 1009, 1000…).
        code: u16,
        /// The reason (`token_expired`, `token_revoked`, …).
        reason: String,
    },
}

/// The host's end for what goes to the client.
#[derive(Debug)]
pub struct ToClient {
    receiver: frames::Receiver<Message>,
}

impl ToClient {
    /// The next frame to send; `None` once supervision has ended (after a
    /// close frame, or because the socket is gone).
    pub async fn next(&mut self) -> Option<Frame> {
        loop {
            let frame = match self.receiver.next().await? {
                Message::Text(text) => Frame::Text(text.as_str().to_owned()),
                Message::Close(frame) => {
                    let CloseFrame { code, reason } = frame.unwrap_or(CloseFrame {
                        code: 1000,
                        reason: "".into(),
                    });
                    Frame::Close {
                        code,
                        reason: reason.as_str().to_owned(),
                    }
                }
                // The supervisor sends only text and close frames.
                Message::Binary(_) | Message::Ping(_) | Message::Pong(_) => continue,
            };
            return Some(frame);
        }
    }
}

/// The receiving half of a [`Connection`] (see [`Connection::split`]).
#[derive(Debug)]
pub struct Incoming {
    incoming: mpsc::Receiver<Value>,
}

impl Incoming {
    /// The next message from the client, as [`Connection::recv`].
    pub async fn recv(&mut self) -> Option<Value> {
        self.incoming.recv().await
    }
}

/// The sending half of a [`Connection`] and its current principal (see
/// [`Connection::split`]). Cheap to clone. The connection closes with 1000
/// once every handle is dropped.
#[derive(Debug, Clone)]
pub struct Handle {
    outgoing: mpsc::Sender<Value>,
    live: Arc<Live>,
}

impl Connection {
    /// Splits the connection for hosts that receive and send from
    /// different tasks: dropping the handles (not the receiving half) is
    /// what ends the conversation.
    pub fn split(self) -> (Incoming, Handle) {
        let Connection {
            incoming,
            outgoing,
            live,
        } = self;
        (Incoming { incoming }, Handle { outgoing, live })
    }
}

impl Handle {
    /// Sends `message` (as JSON text), as [`Connection::send`].
    pub async fn send(&self, message: Value) -> Result<(), Closed> {
        self.outgoing.send(message).await.map_err(|_| Closed)
    }

    /// Who is connected, as of the latest accepted token.
    pub fn principal(&self) -> Principal {
        self.live.principal()
    }
}
