//! What every call carries besides its message: its deadline and its id. Layers attach them when
//! the call arrives ([`crate::server::layers`]); the services and the pipeline read them from the
//! request's extensions. Plain values with no tower or service code, so that both sides import them
//! and neither imports the other.

pub mod deadline;
pub mod request_id;
