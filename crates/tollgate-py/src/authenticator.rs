//! `Authenticator`, `Principal` and `Requirements`: the SDK's
//! `tollgate_client::Authenticator` (discovery, JWKS cache, revocation feed,
//! introspection behind the breaker, the validated-claims cache) and what it
//! answers, for Python.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};
use tollgate_client::{AuthError as SdkError, Expect};

use crate::bridge::{awaitable_at_hand, block_on, block_on_at_hand, guard, poll_now};
use crate::convert::{self, json_to_py};
use crate::errors::{IntoPy, to_py};

/// Validates tokens for one service: the Rust SDK's authenticator.
#[pyclass(frozen, module = "tollgate")]
pub struct Authenticator {
    pub(crate) inner: tollgate_client::Authenticator,
}

impl Authenticator {
    pub(crate) fn wrap(inner: tollgate_client::Authenticator) -> Authenticator {
        Authenticator { inner }
    }

    fn build(
        py: Python<'_>,
        flags: &[(&str, Option<String>)],
        service_name: &str,
        environ: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Authenticator> {
        let config = convert::sdk_config(py, flags, environ)?;
        let builder =
            tollgate_client::Authenticator::builder_from_config(&config).service_name(service_name);
        let inner = block_on(py, async move { builder.build().await.py_err() })?;
        Ok(Authenticator::wrap(inner))
    }

    /// Whether judging `token` is expected to be answered from memory: a
    /// refusal before any work, or a token judged before.
    fn at_hand(&self, token: &Result<String, SdkError>) -> bool {
        token
            .as_ref()
            .map_or(true, |token| self.inner.is_cached(token))
    }
}

/// `expect`: `"access"` (a user's token, the default), `"service"` or
/// `"any"`.
pub(crate) fn expect_arg(expect: Option<&Bound<'_, PyAny>>) -> PyResult<Expect> {
    let Some(expect) = expect else {
        return Ok(Expect::Access);
    };
    let text = expect.cast::<PyString>().map_err(|_| {
        pyo3::exceptions::PyValueError::new_err("expect is \"access\", \"service\" or \"any\"")
    })?;
    match &*text.to_cow()? {
        "access" => Ok(Expect::Access),
        "service" => Ok(Expect::Service),
        "any" => Ok(Expect::Any),
        _ => Err(pyo3::exceptions::PyValueError::new_err(
            "expect is \"access\", \"service\" or \"any\"",
        )),
    }
}

fn expect_name(expect: Expect) -> &'static str {
    match expect {
        Expect::Access => "access",
        Expect::Service => "service",
        Expect::Any => "any",
    }
}

/// One token judged and checked against `requirements`.
async fn judge(
    auth: tollgate_client::Authenticator,
    token: Result<String, SdkError>,
    expect: Expect,
    requirements: Option<Arc<tollgate_client::Requirements>>,
) -> PyResult<Principal> {
    let token = token.py_err()?;
    let principal = auth.authenticate(&token, expect).await.py_err()?;
    if let Some(requirements) = requirements {
        requirements.check(&principal).py_err()?;
    }
    Ok(Principal(principal))
}

/// The bearer token of an ASGI request's headers: exactly one
/// `Authorization` header holding one `Bearer` token (the SDK's rule).
fn request_token(headers: &Bound<'_, PyAny>) -> PyResult<Result<String, SdkError>> {
    let values = convert::header_values(headers, b"authorization")?;
    Ok(match values.as_slice() {
        [] => Err(SdkError::MissingToken),
        [value] => tollgate_client::bearer_token(value).map(str::to_owned),
        _ => Err(SdkError::InvalidAuthorization),
    })
}

/// The one `Authorization` value of an ASGI header list, borrowed from
/// its `bytes` object where it is one (names compared in place, nothing
/// copied): the SDK's rule of [`request_token`] without its copies.
fn authorization<'py>(headers: &Bound<'py, PyAny>) -> PyResult<Result<HeaderValue<'py>, SdkError>> {
    let mut found: Option<HeaderValue<'py>> = None;
    for pair in headers.try_iter()? {
        let pair = pair?;
        let (name, value) = match pair.cast::<PyTuple>() {
            Ok(tuple) if tuple.len() == 2 => (tuple.get_item(0)?, tuple.get_item(1)?),
            _ => pair.extract()?,
        };
        let is_authorization = match name.cast::<PyBytes>() {
            Ok(name) => name.as_bytes().eq_ignore_ascii_case(b"authorization"),
            Err(_) => convert::bytes_of(&name)?.eq_ignore_ascii_case(b"authorization"),
        };
        if !is_authorization {
            continue;
        }
        if found.is_some() {
            return Ok(Err(SdkError::InvalidAuthorization));
        }
        found = Some(match value.cast_into::<PyBytes>() {
            Ok(bytes) => HeaderValue::Borrowed(bytes),
            Err(err) => HeaderValue::Owned(convert::bytes_of(&err.into_inner())?),
        });
    }
    Ok(found.ok_or(SdkError::MissingToken))
}

/// A header value: the ASGI server's own `bytes`, or a copy of anything
/// else.
enum HeaderValue<'py> {
    Borrowed(Bound<'py, PyBytes>),
    Owned(Vec<u8>),
}

