//! `TestIssuer`: the SDK's test issuer (feature `testing`): real tokens,
//! signed with a real EdDSA key (or an HS256 shared secret) by the core minter, and authenticators that
//! trust only that key.

use std::time::Instant;

use pyo3::prelude::*;
use tollgate_client::testing::{TEST_AUDIENCE, TEST_ISSUER};
use tollgate_client::{AuthError as SdkError, RevocationSet};
use tollgate_core::{Secret, ValidationPolicy, Validator};

use crate::authenticator::{Authenticator, expect_arg};
use crate::bridge::guard;
use crate::errors::{IntoPy, to_py};
use crate::service::ServiceTokenSource;

/// Mints real tokens for a service's tests.
#[pyclass(frozen, module = "tollgate.testing")]
pub struct TestIssuer {
    inner: tollgate_client::testing::TestIssuer,
    audiences: Vec<String>,
}

#[pymethods]
impl TestIssuer {
    /// Not a test class, whatever pytest's naming rule says.
    #[classattr]
    fn __test__() -> bool {
        false
    }

    #[new]
    #[pyo3(signature = (issuer = TEST_ISSUER, audiences = vec![TEST_AUDIENCE.to_owned()], *, hmac_secret = None))]
    fn new(
        issuer: &str,
        audiences: Vec<String>,
        hmac_secret: Option<String>,
    ) -> PyResult<TestIssuer> {
        guard(|| {
            let names: Vec<&str> = audiences.iter().map(String::as_str).collect();
            let inner = match hmac_secret {
                None => tollgate_client::testing::TestIssuer::with(issuer, &names),
                Some(secret) => tollgate_client::testing::TestIssuer::with_hmac_secret(
                    issuer,
                    &names,
                    &Secret::new(secret),
                ),
            }
            .py_err()?;
            Ok(TestIssuer { inner, audiences })
        })
    }

    #[getter]
    fn issuer(&self) -> &str {
        self.inner.issuer()
    }

    fn jwks<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let jwks = serde_json::to_value(self.inner.verifying_keys().to_jwks())
                .map_err(|err| to_py(SdkError::Config(err.to_string())))?;
            crate::convert::json_to_py(py, &jwks)
        })
    }

    #[getter]
    fn audiences<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, pyo3::types::PyTuple>> {
        pyo3::types::PyTuple::new(py, &self.audiences)
    }

    #[pyo3(signature = (audience = None, *, service_name = "service"))]
    fn authenticator(&self, audience: Option<&str>, service_name: &str) -> Authenticator {
        let first = self.audiences.first().map_or(TEST_AUDIENCE, String::as_str);
        Authenticator::wrap(
            self.inner
                .authenticator_named(audience.unwrap_or(first), service_name),
        )
    }

    #[pyo3(signature = (sub, *, plan = None, roles = Vec::new(), permissions = None, email = None, session = None, scope = None, ttl = 900, issued_at = None, expired = false))]
    #[allow(clippy::too_many_arguments)]
    fn user(
        &self,
        sub: &str,
        plan: Option<&str>,
        roles: Vec<String>,
        permissions: Option<Vec<String>>,
        email: Option<&str>,
        session: Option<&str>,
        scope: Option<&str>,
        ttl: u64,
        issued_at: Option<u64>,
        expired: bool,
    ) -> PyResult<String> {
        guard(|| {
            let mut token = self.inner.user(sub).ttl(ttl);
            if let Some(plan) = plan {
                token = token.plan(plan);
            }
            for role in &roles {
                token = token.role(role);
            }
            if let Some(permissions) = &permissions {
                let permissions: Vec<&str> = permissions.iter().map(String::as_str).collect();
                token = token.permissions(&permissions);
            }
            if let Some(email) = email {
                token = token.email(email);
            }
            if let Some(session) = session {
                token = token.session(session);
            }
            if let Some(scope) = scope {
                token = token.scope(scope);
            }
            if let Some(at) = issued_at {
                token = token.issued_at(at);
            }
            if expired {
                token = token.expired();
            }
            Ok(token.mint_with_claims().py_err()?.0)
        })
    }

    #[pyo3(signature = (client_id, *, scope = "", ttl = 3600, expired = false))]
    fn service(&self, client_id: &str, scope: &str, ttl: u64, expired: bool) -> PyResult<String> {
        guard(|| {
            let mut token = self.inner.service(client_id).scope(scope).ttl(ttl);
            if expired {
                token = token.expired();
            }
            Ok(token.mint_with_claims().py_err()?.0)
        })
    }

    fn revoke(&self, token: &str) {
        self.inner.revoke(token);
    }

    fn logout(&self, token: &str) {
        self.inner.logout(token);
    }

    fn revoke_session(&self, sid: &str) {
        self.inner.revoke_session(sid);
    }

    fn revoke_user(&self, sub: &str) {
        self.inner.revoke_user(sub);
    }

    #[pyo3(signature = (client_id, *, scope = "", ttl = 3600))]
    fn service_tokens(&self, client_id: &str, scope: &str, ttl: u64) -> ServiceTokenSource {
        ServiceTokenSource {
            inner: tollgate_client::ServiceTokenSource::from_test_issuer(
                &self.inner,
                client_id,
                scope,
                ttl,
            ),
        }
    }

    fn __repr__(&self) -> String {
        format!("TestIssuer(issuer={:?})", self.inner.issuer())
    }
}

/// Benchmark support (BENCHMARKS.md), not API: the mean time in
/// nanoseconds of one `tollgate_core::Validator::validate` of each token,
/// in Rust, with the issuer's keys and no cache: the baseline of the
/// uncached `Authenticator.authenticate` from Python.
#[pyfunction]
#[pyo3(name = "_core_validation_ns", signature = (issuer, tokens, expect = None, audience = TEST_AUDIENCE))]
pub(crate) fn core_validation_ns(
    py: Python<'_>,
    issuer: &TestIssuer,
    tokens: Vec<String>,
    expect: Option<&Bound<'_, PyAny>>,
    audience: &str,
) -> PyResult<f64> {
    let expect = expect_arg(expect)?;
    let policy = ValidationPolicy::new(issuer.inner.issuer(), vec![audience.to_owned()])
        .map_err(|err| to_py(SdkError::from(err)))?
        .with_algorithms(issuer.inner.policy().algorithms());
    let validator = Validator::new(policy, issuer.inner.verifying_keys().clone());
    let revocations = RevocationSet::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    py.detach(|| {
        let start = Instant::now();
        for token in &tokens {
            validator
                .validate(token, expect, now, &revocations)
                .map_err(|err| SdkError::Token(err).code())
                .map_err(|code| format!("the core refused a benchmark token: {code}"))?;
        }
        let elapsed = start.elapsed().as_nanos() as f64;
        Ok::<f64, String>(elapsed / tokens.len().max(1) as f64)
    })
    .map_err(|message| to_py(SdkError::Config(message)))
}
