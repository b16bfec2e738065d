//! `ServiceTokenSource`: the SDK's client-credentials tokens for calling
//! other services, cached and renewed before they expire.

use pyo3::prelude::*;
use tollgate_client::AuthError as SdkError;

use crate::bridge::{awaitable, block_on, guard};
use crate::convert;
use crate::errors::IntoPy;

/// This service's own tokens, for calling other services.
#[pyclass(frozen, module = "tollgate")]
pub struct ServiceTokenSource {
    pub(crate) inner: tollgate_client::ServiceTokenSource,
}

impl ServiceTokenSource {
    fn build(
        py: Python<'_>,
        flags: &[(&str, Option<String>)],
        scope: Option<String>,
        environ: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<ServiceTokenSource> {
        let config = convert::sdk_config(py, flags, environ)?;
        let (Some(client_id), Some(secret)) = (&config.client_id, &config.client_secret) else {
            return Err(crate::errors::to_py(SdkError::Config(
                "service tokens need TOLLGATE_CLIENT_ID and TOLLGATE_CLIENT_SECRET".into(),
            )));
        };
        let mut builder = tollgate_client::ServiceTokenSource::builder(
            config.issuer.clone(),
            client_id.clone(),
            secret.clone(),
        );
        if let Some(scope) = scope {
            builder = builder.scope(scope);
        }
        let inner = block_on(py, async move { builder.build().await.py_err() })?;
        Ok(ServiceTokenSource { inner })
    }
}

#[pymethods]
impl ServiceTokenSource {
    #[new]
    #[pyo3(signature = (issuer = None, client_id = None, client_secret = None, *, scope = None, environ = None))]
    fn new(
        py: Python<'_>,
        issuer: Option<String>,
        client_id: Option<String>,
        client_secret: Option<String>,
        scope: Option<String>,
        environ: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<ServiceTokenSource> {
        guard(|| {
            let flags = [
                ("TOLLGATE_ISSUER", issuer),
                ("TOLLGATE_CLIENT_ID", client_id),
                ("TOLLGATE_CLIENT_SECRET", client_secret),
            ];
            ServiceTokenSource::build(py, &flags, scope, environ)
        })
    }

    #[staticmethod]
    #[pyo3(signature = (*, scope = None, environ = None))]
    fn from_env(
        py: Python<'_>,
        scope: Option<String>,
        environ: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<ServiceTokenSource> {
        guard(|| ServiceTokenSource::build(py, &[], scope, environ))
    }

    #[getter]
    fn client_id(&self) -> &str {
        self.inner.client_id()
    }

    fn token(&self, py: Python<'_>) -> PyResult<String> {
        guard(|| {
            let source = self.inner.clone();
            block_on(py, async move {
                Ok(source.token().await.py_err()?.secret().to_owned())
            })
        })
    }

    fn token_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let source = self.inner.clone();
            awaitable(py, async move {
                Ok(source.token().await.py_err()?.secret().to_owned())
            })
        })
    }

    fn authorization(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!("Bearer {}", self.token(py)?))
    }

    fn invalidate(&self) {
        self.inner.invalidate();
    }

    fn __repr__(&self) -> String {
        format!("ServiceTokenSource(client_id={:?})", self.inner.client_id())
    }
}