impl HeaderValue<'_> {
    fn as_bytes(&self) -> &[u8] {
        match self {
            HeaderValue::Borrowed(bytes) => bytes.as_bytes(),
            HeaderValue::Owned(bytes) => bytes,
        }
    }
}

#[pymethods]
impl Authenticator {
    #[new]
    #[pyo3(signature = (issuer = None, audience = None, client_id = None, client_secret = None, *, service_name = "service", environ = None))]
    fn new(
        py: Python<'_>,
        issuer: Option<String>,
        audience: Option<&Bound<'_, PyAny>>,
        client_id: Option<String>,
        client_secret: Option<String>,
        service_name: &str,
        environ: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Authenticator> {
        guard(|| {
            let audience = match audience {
                None => None,
                Some(a) if a.is_instance_of::<PyString>() => Some(a.extract::<String>()?),
                Some(a) => Some(a.extract::<Vec<String>>()?.join(",")),
            };
            let flags = [
                ("TOLLGATE_ISSUER", issuer),
                ("TOLLGATE_AUDIENCE", audience),
                ("TOLLGATE_CLIENT_ID", client_id),
                ("TOLLGATE_CLIENT_SECRET", client_secret),
            ];
            Authenticator::build(py, &flags, service_name, environ)
        })
    }

    #[staticmethod]
    #[pyo3(signature = (service_name = "service", *, environ = None))]
    fn from_env(
        py: Python<'_>,
        service_name: &str,
        environ: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Authenticator> {
        guard(|| Authenticator::build(py, &[], service_name, environ))
    }

    #[getter]
    fn issuer(&self) -> &str {
        self.inner.issuer()
    }

    #[getter]
    fn audiences<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.inner.audiences())
    }

    #[pyo3(signature = (token, expect = None))]
    fn authenticate(
        &self,
        py: Python<'_>,
        token: Option<&Bound<'_, PyAny>>,
        expect: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Principal> {
        guard(|| {
            let expect = expect_arg(expect)?;
            let token = convert::token(token);
            let at_hand = self.at_hand(&token);
            block_on_at_hand(py, judge(self.inner.clone(), token, expect, None), at_hand)
        })
    }

    #[pyo3(signature = (token, expect = None))]
    fn authenticate_async<'py>(
        &self,
        py: Python<'py>,
        token: Option<&Bound<'py, PyAny>>,
        expect: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let expect = expect_arg(expect)?;
            let token = convert::token(token);
            let at_hand = self.at_hand(&token);
            awaitable_at_hand(py, judge(self.inner.clone(), token, expect, None), at_hand)
        })
    }

    #[pyo3(signature = (headers, requirements = None))]
    fn authenticate_request(
        &self,
        py: Python<'_>,
        headers: &Bound<'_, PyAny>,
        requirements: Option<&Requirements>,
    ) -> PyResult<Principal> {
        guard(|| {
            let token = request_token(headers)?;
            let (expect, requirements) = split(requirements);
            let at_hand = self.at_hand(&token);
            let judged = judge(self.inner.clone(), token, expect, requirements);
            block_on_at_hand(py, judged, at_hand)
        })
    }

    #[pyo3(signature = (headers, requirements = None))]
    fn authenticate_request_async<'py>(
        &self,
        py: Python<'py>,
        headers: &Bound<'py, PyAny>,
        requirements: Option<&Requirements>,
    ) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let token = request_token(headers)?;
            let (expect, requirements) = split(requirements);
            let at_hand = self.at_hand(&token);
            let judged = judge(self.inner.clone(), token, expect, requirements);
            awaitable_at_hand(py, judged, at_hand)
        })
    }

    /// See the stub: the middleware's fast path.
    #[pyo3(signature = (headers, requirements = None))]
    fn authenticate_request_now(
        &self,
        headers: &Bound<'_, PyAny>,
        requirements: Option<&Requirements>,
    ) -> PyResult<Option<Principal>> {
        guard(|| {
            let value = match authorization(headers)? {
                Ok(value) => value,
                Err(err) => return Err(to_py(err)),
            };
            let token = tollgate_client::bearer_token(value.as_bytes()).py_err()?;
            if !self.inner.is_cached(token) {
                // A first judgement is CPU work worth releasing the GIL
                // for, or a network wait: the awaitable path does either.
                return Ok(None);
            }
            let (expect, requirements) = match requirements {
                Some(r) => (r.inner.expect(), Some(&*r.inner)),
                None => (Expect::Access, None),
            };
            // Borrowed all along: no copy of the header or the token, no
            // awaitable, one `Principal` object on success.
            let judged = async {
                let principal = self.inner.authenticate(token, expect).await?;
                if let Some(requirements) = requirements {
                    requirements.check(&principal)?;
                }
                Ok::<_, SdkError>(principal)
            };
            match poll_now(judged) {
                Some(judged) => judged.map(|p| Some(Principal(p))).py_err(),
                None => Ok(None),
            }
        })
    }

    fn fingerprint<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let value = serde_json::to_value(self.inner.fingerprint())
                .map_err(|err| to_py(SdkError::Config(err.to_string())))?;
            json_to_py(py, &value)
        })
    }

    fn health<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guard(|| json_to_py(py, &self.inner.health().to_json()))
    }

    fn is_healthy(&self) -> bool {
        self.inner.health().is_healthy()
    }

    fn __repr__(&self) -> String {
        format!(
            "Authenticator(issuer={:?}, audiences={:?})",
            self.inner.issuer(),
            self.inner.audiences()
        )
    }
}

