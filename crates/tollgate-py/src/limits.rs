//! `ToolGate`: the SDK's `limits::ToolGate` (tool permissions, per-plan
//! rates, usage counts), in this process or shared through Redis.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use tollgate_client::AuthError as SdkError;
use tollgate_client::limits::{Plans, RedisLimits};

use crate::authenticator::Principal;
use crate::bridge::{awaitable, block_on, guard};
use crate::convert::{self, counts_to_py};
use crate::errors::IntoPy;

/// Tool permissions, plan rates and usage counts for one service.
#[pyclass(frozen, module = "tollgate")]
pub struct ToolGate {
    pub(crate) inner: Arc<tollgate_client::limits::ToolGate>,
    /// Redis settings, when shared, for WebSocket connection counts.
    pub(crate) redis: Option<(String, String)>,
}

/// Plans from TOML text, or the built-in ones.
pub(crate) fn plans(toml: Option<&str>) -> Result<Plans, SdkError> {
    match toml {
        Some(text) => Plans::from_toml(text).map_err(SdkError::from),
        None => Ok(Plans::builtin()),
    }
}

fn gate(plans: Plans, redis: Option<(String, String)>) -> PyResult<ToolGate> {
    let inner = match &redis {
        Some((url, prefix)) => tollgate_client::limits::ToolGate::shared(
            plans,
            RedisLimits::new(url, prefix.clone()).py_err()?,
        ),
        None => tollgate_client::limits::ToolGate::new(plans),
    };
    Ok(ToolGate {
        inner: Arc::new(inner),
        redis,
    })
}

#[pymethods]
impl ToolGate {
    #[new]
    #[pyo3(signature = (plans = None, *, redis_url = None, redis_prefix = None))]
    fn new(
        plans: Option<&str>,
        redis_url: Option<String>,
        redis_prefix: Option<String>,
    ) -> PyResult<ToolGate> {
        guard(|| {
            let plans = self::plans(plans).py_err()?;
            let redis =
                redis_url.map(|url| (url, redis_prefix.unwrap_or_else(|| "tollgate".into())));
            // RedisLimits starts its connection task on the runtime.
            let _entered = crate::bridge::runtime().enter();
            gate(plans, redis)
        })
    }

    #[staticmethod]
    #[pyo3(signature = (service_name = "service", *, environ = None))]
    fn from_env(
        py: Python<'_>,
        service_name: &str,
        environ: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<ToolGate> {
        guard(|| {
            let config = convert::sdk_config(py, &[], environ)?;
            let plans = match &config.plans_file {
                Some(path) => {
                    let text = std::fs::read_to_string(path).map_err(|err| {
                        crate::errors::to_py(SdkError::Config(format!(
                            "cannot read the plans file {path}: {err}"
                        )))
                    })?;
                    self::plans(Some(&text)).py_err()?
                }
                None => Plans::builtin(),
            };
            let redis = match &config.redis_url {
                Some(url) => {
                    let url = url.expose_str().ok_or_else(|| {
                        crate::errors::to_py(SdkError::Config(
                            "TOLLGATE_REDIS_URL is not text".into(),
                        ))
                    })?;
                    Some((
                        url.to_owned(),
                        format!("{}:{service_name}", config.redis_namespace()),
                    ))
                }
                None => None,
            };
            let _entered = crate::bridge::runtime().enter();
            gate(plans, redis)
        })
    }

    #[getter]
    fn shared(&self) -> bool {
        self.redis.is_some()
    }

    fn plan_names(&self) -> Vec<String> {
        self.inner.plans().iter().map(|p| p.name.clone()).collect()
    }

    fn offers(&self, tool: &str) -> bool {
        self.inner.plans().iter().any(|plan| plan.allows_tool(tool))
    }

    fn admit(&self, py: Python<'_>, principal: &Principal, tool: &str) -> PyResult<()> {
        guard(|| {
            let (gate, principal) = (self.inner.clone(), principal.0.clone());
            block_on(
                py,
                async move { gate.admit(&principal, tool).await.py_err() },
            )
        })
    }

    fn admit_async<'py>(
        &self,
        py: Python<'py>,
        principal: &Principal,
        tool: String,
    ) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let (gate, principal) = (self.inner.clone(), principal.0.clone());
            awaitable(
                py,
                async move { gate.admit(&principal, &tool).await.py_err() },
            )
        })
    }

    fn usage_of<'py>(&self, py: Python<'py>, sub: &str) -> PyResult<Bound<'py, PyDict>> {
        guard(|| {
            let gate = self.inner.clone();
            let counts = block_on(py, async move { Ok(gate.usage_of(sub).await) })?;
            counts_to_py(py, &counts)
        })
    }

    fn usage_of_async<'py>(&self, py: Python<'py>, sub: String) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let gate = self.inner.clone();
            awaitable(py, async move { Ok(gate.usage_of(&sub).await) })
        })
    }

    fn usage_all<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guard(|| {
            let gate = self.inner.clone();
            let all = block_on(py, async move { Ok(gate.usage_all().await) })?;
            let dict = PyDict::new(py);
            for (user, counts) in &all {
                dict.set_item(user, counts_to_py(py, counts)?)?;
            }
            Ok(dict)
        })
    }

    fn usage_all_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let gate = self.inner.clone();
            awaitable(py, async move { Ok(gate.usage_all().await) })
        })
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}
