//! Conversions at the edge: untrusted Python values become typed Rust
//! values once (tokens, header lists, settings), and JSON values become
//! Python objects.

use std::collections::BTreeMap;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString};
use serde_json::Value;
use tollgate_client::AuthError as SdkError;
use tollgate_core::config::{Component, Config, ConfigBuilder};
use tollgate_core::{Error as CoreError, MAX_TOKEN_BYTES};

/// A token argument as text. `None` is no token; `str` and UTF-8 `bytes`
/// are tokens; anything else, text that cannot be UTF-8 (lone surrogates)
/// and invalid UTF-8 are malformed. Over 8 KiB is refused before any
/// copy or decoding.
pub(crate) fn token(value: Option<&Bound<'_, PyAny>>) -> Result<String, SdkError> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Err(SdkError::MissingToken);
    };
    if let Ok(text) = value.cast::<PyString>() {
        // A character is at least one byte: more characters than the limit
        // is too large whatever the encoding.
        if text.len().map_or(true, |chars| chars > MAX_TOKEN_BYTES) {
            return Err(SdkError::Token(CoreError::TooLarge));
        }
        return text
            .to_cow()
            .map(|t| t.into_owned())
            .map_err(|_| SdkError::Token(CoreError::Malformed("the token is not UTF-8 text")));
    }
    if let Ok(bytes) = value.cast::<PyBytes>() {
        let bytes = bytes.as_bytes();
        if bytes.len() > MAX_TOKEN_BYTES {
            return Err(SdkError::Token(CoreError::TooLarge));
        }
        return std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| SdkError::Token(CoreError::Malformed("the token is not UTF-8 text")));
    }
    Err(SdkError::Token(CoreError::Malformed(
        "the token is not a str or bytes",
    )))
}

/// The `Authorization` values of an ASGI header list (`[(name, value)]`,
/// names lower-case bytes), in order.
pub(crate) fn header_values(headers: &Bound<'_, PyAny>, wanted: &[u8]) -> PyResult<Vec<Vec<u8>>> {
    let mut values = Vec::new();
    for pair in headers.try_iter()? {
        let pair = pair?;
        let (name, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair.extract()?;
        if bytes_of(&name)?.eq_ignore_ascii_case(wanted) {
            values.push(bytes_of(&value)?);
        }
    }
    Ok(values)
}

/// An ASGI header list as an `http` header map (names and values that
/// `http` refuses are dropped: they cannot be what a rule looks at).
pub(crate) fn header_map(headers: &Bound<'_, PyAny>) -> PyResult<http::HeaderMap> {
    let mut map = http::HeaderMap::new();
    for pair in headers.try_iter()? {
        let (name, value): (Bound<'_, PyAny>, Bound<'_, PyAny>) = pair?.extract()?;
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(&bytes_of(&name)?),
            http::HeaderValue::from_bytes(&bytes_of(&value)?),
        ) else {
            continue;
        };
        map.append(name, value);
    }
    Ok(map)
}

pub(crate) fn bytes_of(value: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().to_vec());
    }
    if let Ok(text) = value.cast::<PyString>() {
        return Ok(text.to_cow()?.as_bytes().to_vec());
    }
    value.extract::<Vec<u8>>()
}

/// The SDK configuration through the core builder (`Component::Sdk`):
/// `flags` (keyword arguments, canonical names) over `environ` (a mapping,
/// or the process environment when `None`). Warnings go to the `tollgate`
/// logger; errors are `AuthError("invalid_config")`, one per line.
pub(crate) fn sdk_config(
    py: Python<'_>,
    flags: &[(&str, Option<String>)],
    environ: Option<&Bound<'_, PyAny>>,
) -> PyResult<Config> {
    let vars: Vec<(String, String)> = match environ {
        Some(mapping) => mapping
            .call_method0("items")?
            .try_iter()?
            .map(|item| item?.extract::<(String, String)>())
            .collect::<PyResult<_>>()?,
        // Variables that are not UTF-8 cannot be settings.
        None => std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect(),
    };
    let mut builder = ConfigBuilder::new(Component::Sdk).env(vars);
    for (name, value) in flags {
        if let Some(value) = value {
            builder = builder.flag(*name, value.clone());
        }
    }
    let (config, warnings) = builder
        .build()
        .into_config()
        .map_err(|err| crate::errors::to_py(SdkError::from(err)))?;
    if !warnings.is_empty() {
        let logger = py
            .import("logging")?
            .call_method1("getLogger", ("tollgate",))?;
        for warning in warnings {
            logger.call_method1("warning", (warning.to_string(),))?;
        }
    }
    Ok(config)
}

/// A JSON value as Python objects (dict, list, str, int, float, bool,
/// None).
pub(crate) fn json_to_py<'py>(py: Python<'py>, value: &Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        Value::Null => py.None().into_bound(py),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => PyInt::new(py, i).into_any(),
            (None, Some(u)) => PyInt::new(py, u).into_any(),
            _ => PyFloat::new(py, n.as_f64().unwrap_or(f64::NAN)).into_any(),
        },
        Value::String(s) => PyString::new(py, s).into_any(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(json_to_py(py, item)?)?;
            }
            list.into_any()
        }
        Value::Object(members) => {
            let dict = PyDict::new(py);
            for (key, item) in members {
                dict.set_item(key, json_to_py(py, item)?)?;
            }
            dict.into_any()
        }
    })
}

/// Usage counts (tool → calls) as a dict.
pub(crate) fn counts_to_py<'py>(
    py: Python<'py>,
    counts: &BTreeMap<String, u64>,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (tool, calls) in counts {
        dict.set_item(tool, calls)?;
    }
    Ok(dict)
}

/// A JSON message from Python: a `str` of JSON, or an object that
/// `json.dumps` can write.
pub(crate) fn json_from_py(py: Python<'_>, message: &Bound<'_, PyAny>) -> PyResult<Value> {
    let text: String = if let Ok(text) = message.cast::<PyString>() {
        text.to_cow()?.into_owned()
    } else {
        py.import("json")?
            .call_method1("dumps", (message,))?
            .extract()?
    };
    serde_json::from_str(&text)
        .map_err(|err| pyo3::exceptions::PyValueError::new_err(format!("not JSON: {err}")))
}
