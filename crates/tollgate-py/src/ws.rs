//! WebSocket authentication for ASGI servers (CONTRACT §6): the SDK's
//! `tollgate_client::ws` — handshake rules, per-plan connection limits,
//! origins, and the supervisor (expiry notices, `auth.refresh`, 4401 on
//! expiry, 4403 on revocation, size and shape of messages, 1001 on
//! shutdown) — with the socket relayed by the Python glue
//! (`tollgate.asgi`), which decides nothing.

use std::sync::Arc;
use std::time::Duration;

use pyo3::prelude::*;
use pyo3::types::PyTuple;
use tokio::sync::Mutex;
use tollgate_client::ws::{self as sdk, Frame, RedisSlots};
use tower::ServiceExt;

use crate::authenticator::{Authenticator, Principal, Requirements};
use crate::bridge::{awaitable, guard, runtime};
use crate::convert::{self, json_from_py};
use crate::errors::IntoPy;
use crate::limits::ToolGate;

/// The WebSocket rules of one service and its live connections.
#[pyclass(frozen, module = "tollgate")]
pub struct WsAuth {
    inner: sdk::WsAuth,
    /// The SDK's `GET`/`DELETE /v1/connections` over `inner`.
    connections: axum::Router,
}

#[pymethods]
impl WsAuth {
    #[new]
    #[pyo3(signature = (authenticator, *, gate = None, requirements = None, allowed_origins = None, development = false, query_parameter = None, expiry_notice = 60.0, send_timeout = 10.0))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        authenticator: &Authenticator,
        gate: Option<&ToolGate>,
        requirements: Option<&Requirements>,
        allowed_origins: Option<Vec<String>>,
        development: bool,
        query_parameter: Option<&str>,
        expiry_notice: f64,
        send_timeout: f64,
    ) -> PyResult<WsAuth> {
        guard(|| {
            let mut builder = sdk::WsAuth::builder(authenticator.inner.clone())
                .expiry_notice(seconds(expiry_notice)?)
                .send_timeout(seconds(send_timeout)?);
            if let Some(gate) = gate {
                builder = builder.plans(gate.inner.plans().clone());
                if let Some((url, prefix)) = &gate.redis {
                    let _entered = runtime().enter();
                    builder = builder.shared_slots(RedisSlots::new(url, prefix.clone()).py_err()?);
                }
            }
            if let Some(requirements) = requirements {
                builder = builder.requirements((*requirements.inner).clone());
            }
            if let Some(name) = query_parameter {
                builder = builder.query_parameter(name);
            }
            let origins = allowed_origins.unwrap_or_default();
            let origins: Vec<&str> = origins.iter().map(String::as_str).collect();
            let builder = builder.allowed_origins(&origins, development).py_err()?;
            let inner = builder.build();
            Ok(WsAuth {
                connections: sdk::connections_router(inner.clone()),
                inner,
            })
        })
    }

    #[staticmethod]
    #[pyo3(signature = (authenticator, *, gate = None, allowed_origins = None, environ = None))]
    fn from_env(
        py: Python<'_>,
        authenticator: &Authenticator,
        gate: Option<&ToolGate>,
        allowed_origins: Option<Vec<String>>,
        environ: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<WsAuth> {
        let development = guard(|| {
            let config = convert::sdk_config(py, &[], environ)?;
            Ok(config.environment == tollgate_core::config::Environment::Development)
        })?;
        WsAuth::new(
            authenticator,
            gate,
            None,
            allowed_origins,
            development,
            None,
            60.0,
            10.0,
        )
    }

    #[getter]
    fn live_connections(&self) -> usize {
        self.inner.live_connections()
    }

    /// See the stub.
    fn admit_async<'py>(
        &self,
        py: Python<'py>,
        scope: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let parts = request_head(scope)?;
            let ws = self.inner.clone();
            awaitable(py, async move {
                let admission = ws.admit(&parts).await.py_err()?;
                Ok(Admission {
                    principal: Principal(admission.principal().clone()),
                    protocol: admission.protocol().map(str::to_owned),
                    admission: std::sync::Mutex::new(Some(admission)),
                })
            })
        })
    }

    /// See the stub.
    fn connections_async<'py>(
        &self,
        py: Python<'py>,
        scope: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let request = connections_request(scope)?;
            let router = self.connections.clone();
            awaitable(py, async move {
                let Some(request) = request else {
                    return Ok(malformed_target());
                };
                let response = router
                    .oneshot(request)
                    .await
                    .unwrap_or_else(|never| match never {});
                let (parts, body) = response.into_parts();
                let body = axum::body::to_bytes(body, MAX_ANSWER_BYTES)
                    .await
                    .map_err(|_| crate::errors::internal())?;
                let headers = parts
                    .headers
                    .iter()
                    .map(|(name, value)| {
                        (name.as_str().as_bytes().to_vec(), value.as_bytes().to_vec())
                    })
                    .collect();
                Ok((parts.status.as_u16(), headers, body.to_vec()))
            })
        })
    }

    #[pyo3(signature = (grace = 5.0))]
    fn shutdown_async<'py>(&self, py: Python<'py>, grace: f64) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let grace = seconds(grace)?;
            let ws = self.inner.clone();
            awaitable(py, async move {
                ws.shutdown(grace).await;
                Ok(())
            })
        })
    }
}

