//! ClassifyBatch: every image of the call through the pipeline at once, answered per entry.

use std::sync::Arc;

use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use super::classify::{classify_one, error_message};
use crate::proto;
use crate::server::call::deadline::{check_deadline, deadline_of, within_deadline};
use crate::server::pipeline::{AbortOnDrop, Pipeline};
use crate::server::status::code_name;

/// A ClassifyBatch call: at most `--max-batch-images` entries, each answered with its result or
/// its error; the call as a whole answers DEADLINE_EXCEEDED when its deadline passes first.
pub async fn classify_batch_call(
    pipeline: &Pipeline,
    request: Request<proto::ClassifyBatchRequest>,
) -> Result<Response<proto::ClassifyBatchResponse>, Status> {
    let model = pipeline.model()?;
    let deadline = deadline_of(&request);
    check_deadline(deadline, "before decoding")?;
    let requests = request.into_inner().requests;
    let max_batch_images = pipeline.config().max_batch_images;
    if requests.len() > max_batch_images {
        return Err(Status::invalid_argument(format!(
            "ClassifyBatch carries {} images; the limit is {} per call",
            requests.len(),
            max_batch_images
        )));
    }
    // All entries go to the pool at once so that free instances batch them; each carries the
    // call's deadline. If the caller goes away or the deadline passes before every entry is
    // answered, dropping the guard aborts the entries still running (and the call as a whole
    // answers DEADLINE_EXCEEDED: no partial results).
    let mut tasks = AbortOnDrop(
        requests
            .into_iter()
            .map(|r| {
                tokio::spawn(
                    classify_one(pipeline.clone(), Arc::clone(&model), r, deadline)
                        .in_current_span(),
                )
            })
            .collect(),
    );
    let results = within_deadline(deadline, collect_results(&mut tasks)).await?;
    Ok(Response::new(proto::ClassifyBatchResponse {
        results,
        model: model.info.model.clone(),
    }))
}

/// Each entry's outcome, in request order.
async fn collect_results(
    tasks: &mut AbortOnDrop<Result<proto::ClassifyResponse, Status>>,
) -> Result<Vec<proto::ClassifyResult>, Status> {
    let mut results = Vec::with_capacity(tasks.0.len());
    for (index, task) in tasks.0.iter_mut().enumerate() {
        let outcome = match task.await {
            Ok(Ok(response)) => proto::classify_result::Outcome::Response(response),
            Ok(Err(status)) => proto::classify_result::Outcome::Error(error_message(&status)),
            Err(join) => proto::classify_result::Outcome::Error(proto::Error {
                code: tonic::Code::Internal as i32,
                code_name: code_name(tonic::Code::Internal).to_string(),
                message: format!("classification task failed: {join}"),
            }),
        };
        results.push(proto::ClassifyResult {
            index: index as u32,
            outcome: Some(outcome),
        });
    }
    Ok(results)
}