fn split(
    requirements: Option<&Requirements>,
) -> (Expect, Option<Arc<tollgate_client::Requirements>>) {
    match requirements {
        Some(r) => (r.inner.expect(), Some(r.inner.clone())),
        None => (Expect::Access, None),
    }
}

/// Who a validated token stands for. Immutable.
#[pyclass(frozen, module = "tollgate", eq)]
#[derive(Clone, PartialEq)]
pub struct Principal(pub(crate) tollgate_client::Principal);

#[pymethods]
impl Principal {
    #[getter]
    fn sub(&self) -> &str {
        self.0.subject()
    }

    #[getter]
    fn email(&self) -> Option<&str> {
        self.0.email()
    }

    #[getter]
    fn roles<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.0.claims().roles)
    }

    #[getter]
    fn plan(&self) -> Option<&str> {
        self.0.plan()
    }

    #[getter]
    fn permissions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.0.claims().permissions)
    }

    #[getter]
    fn scopes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, self.0.claims().scopes().collect::<Vec<_>>())
    }

    #[getter]
    fn tools<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let tools = self
            .0
            .claims()
            .permissions
            .iter()
            .filter_map(|p| p.strip_prefix("tool:"))
            .collect::<Vec<_>>();
        PyTuple::new(py, tools)
    }

    #[getter]
    fn sid(&self) -> Option<&str> {
        self.0.session()
    }

    #[getter]
    fn exp(&self) -> u64 {
        self.0.expires_at()
    }

    #[getter]
    fn iat(&self) -> u64 {
        self.0.claims().iat
    }

    #[getter]
    fn jti(&self) -> &str {
        &self.0.claims().jti
    }

    #[getter]
    fn issuer(&self) -> &str {
        &self.0.claims().iss
    }

    #[getter]
    fn audiences<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.0.claims().aud)
    }

    #[getter]
    fn token_type(&self) -> &'static str {
        self.0.claims().token_type.as_str()
    }

    #[getter]
    fn client_id(&self) -> &str {
        &self.0.claims().client_id
    }

    fn is_user(&self) -> bool {
        self.0.is_user()
    }

    fn is_service(&self) -> bool {
        self.0.is_service()
    }

    fn has_scope(&self, scope: &str) -> bool {
        self.0.has_scope(scope)
    }

    fn has_role(&self, role: &str) -> bool {
        self.0.has_role(role)
    }

    fn has_permission(&self, permission: &str) -> bool {
        self.0.has_permission(permission)
    }

    fn may_use_tool(&self, tool: &str) -> bool {
        self.0.may_use_tool(tool)
    }

    fn require(&self, requirements: &Requirements) -> PyResult<()> {
        self.0.require(&requirements.inner).py_err()
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        self.0.claims().jti.hash(&mut hasher);
        hasher.finish()
    }

    fn __repr__(&self) -> String {
        let plan = self
            .0
            .plan()
            .map_or("None".to_owned(), |p| format!("{p:?}"));
        format!(
            "Principal(sub={:?}, token_type={:?}, plan={plan})",
            self.0.subject(),
            self.0.claims().token_type.as_str(),
        )
    }
}

/// What a route requires of its caller: a token type and all of the
/// scopes, roles and permissions named (the SDK's `Requirements`).
#[pyclass(frozen, module = "tollgate")]
pub struct Requirements {
    pub(crate) inner: Arc<tollgate_client::Requirements>,
}

#[pymethods]
impl Requirements {
    #[new]
    #[pyo3(signature = (expect = None, *, scopes = Vec::new(), roles = Vec::new(), permissions = Vec::new(), tools = Vec::new()))]
    fn new(
        expect: Option<&Bound<'_, PyAny>>,
        scopes: Vec<String>,
        roles: Vec<String>,
        permissions: Vec<String>,
        tools: Vec<String>,
    ) -> PyResult<Requirements> {
        let mut inner = match expect_arg(expect)? {
            Expect::Access => tollgate_client::Requirements::user(),
            Expect::Service => tollgate_client::Requirements::service(),
            Expect::Any => tollgate_client::Requirements::any(),
        };
        for scope in scopes {
            inner = inner.scope(scope);
        }
        for role in roles {
            inner = inner.role(role);
        }
        for permission in permissions {
            inner = inner.permission(permission);
        }
        for tool in tools {
            inner = inner.tool(&tool);
        }
        Ok(Requirements {
            inner: Arc::new(inner),
        })
    }

    #[getter]
    fn expect(&self) -> &'static str {
        expect_name(self.inner.expect())
    }

    fn check(&self, principal: &Principal) -> PyResult<()> {
        self.inner.check(&principal.0).py_err()
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}