fn seconds(value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("a duration is seconds, at least 0"))
}

/// The request head of an ASGI `websocket` scope: path and query string
/// (for a configured query parameter) and the headers.
fn request_head(scope: &Bound<'_, PyAny>) -> PyResult<http::request::Parts> {
    let path: Vec<u8> = match scope.get_item("raw_path") {
        Ok(raw) if !raw.is_none() => raw.extract()?,
        _ => scope.get_item("path")?.extract::<String>()?.into_bytes(),
    };
    let query: Vec<u8> = match scope.get_item("query_string") {
        Ok(query) if !query.is_none() => query.extract()?,
        _ => Vec::new(),
    };
    let mut target = path;
    if !query.is_empty() {
        target.push(b'?');
        target.extend_from_slice(&query);
    }
    // A target `http` refuses cannot carry a token the rules would take.
    let uri = http::Uri::try_from(target).unwrap_or_else(|_| http::Uri::from_static("/"));
    let mut request = http::Request::new(());
    *request.uri_mut() = uri;
    *request.headers_mut() = convert::header_map(&scope.get_item("headers")?)?;
    Ok(request.into_parts().0)
}

/// The most bytes an answer of `/v1/connections` may hold (a list of
/// every connection of a full instance fits).
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// A status, headers and body, as the ASGI glue sends them.
type Answer = (u16, Vec<(Vec<u8>, Vec<u8>)>, Vec<u8>);

/// The SDK router's request for an ASGI `http` scope: its method, query
/// string and headers at the router's path (wherever the host mounted
/// it); `None` when the target is not a valid URI, which hyper (in front
/// of chat-backend) refuses too.
fn connections_request(
    scope: &Bound<'_, PyAny>,
) -> PyResult<Option<http::Request<axum::body::Body>>> {
    let method: String = scope.get_item("method")?.extract()?;
    let query: Vec<u8> = match scope.get_item("query_string") {
        Ok(query) if !query.is_none() => query.extract()?,
        _ => Vec::new(),
    };
    let mut target = b"/v1/connections".to_vec();
    if !query.is_empty() {
        target.push(b'?');
        target.extend_from_slice(&query);
    }
    let (Ok(method), Ok(uri)) = (
        http::Method::from_bytes(method.as_bytes()),
        http::Uri::try_from(target),
    ) else {
        return Ok(None);
    };
    let mut request = http::Request::new(axum::body::Body::empty());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.headers_mut() = convert::header_map(&scope.get_item("headers")?)?;
    Ok(Some(request))
}

fn malformed_target() -> Answer {
    let body = serde_json::json!({
        "error": "invalid_request",
        "error_description": "the request target is malformed",
    });
    (
        400,
        vec![(b"content-type".to_vec(), b"application/json".to_vec())],
        body.to_string().into_bytes(),
    )
}

