//! Filling an engine's input: [`fill_input`] puts the images of a batch into the first rows of the
//! input buffer, copying queued tensors and running deferred preparations on the engine's own
//! threads.

use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::time::Instant;

use super::error::{panic_message, PrepareError, PreparePanicked, SchedulerError};
use super::job::{Job, QueuedImage};
use crate::engine::Engine;

/// Put the images of `batch` into the first rows of `input`, in order: copy the queued tensors and
/// run the deferred preparations, all at once on `engine`'s threads. A job whose preparation fails
/// (or panics) is answered [`SchedulerError::Prepare`] and leaves the batch; the rows of the jobs
/// after it move up so the batch stays contiguous.
pub(super) fn fill_input(
    engine: &dyn Engine,
    batch: &mut Vec<Job>,
    input: &mut [f32],
    image_len: usize,
) {
    let failures = prepare_rows(engine, batch, input, image_len);
    let mut kept = 0;
    for (i, (job, failed)) in std::mem::take(batch).into_iter().zip(failures).enumerate() {
        match failed {
            None => {
                if kept != i {
                    input.copy_within(i * image_len..(i + 1) * image_len, kept * image_len);
                }
                kept += 1;
                batch.push(job);
            }
            // A bad image is the caller's error, not the engine's (not counted in `images_failed`).
            Some(err) => {
                let _ = job.reply.send(Err(SchedulerError::Prepare(err)));
            }
        }
    }
}

/// Row `i` of `input` gets the image of `batch[i]`, every row by one task on `engine`'s threads;
/// returns, per job, why its preparation failed (`None`: its row is ready).
fn prepare_rows(
    engine: &dyn Engine,
    batch: &mut [Job],
    input: &mut [f32],
    image_len: usize,
) -> Vec<Option<PrepareError>> {
    /// One job and its row, with what went wrong preparing it.
    struct Cell<'a> {
        row: &'a mut [f32],
        job: &'a mut Job,
        failed: Option<PrepareError>,
    }
    let n = batch.len();
    let cells: Vec<Mutex<Cell<'_>>> = input[..n * image_len]
        .chunks_exact_mut(image_len)
        .zip(batch.iter_mut())
        .map(|(row, job)| {
            Mutex::new(Cell {
                row,
                job,
                failed: None,
            })
        })
        .collect();
    engine.run_on_engine_threads(n, &|i| {
        let mut guard = cells[i].lock().unwrap_or_else(|p| p.into_inner());
        let Cell { row, job, failed } = &mut *guard;
        *failed = fill_row(job, row).err();
    });
    cells
        .into_iter()
        .map(|cell| cell.into_inner().unwrap_or_else(|p| p.into_inner()).failed)
        .collect()
}

/// Copy `job`'s tensor into `row`, or run its preparation there (timed, in a `preprocess` span
/// under the request's, a panic caught as an error).
fn fill_row(job: &mut Job, row: &mut [f32]) -> Result<(), PrepareError> {
    match std::mem::replace(&mut job.image, QueuedImage::Tensor(Vec::new())) {
        QueuedImage::Tensor(image) => row.copy_from_slice(&image),
        QueuedImage::Deferred(prepare) => {
            let _span = tracing::info_span!(parent: &job.span, "preprocess").entered();
            let started = Instant::now();
            match std::panic::catch_unwind(AssertUnwindSafe(|| prepare(row))) {
                Ok(Ok(size)) => {
                    job.decoded_size = Some(size);
                    job.prepare_time = started.elapsed();
                }
                Ok(Err(err)) => return Err(err),
                Err(panic) => return Err(Box::new(PreparePanicked(panic_message(&*panic)))),
            }
        }
    }
    Ok(())
}
