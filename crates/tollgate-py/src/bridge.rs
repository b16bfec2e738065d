//! Running the SDK's futures from Python: the tokio runtime, the panic
//! boundary, and awaitables that cost nothing when the answer is at hand.
//!
//! - [`block_on`]: a blocking call (the sync API). The GIL is released while
//!   the future runs on this thread; tokio's worker threads drive its I/O.
//!   [`block_on_at_hand`] and [`awaitable_at_hand`] first poll with the GIL
//!   held when the answer is expected from memory (a cached token).
//! - [`awaitable`]: the async API. The future is polled once, at once (GIL
//!   released): a cached token's judgement is ready then and comes back as a
//!   [`Ready`] awaitable, with no trip through the event loop. A future that
//!   must wait (introspection, a key fetch, Redis) moves to the tokio runtime,
//!   and `pyo3-async-runtimes` completes an asyncio future from there with
//!   `loop.call_soon_threadsafe`: the event loop is never blocked.
//! - [`guard`] and [`guarded`]: a Rust panic becomes `AuthError` with code
//!   `internal_error` instead of crossing into the interpreter.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::task::{Context, Poll, Waker};

use futures::FutureExt;
use pyo3::IntoPyObjectExt;
use pyo3::exceptions::{PyRuntimeError, PyStopIteration};
use pyo3::prelude::*;

use crate::errors;

/// The runtime every future of the extension runs on (worker threads start
/// on first use).
pub(crate) fn runtime() -> &'static tokio::runtime::Runtime {
    pyo3_async_runtimes::tokio::get_runtime()
}

/// Runs `f`; a panic becomes `AuthError("internal_error")`.
pub(crate) fn guard<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    std::panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err(errors::internal()))
}

/// `fut`, with a panic while polling it turned into
/// `AuthError("internal_error")`.
pub(crate) async fn guarded<T>(fut: impl Future<Output = PyResult<T>>) -> PyResult<T> {
    AssertUnwindSafe(fut)
        .catch_unwind()
        .await
        .unwrap_or_else(|_| Err(errors::internal()))
}

/// Runs `fut` to completion on this thread with the GIL released.
pub(crate) fn block_on<T: Send>(
    py: Python<'_>,
    fut: impl Future<Output = PyResult<T>> + Send,
) -> PyResult<T> {
    py.detach(|| runtime().block_on(guarded(fut)))
}

/// [`block_on`], except that an answer expected from memory (`at_hand`: a
/// cached token's judgement, a refusal known before any work) is first
/// polled once with the GIL held: releasing and retaking the GIL and
/// parking on the runtime would cost several times the judgement itself.
/// Should the future have to wait after all, it finishes as in
/// [`block_on`], GIL released.
pub(crate) fn block_on_at_hand<T: Send>(
    py: Python<'_>,
    fut: impl Future<Output = PyResult<T>> + Send,
    at_hand: bool,
) -> PyResult<T> {
    let mut fut = Box::pin(guarded(fut));
    if at_hand && let Poll::Ready(outcome) = poll_once(fut.as_mut()) {
        return outcome;
    }
    py.detach(|| runtime().block_on(fut))
}

/// `fut`'s outcome if one poll (GIL held, inside the runtime's context)
/// gives it, else `None` and `fut` is dropped: for a judgement expected
/// from memory, borrowing what it needs.
pub(crate) fn poll_now<F: Future>(fut: F) -> Option<F::Output> {
    let mut fut = std::pin::pin!(fut);
    match poll_once(fut.as_mut()) {
        Poll::Ready(outcome) => Some(outcome),
        Poll::Pending => None,
    }
}

/// Polls `fut` once, inside the runtime's context, with a waker that does
/// nothing (whoever polls it next registers its own).
fn poll_once<F: Future + ?Sized>(fut: std::pin::Pin<&mut F>) -> Poll<F::Output> {
    let _entered = runtime().enter();
    fut.poll(&mut Context::from_waker(Waker::noop()))
}

/// An awaitable for `fut` (see the module docs). `fut` must own what it
/// uses: it may outlive this call on the runtime.
pub(crate) fn awaitable<'py, T>(
    py: Python<'py>,
    fut: impl Future<Output = PyResult<T>> + Send + 'static,
) -> PyResult<Bound<'py, PyAny>>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    awaitable_at_hand(py, fut, false)
}

/// [`awaitable`], with the first poll made with the GIL held when the
/// answer is expected from memory (`at_hand`, as in [`block_on_at_hand`]).
pub(crate) fn awaitable_at_hand<'py, T>(
    py: Python<'py>,
    fut: impl Future<Output = PyResult<T>> + Send + 'static,
    at_hand: bool,
) -> PyResult<Bound<'py, PyAny>>
where
    T: for<'a> IntoPyObject<'a> + Send + 'static,
{
    let mut fut = Box::pin(guarded(fut));
    let polled = if at_hand {
        poll_once(fut.as_mut())
    } else {
        py.detach(|| poll_once(fut.as_mut()))
    };
    match polled {
        Poll::Ready(outcome) => {
            let outcome = outcome.and_then(|value| value.into_py_any(py));
            Ok(Bound::new(
                py,
                Ready {
                    outcome: Some(outcome),
                },
            )?
            .into_any())
        }
        // Polled with a waker that does nothing: the runtime polls it again
        // at once, registering its own.
        Poll::Pending => pyo3_async_runtimes::tokio::future_into_py(py, fut),
    }
}

/// An awaitable whose outcome is already known: awaiting it returns the
/// value (or raises the error) without suspending.
#[pyclass(module = "tollgate._native")]
pub struct Ready {
    outcome: Option<PyResult<Py<PyAny>>>,
}

#[pymethods]
impl Ready {
    fn __await__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&mut self) -> PyResult<Py<PyAny>> {
        match self.outcome.take() {
            Some(Ok(value)) => Err(PyStopIteration::new_err((value,))),
            Some(Err(err)) => Err(err),
            None => Err(PyRuntimeError::new_err(
                "cannot reuse an already awaited awaitable",
            )),
        }
    }

    #[pyo3(signature = (_value))]
    fn send(&mut self, _value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.__next__()
    }

    #[pyo3(signature = (error, _value = None, _traceback = None))]
    fn throw(
        &mut self,
        error: &Bound<'_, PyAny>,
        _value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self.outcome = None;
        Err(PyErr::from_value(error.clone()))
    }

    fn close(&mut self) {
        self.outcome = None;
    }
}

/// Test support, not API: panics inside the boundary (at once, or in an
/// awaitable that first waits on the runtime), so the suites can check
/// that no panic reaches the interpreter.
#[pyfunction]
#[allow(clippy::panic)]
#[pyo3(name = "_panic_at_the_boundary", signature = (awaitable_after_waiting = false))]
pub(crate) fn panic_at_the_boundary(
    py: Python<'_>,
    awaitable_after_waiting: bool,
) -> PyResult<Bound<'_, PyAny>> {
    guard(|| {
        if !awaitable_after_waiting {
            panic!("a deliberate panic (test support)");
        }
        awaitable(py, async move {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            if awaitable_after_waiting {
                panic!("a deliberate panic on the runtime (test support)");
            }
            Ok(())
        })
    })
}
