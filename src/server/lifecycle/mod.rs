//! The server's life, from bind to exit.
//!
//! 1. **Start** ([`serve`]): everything that can refuse to start is checked first — the metrics
//!    endpoint, the token file, reflection, the TLS files, the health port ([`health_port`]) —
//!    and stops the server with a [`ServerError`]. The listener was bound before
//!    ([`crate::server::bind`]), so clients can connect at once.
//! 2. **Load** ([`loading`]): the model is built on a blocking thread ([`model_loader`]'s
//!    [`load_serving_model`] for the binary) while health answers NOT_SERVING and Classify
//!    UNAVAILABLE; then the memory budget is fixed, health turns SERVING for `""` and
//!    `swin.v1.Classifier`, and the engine watchdog ([`watchdog`]) turns readiness (and, for a
//!    hung engine, liveness) NOT_SERVING while the engine is hung or failing.
//! 3. **Serve** ([`run`], [`router`]): the services behind the layers, on plaintext or TLS
//!    connections.
//! 4. **Drain** ([`drain`]): on the shutdown signal ([`shutdown_signal`]) health turns NOT_SERVING
//!    again (so load balancers stop routing) and the server keeps answering for the drain delay;
//!    then health Watch streams are ended and new connections are refused.
//! 5. **Shut down** ([`shutdown`]): in-flight requests finish before [`serve`] returns, or are
//!    closed once the shutdown timeout has passed: a client that holds a stream open cannot keep
//!    the process alive.

pub mod drain;
pub mod health_port;
pub mod loading;
pub mod model_loader;
pub mod model_metadata;
pub mod router;
pub mod run;
pub mod server_error;
pub mod shutdown;
pub mod watchdog;

pub use model_loader::{
    check_model_name, load_serving_model, serving_model_from, ModelOptions, MODEL_NAME_MAX_CHARS,
};
pub use run::serve;
pub use server_error::ServerError;
pub use shutdown::shutdown_signal;
