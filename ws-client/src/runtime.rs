//! What the client needs of its runtime, for each target: tokio natively, the browser's event loop on
//! `wasm32` (tasks on its microtask queue, timers from `setTimeout`, randomness from `Math.random`).

use std::future::Future;
use std::time::Duration;

/// `Send` where tasks can move between threads (native), nothing in the browser, where they cannot and
/// where the application's futures may hold JavaScript values.
#[cfg(not(target_arch = "wasm32"))]
pub trait MaybeSend: Send {}
#[cfg(not(target_arch = "wasm32"))]
impl<T: Send> MaybeSend for T {}

/// `Send` where tasks can move between threads (native), nothing in the browser, where they cannot and
/// where the application's futures may hold JavaScript values.
#[cfg(target_arch = "wasm32")]
pub trait MaybeSend {}
#[cfg(target_arch = "wasm32")]
impl<T> MaybeSend for T {}

/// Runs `task` in the background.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn spawn(task: impl Future<Output = ()> + Send + 'static) {
    tokio::spawn(task);
}

/// Runs `task` in the background.
#[cfg(target_arch = "wasm32")]
pub(crate) fn spawn(task: impl Future<Output = ()> + 'static) {
    wasm_bindgen_futures::spawn_local(task);
}

/// Waits `delay`.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) async fn sleep(delay: Duration) {
    tokio::time::sleep(delay).await;
}

/// Waits `delay`.
#[cfg(target_arch = "wasm32")]
pub(crate) async fn sleep(delay: Duration) {
    let ms = u32::try_from(delay.as_millis()).unwrap_or(u32::MAX);
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

/// `future`'s output, or `None` when `limit` passed first (the future is dropped then).
pub(crate) async fn timeout<F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    tokio::select! {
        output = future => Some(output),
        () = sleep(limit) => None,
    }
}

/// Milliseconds on a clock that does not go back within a connection's life.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn now_ms() -> f64 {
    use std::sync::OnceLock;
    use std::time::Instant;
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_secs_f64() * 1000.0
}

/// Milliseconds on a clock that does not go back within a connection's life.
#[cfg(target_arch = "wasm32")]
pub(crate) fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// A uniform number in `[0, 1)`.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) fn random() -> f64 {
    rand::random::<f64>()
}

/// A uniform number in `[0, 1)`.
#[cfg(target_arch = "wasm32")]
pub(crate) fn random() -> f64 {
    js_sys::Math::random()
}
