//! What is recorded of every answered call: `swin_requests_total` and
//! `swin_request_duration_seconds`, the model's statistics for an inference call, and one
//! access-log line (for a refusal for capacity, at most one a second: [`super::refusal_log`]).

use std::time::Instant;

use tonic::Status;

use super::state::Pipeline;
use crate::server::log_text::untrusted;
use crate::server::metrics::record_call;
use crate::server::status::code_name;

/// One call, as [`Pipeline::recorded`] counts and logs it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The RPC's name (a metrics label).
    pub rpc: &'static str,
    /// Whether it is an inference request (counted in the model's statistics).
    pub inference: bool,
    /// When it arrived.
    pub started: Instant,
    /// Its request id (body id if it has one, else `x-request-id`).
    pub request_id: &'a str,
}

/// What the access log says of an answer (0 = not applicable).
#[derive(Debug, Clone, Copy, Default)]
pub struct CallSummary {
    /// Images classified.
    pub images: usize,
    /// Engine batch size (of the first image).
    pub batch_size: usize,
    /// Decoded size of the (first) image.
    pub width: u32,
    pub height: u32,
}

impl Pipeline {
    /// Count, time and log an answered call: `swin_requests_total` and
    /// `swin_request_duration_seconds`; an `inference` call also counts in the model's
    /// [`crate::server::statistics::InferenceStats`]; and one access-log line at `info` (target
    /// `swin_serve::access`): RPC, request id, code, duration, and what `summary` says of the answer.
    /// A refusal for capacity (UNAVAILABLE, RESOURCE_EXHAUSTED) gets its line only when none was
    /// written in the last [`super::refusal_log::REFUSAL_LOG_INTERVAL`], with
    /// `refusals_not_logged` saying how many were left out since.
    pub fn recorded<T>(
        &self,
        call: Call<'_>,
        result: Result<T, Status>,
        summary: impl FnOnce(&T) -> CallSummary,
    ) -> Result<T, Status> {
        let code = match &result {
            Ok(_) => tonic::Code::Ok,
            Err(s) => s.code(),
        };
        let elapsed = call.started.elapsed();
        record_call(call.rpc, code, elapsed);
        if call.inference {
            if let Some(model) = self.slot.get() {
                model.stats.record_request(result.is_ok(), elapsed);
            }
        }
        // A refusal for capacity is counted above; its line only if none was written in the last
        // second (then carrying how many were not).
        let refusals_not_logged = match code {
            tonic::Code::Unavailable | tonic::Code::ResourceExhausted => {
                match self.refusal_log.refusal(call.started + elapsed) {
                    Some(not_logged) => Some(not_logged),
                    None => return result,
                }
            }
            _ => None,
        };
        let summary = result.as_ref().map(summary).unwrap_or_default();
        let error = result
            .as_ref()
            .err()
            .map(|s| untrusted(s.message()))
            .unwrap_or_default();
        tracing::info!(
            target: "swin_serve::access",
            rpc = call.rpc,
            request_id = %untrusted(call.request_id),
            code = code_name(code),
            duration_ms = elapsed.as_secs_f64() * 1e3,
            images = summary.images,
            batch = summary.batch_size,
            width = summary.width,
            height = summary.height,
            error,
            refusals_not_logged,
            "call"
        );
        result
    }
}
