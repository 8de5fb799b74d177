//! What every call passes through between its connection and its service, outermost first (the
//! order [`crate::server::lifecycle`] stacks them in):
//!
//! 1. [`calls_in_flight`]: the cap on calls in flight (`--max-in-flight`), before anything of the
//!    call is read;
//! 2. [`open_calls`]: the call marked open on its connection, for the idle timeout;
//! 3. [`message_arrival`]: the request body read under `--message-timeout` and charged to the
//!    memory budget while a message arrives;
//! 4. [`request_id`]: the call's id and trace span;
//! 5. [`deadline`]: the call's deadline (`grpc-timeout`, `--request-timeout`) and the bound on
//!    the whole call;
//! 6. then, per service, [`auth`]'s bearer-token interceptor (every service but health);
//! 7. and inside it, around the two inference services, [`admission_gate`]: the unary inference
//!    calls refused at their headers while the engine queue cannot take an image.
//!
//! Each layer is one concern, in a file of its own; [`holding_body`] is what the first two share to
//! keep their guard until the answer has been sent. The values the layers attach to a call (its
//! deadline, its id) are [`crate::server::call`]'s, so that the services read them without
//! importing a layer.

pub mod admission_gate;
pub mod auth;
pub mod calls_in_flight;
pub mod deadline;
pub mod holding_body;
pub mod message_arrival;
pub mod open_calls;
pub mod request_id;
