//! `swin-serve classify`: send image files to a running server and print each result the lab's
//! way ([`super::output::classification_text`]).

use anyhow::bail;

use super::args::ClassifyArgs;
use super::output::{classification_text, print_stdout, printable, rpc_failed};
use crate::client::connection::{connect_classifier, ConnectionOptions};
use crate::proto;

/// Classes asked for at least (the lab prints top-5).
const LAB_TOP_K: u32 = 5;

/// `classify`: every image in turn; fails when any did (after trying them all).
pub async fn run_classify(args: ClassifyArgs) -> anyhow::Result<()> {
    let mut client = connect_classifier(&ConnectionOptions::from(&args.connection)).await?;
    // Ask for at least 5 classes, but never more than the model has.
    let num_classes = client
        .get_model_info(proto::GetModelInfoRequest {})
        .await
        .map_err(|s| rpc_failed("GetModelInfo", &s))?
        .into_inner()
        .num_classes;
    if args.top_k == 0 || args.top_k > num_classes {
        bail!("--top-k must be in 1..={num_classes} for this model");
    }
    let requested = args.top_k.max(LAB_TOP_K).min(num_classes);
    let mut failures = 0;
    for path in &args.images {
        let image = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{}: cannot read: {e}", path.display());
                failures += 1;
                continue;
            }
        };
        let request = proto::ClassifyRequest {
            image,
            top_k: requested,
            request_id: path.display().to_string(),
        };
        match client.classify(request).await {
            Ok(response) => print_stdout(&classification_text(
                &path.display().to_string(),
                &response.into_inner(),
                args.top_k,
            )),
            Err(status) => {
                eprintln!(
                    "{}: {:?}: {}",
                    path.display(),
                    status.code(),
                    printable(status.message())
                );
                failures += 1;
            }
        }
    }
    if failures > 0 {
        bail!("{failures} of {} images failed", args.images.len());
    }
    Ok(())
}