/// An accepted handshake, before the connection starts.
#[pyclass(frozen, module = "tollgate")]
pub struct Admission {
    #[pyo3(get)]
    principal: Principal,
    #[pyo3(get)]
    protocol: Option<String>,
    admission: std::sync::Mutex<Option<sdk::Admission>>,
}

#[pymethods]
impl Admission {
    /// See the stub.
    fn start<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        guard(|| {
            let admission = self
                .admission
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take()
                .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("already started"))?;
            let (connection, from_client, to_client) = {
                let _entered = runtime().enter();
                admission.start()
            };
            let (incoming, handle) = connection.split();
            let connection = Connection {
                handle: std::sync::Mutex::new(Some(handle)),
                incoming: Arc::new(Mutex::new(incoming)),
            };
            let transport = Transport {
                from_client,
                to_client: Arc::new(Mutex::new(to_client)),
            };
            PyTuple::new(
                py,
                [
                    Bound::new(py, connection)?.into_any(),
                    Bound::new(py, transport)?.into_any(),
                ],
            )
        })
    }

    /// Gives the connection slot back without starting (the accept
    /// failed).
    fn release(&self) {
        drop(
            self.admission
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take(),
        );
    }
}

/// The handler's side of a live connection.
#[pyclass(frozen, module = "tollgate")]
pub struct Connection {
    /// What the client sent.
    incoming: Arc<Mutex<sdk::Incoming>>,
    /// Sends and knows the principal.
    handle: std::sync::Mutex<Option<sdk::Handle>>,
}

impl Connection {
    fn handle(&self) -> Option<sdk::Handle> {
        self.handle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

#[pymethods]
impl Connection {
    /// See the stub.
    fn recv<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let incoming = self.incoming.clone();
        guard(|| {
            awaitable(py, async move {
                let message = incoming.lock().await.recv().await;
                Ok(message.map(|m| m.to_string()))
            })
        })
    }

    /// See the stub.
    fn send<'py>(
        &self,
        py: Python<'py>,
        message: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let message = json_from_py(py, message)?;
            let handle = self.handle();
            awaitable(py, async move {
                Ok(match handle {
                    Some(handle) => handle.send(message).await.is_ok(),
                    None => false,
                })
            })
        })
    }

    #[getter]
    fn principal(&self) -> Option<Principal> {
        self.handle().map(|h| Principal(h.principal()))
    }

    /// See the stub.
    fn close(&self) {
        self.handle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

/// The ASGI glue's ends of the socket.
#[pyclass(frozen, module = "tollgate")]
pub struct Transport {
    from_client: sdk::FromClient,
    to_client: Arc<Mutex<sdk::ToClient>>,
}

#[pymethods]
impl Transport {
    /// See the stub.
    fn received_text<'py>(&self, py: Python<'py>, text: String) -> PyResult<Bound<'py, PyAny>> {
        let from_client = self.from_client.clone();
        guard(|| awaitable(py, async move { Ok(from_client.text(text).await.is_ok()) }))
    }

    /// See the stub.
    fn received_bytes<'py>(&self, py: Python<'py>, bytes: Vec<u8>) -> PyResult<Bound<'py, PyAny>> {
        let from_client = self.from_client.clone();
        guard(|| {
            awaitable(
                py,
                async move { Ok(from_client.binary(bytes).await.is_ok()) },
            )
        })
    }

    /// See the stub.
    fn disconnected(&self) {
        self.from_client.closed();
    }

    /// See the stub.
    fn next_frame<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let to_client = self.to_client.clone();
        guard(|| {
            awaitable(py, async move {
                let frame = to_client.lock().await.next().await;
                Ok(match frame {
                    None => None,
                    Some(Frame::Text(text)) => Some(("text", text, 0u16)),
                    Some(Frame::Close { code, reason }) => Some(("close", reason, code)),
                })
            })
        })
    }
}

/// See the stub.
#[pyfunction]
pub(crate) fn invalid_message<'py>(
    py: Python<'py>,
    message: &Bound<'py, PyAny>,
    description: &str,
) -> PyResult<Bound<'py, PyAny>> {
    guard(|| {
        let message = json_from_py(py, message)?;
        crate::convert::json_to_py(py, &sdk::invalid_message(&message, description))
    })
}
