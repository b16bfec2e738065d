//! `ToolGate`: the SDK's `limits::ToolGate` (tool permissions, per-plan
//! rates, usage counts), in this process or shared through Redis, and with
//! the SDK's `UsageRecorder` (durable usage events at the token service)
//! when asked for: the recorder is the Rust one, nothing of it is Python.

use std::sync::Arc;

use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::time::Duration;
use tollgate_client::AuthError as SdkError;

use tollgate_client::limits::{Plans, RedisLimits, UsageRecorder, UsageRecorderBuilder};

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

fn gate(
    py: Python<'_>,
    plans: Plans,
    redis: Option<(String, String)>,
    usage: Option<UsageRecorderBuilder>,
    plan_changes: Option<&crate::authenticator::Authenticator>,
) -> PyResult<ToolGate> {
    let inner = match &redis {
        Some((url, prefix)) => tollgate_client::limits::ToolGate::shared(
            plans,
            RedisLimits::new(url, prefix.clone()).py_err()?,
        ),
        None => tollgate_client::limits::ToolGate::new(plans),
    };
    let inner = match plan_changes {
        Some(auth) => inner.follow_plan_changes(&auth.inner),
        None => inner,
    };
    let inner = match usage {
        Some(builder) => block_on(py, async move { inner.with_usage(builder).await.py_err() })?,
        None => inner,
    };
    Ok(ToolGate {
        inner: Arc::new(inner),
        redis,
    })
}

#[pymethods]
impl ToolGate {
    #[new]
    #[pyo3(signature = (plans = None, *, redis_url = None, redis_prefix = None, usage_tokens = None, usage_issuer = None, usage_spool = None, usage_spool_max = 16 * 1024 * 1024, usage_flush_interval = 1.0, authenticator = None))]
    #[allow(clippy::too_many_arguments, reason = "Python keyword arguments")]
    fn new(
        py: Python<'_>,
        plans: Option<&str>,
        redis_url: Option<String>,
        redis_prefix: Option<String>,
        usage_tokens: Option<PyRef<'_, crate::service::ServiceTokenSource>>,
        usage_issuer: Option<String>,
        usage_spool: Option<String>,
        usage_spool_max: u64,
        usage_flush_interval: f64,
        authenticator: Option<PyRef<'_, crate::authenticator::Authenticator>>,
    ) -> PyResult<ToolGate> {
        guard(|| {
            let plans = self::plans(plans).py_err()?;
            let redis =
                redis_url.map(|url| (url, redis_prefix.unwrap_or_else(|| "tollgate".into())));
            let usage = match (usage_tokens, usage_issuer) {
                (None, _) => None,
                (Some(tokens), Some(issuer)) => {
                    let mut builder = UsageRecorder::builder(tokens.inner.clone(), &issuer)
                        .flush_interval(Duration::from_secs_f64(
                            usage_flush_interval.clamp(0.001, 3600.0),
                        ));
                    if let Some(path) = usage_spool {
                        builder = builder.spool(path, usage_spool_max);
                    }
                    Some(builder)
                }
                (Some(_), None) => {
                    return Err(crate::errors::to_py(SdkError::Config(
                        "usage_tokens needs usage_issuer (the token service's URL)".into(),
                    )));
                }
            };
            // RedisLimits and the recorder start their tasks on the runtime.
            let _entered = crate::bridge::runtime().enter();
            gate(py, plans, redis, usage, authenticator.as_deref())
        })
    }

    #[staticmethod]
    #[pyo3(signature = (service_name = "service", *, environ = None, record_usage = false, authenticator = None))]
    fn from_env(
        py: Python<'_>,
        service_name: &str,
        environ: Option<&Bound<'_, PyAny>>,
        record_usage: bool,
        authenticator: Option<PyRef<'_, crate::authenticator::Authenticator>>,
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
            let usage = if record_usage {
                let tokens = block_on(py, async {
                    tollgate_client::ServiceTokenSource::from_config(&config)
                        .await
                        .py_err()
                })?;
                Some(UsageRecorder::builder(tokens, &config.issuer).settings(&config))
            } else {
                None
            };
            let _entered = crate::bridge::runtime().enter();
            gate(py, plans, redis, usage, authenticator.as_deref())
        })
    }

    /// Whether admitted calls are recorded as usage events.
    #[getter]
    fn records_usage(&self) -> bool {
        self.inner.recorder().is_some()
    }

    /// `sub`'s calls per tool recorded here and not yet stored by the token
    /// service (empty without a recorder).
    fn usage_pending_of<'py>(&self, py: Python<'py>, sub: &str) -> PyResult<Bound<'py, PyDict>> {
        guard(|| {
            let pending = self
                .inner
                .recorder()
                .map(|recorder| recorder.pending_of(sub))
                .unwrap_or_default();
            counts_to_py(py, &pending)
        })
    }

    /// Delivers what is queued and spooled now; true when nothing is left
    /// undelivered (true without a recorder).
    fn flush_usage(&self, py: Python<'_>) -> PyResult<bool> {
        guard(|| {
            let gate = self.inner.clone();
            block_on(py, async move {
                Ok(match gate.recorder() {
                    Some(recorder) => recorder.flush().await,
                    None => true,
                })
            })
        })
    }

    /// The async twin of `flush_usage`.
    fn flush_usage_async<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        guard(|| {
            let gate = self.inner.clone();
            awaitable(py, async move {
                Ok(match gate.recorder() {
                    Some(recorder) => recorder.flush().await,
                    None => true,
                })
            })
        })
    }

    /// The recorder's counters (empty without a recorder).
    fn usage_stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        guard(|| {
            let dict = PyDict::new(py);
            if let Some(recorder) = self.inner.recorder() {
                let stats = recorder.stats();
                for (name, value) in [
                    ("recorded", stats.recorded),
                    ("delivered", stats.delivered),
                    ("duplicates", stats.duplicates),
                    ("dropped", stats.dropped),
                    ("spooled", stats.spooled),
                    ("skipped_lines", stats.skipped_lines),
                ] {
                    dict.set_item(name, value)?;
                }
            }
            Ok(dict)
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
