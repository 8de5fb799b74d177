//! Unit tests of the engine pool, on [`FakeEngine`]s.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::engine::fake::{self, FakeControls, FakeEngine};
use crate::engine::EngineError;
use crate::scheduler::{
    DecodedSize, EngineHealth, EnginePool, Inference, Prepare, QueueSlot, SchedulerError,
    FAILING_AFTER_BATCHES,
};

const SIDE: usize = 2;
const IMAGE_LEN: usize = 3 * SIDE * SIDE;
const CLASSES: usize = 3;
const PANIC_MARKER: f32 = -999.0;

/// The engine of these tests: logits[c] = first input value · (c + 1), batches of up to 4,
/// `delay` per batch, a panic on the marker input.
fn engine(delay: Duration) -> FakeEngine {
    FakeEngine::new(fake::description(SIDE, CLASSES, 4))
        .with_delay(delay)
        .panicking_on(PANIC_MARKER)
}

fn image(v: f32) -> Vec<f32> {
    vec![v; IMAGE_LEN]
}

/// A pool of `instances` [`engine`]s sharing one set of controls (gate closed when `gated`).
fn pool(
    instances: usize,
    capacity: usize,
    delay: Duration,
    gated: bool,
) -> (EnginePool, Arc<FakeControls>) {
    let engine = if gated {
        engine(delay).gated()
    } else {
        engine(delay)
    };
    (
        EnginePool::new(engine.instances(instances), capacity),
        engine.controls(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_image_gets_its_own_logits_and_queued_images_are_batched() {
    let (pool, controls) = pool(1, 64, Duration::from_millis(30), false);
    let pool = Arc::new(pool);
    let mut tasks = Vec::new();
    for i in 0..10 {
        let p = Arc::clone(&pool);
        tasks.push(tokio::spawn(async move {
            (i, p.infer(image(i as f32), None).await)
        }));
    }
    for t in tasks {
        let (i, r) = t.await.unwrap();
        let r = r.unwrap();
        assert_eq!(r.logits, vec![i as f32, 2.0 * i as f32, 3.0 * i as f32]);
        assert!(r.batch_size >= 1 && r.batch_size <= 4);
    }
    let b = controls.batches();
    assert_eq!(b.iter().sum::<usize>(), 10);
    assert!(b.iter().any(|&n| n > 1), "no batching happened: {b:?}");
    assert!(b.iter().all(|&n| n <= 4), "max_batch exceeded: {b:?}");
    assert_eq!(pool.stats().images_done.load(Ordering::Relaxed), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_whose_estimated_wait_is_too_long_are_refused_at_once() {
    // One instance taking ≥ 100 ms an image; refuse beyond an estimated 250 ms wait.
    let (pool, _) = pool(1, 64, Duration::from_millis(100), false);
    let pool = pool.with_max_queue_wait(Some(Duration::from_millis(250)));
    // Nothing has run yet: no estimate, nothing refused.
    assert_eq!(pool.estimated_queue_wait(), Duration::ZERO);
    pool.infer(image(1.0), None).await.unwrap();
    let per_image = pool.stats().engine_ns_per_image.load(Ordering::Relaxed);
    assert!(per_image >= 100_000_000, "{per_image} ns");
    // Admitted images that no instance has taken yet (held slots) are what an image waits for.
    let first = pool.reserve().unwrap();
    let second = pool.reserve().unwrap(); // 1 ahead: ~100 ms
    let third = pool.reserve().unwrap(); // 2 ahead: ~200 ms
    let refused = pool.reserve(); // 3 ahead: ≥ 300 ms > 250 ms
    match refused {
        Err(SchedulerError::QueueWaitTooLong {
            ahead: 3,
            estimated,
            limit,
        }) => {
            assert!(estimated >= Duration::from_millis(300), "{estimated:?}");
            assert_eq!(limit, Duration::from_millis(250));
        }
        other => panic!("expected QueueWaitTooLong, got {other:?}"),
    }
    assert_eq!(pool.stats().images_rejected.load(Ordering::Relaxed), 1);
    drop((second, third));
    assert!(pool.reserve().is_ok(), "1 ahead again: admitted");
    drop(first);
    // Without a limit only the capacity counts.
    let (unlimited, _) = pool_with_run(Duration::from_millis(100)).await;
    let held: Vec<_> = (0..10).map(|_| unlimited.reserve().unwrap()).collect();
    assert_eq!(held.len(), 10);
}

async fn pool_with_run(delay: Duration) -> (EnginePool, Arc<FakeControls>) {
    let (pool, controls) = pool(1, 64, delay, false);
    let pool = pool.with_max_queue_wait(None);
    pool.infer(image(1.0), None).await.unwrap();
    (pool, controls)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_is_refused_and_cancelled_work_is_dropped() {
    let (pool, controls) = pool(1, 1, Duration::ZERO, true);
    let pool = Arc::new(pool);
    // First image: taken by the worker, which then blocks on the gate.
    let p = Arc::clone(&pool);
    let first = tokio::spawn(async move { p.infer(image(1.0), None).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Second: fills the queue (capacity 1); its caller goes away.
    let p = Arc::clone(&pool);
    let cancelled = tokio::spawn(async move { p.infer(image(2.0), None).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Third: refused.
    let third = pool.infer(image(3.0), None).await;
    assert!(
        matches!(third, Err(SchedulerError::QueueFull { capacity: 1 })),
        "{third:?}"
    );
    cancelled.abort();
    let _ = cancelled.await;
    controls.open();
    assert_eq!(first.await.unwrap().unwrap().logits[0], 1.0);
    // The worker drops the cancelled image without running it (wait until it got to it) ...
    let deadline = Instant::now() + Duration::from_secs(10);
    while pool.stats().images_cancelled.load(Ordering::Relaxed) == 0 {
        assert!(
            Instant::now() < deadline,
            "cancelled image was never dropped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // ... and keeps working; the cancelled image never reached the engine.
    assert_eq!(pool.infer(image(4.0), None).await.unwrap().logits[2], 12.0);
    assert_eq!(pool.stats().images_cancelled.load(Ordering::Relaxed), 1);
    assert_eq!(controls.batches().iter().sum::<usize>(), 2);
    assert_eq!(pool.stats().images_rejected.load(Ordering::Relaxed), 1);
}

/// A one-instance pool (max batch 4, 8 slots) whose engine holds a first image (value 1.0) at
/// a closed gate; returns once the engine has it.
async fn pool_holding_a_first_image() -> (
    Arc<EnginePool>,
    Arc<FakeControls>,
    tokio::task::JoinHandle<Result<Inference, SchedulerError>>,
) {
    let (pool, controls) = pool(1, 8, Duration::ZERO, true);
    let pool = Arc::new(pool);
    let p = Arc::clone(&pool);
    let first = tokio::spawn(async move { p.infer(image(1.0), None).await });
    controls.wait_for_batches(1).await;
    (pool, controls, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_deadline_passes_in_the_queue_never_reaches_the_engine() {
    // First image: handed to the engine, which holds it at the gate.
    let (pool, controls, first) = pool_holding_a_first_image().await;
    // Second image, with a deadline: polled once so that it is queued now, behind the first;
    // its caller keeps waiting for the answer (not a cancellation).
    let deadline = Instant::now() + Duration::from_millis(300);
    use std::future::Future as _;
    let mut late = Box::pin(pool.infer(image(2.0), Some(deadline)));
    std::future::poll_fn(|cx| {
        assert!(late.as_mut().poll(cx).is_pending(), "not queued");
        std::task::Poll::Ready(())
    })
    .await;
    assert_eq!(pool.stats().images_in_pool.load(Ordering::Relaxed), 2);
    // The deadline passes while it waits; then the engine is released.
    while Instant::now() <= deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    controls.open();
    assert_eq!(first.await.unwrap().unwrap().logits[0], 1.0);
    let late = tokio::time::timeout(Duration::from_secs(30), late)
        .await
        .expect("the expired image was never answered");
    assert!(
        matches!(late, Err(SchedulerError::DeadlineExceeded)),
        "{late:?}"
    );
    // The engine only ever saw the first image; the worker keeps serving, and a generous
    // deadline is met.
    assert_eq!(controls.batches(), vec![1]);
    let generous = Instant::now() + Duration::from_secs(600);
    let r = pool.infer(image(3.0), Some(generous)).await.unwrap();
    assert_eq!(r.logits[0], 3.0);
    assert_eq!(controls.batches(), vec![1, 1]);
    // Already expired: refused before the queue.
    let refused = pool.infer(image(4.0), Some(Instant::now())).await;
    assert!(
        matches!(refused, Err(SchedulerError::DeadlineExceeded)),
        "{refused:?}"
    );
    assert_eq!(controls.batches(), vec![1, 1]);
    let stats = pool.stats();
    assert_eq!(stats.images_expired.load(Ordering::Relaxed), 2);
    assert_eq!(stats.images_cancelled.load(Ordering::Relaxed), 0);
    assert_eq!(stats.images_done.load(Ordering::Relaxed), 2);
    assert_eq!(stats.images_in_pool.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_panic_becomes_an_error_and_the_worker_survives() {
    let (pool, _) = pool(1, 8, Duration::ZERO, false);
    let err = pool.infer(image(PANIC_MARKER), None).await.unwrap_err();
    match err {
        SchedulerError::Engine(EngineError::Backend { message, .. }) => {
            assert!(message.contains("panicked"), "{message}")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(pool.infer(image(5.0), None).await.unwrap().logits[1], 10.0);
    assert_eq!(pool.stats().images_failed.load(Ordering::Relaxed), 1);
}

/// A deferred image: fills its row with `v` and reports a `v`×`v` image.
fn prepared(v: f32) -> Prepare {
    Box::new(move |row: &mut [f32]| {
        assert_eq!(row.len(), IMAGE_LEN, "a whole row");
        row.fill(v);
        Ok(DecodedSize {
            width: v as u32,
            height: v as u32,
        })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_images_are_prepared_by_the_worker_and_failures_leave_the_batch() {
    // The engine holds the first image at the gate, so the next four queue up as one batch.
    let (pool, controls, first) = pool_holding_a_first_image().await;
    let cancelled_ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let ran = Arc::clone(&cancelled_ran);
    let cancelled: Prepare = Box::new(move |row: &mut [f32]| {
        ran.store(true, Ordering::SeqCst);
        row.fill(0.0);
        Ok(DecodedSize::default())
    });
    let failing: Prepare = Box::new(|_row: &mut [f32]| Err("not an image".into()));
    let panicking: Prepare = Box::new(|_row: &mut [f32]| panic!("decoder bug"));
    let slots: Vec<QueueSlot> = (0..5).map(|_| pool.reserve().unwrap()).collect();
    let mut slots = slots.into_iter();
    let mut queued: Vec<std::pin::Pin<Box<dyn std::future::Future<Output = _> + Send>>> = vec![
        Box::pin(pool.infer_prepared_in(slots.next().unwrap(), prepared(2.0), None)),
        Box::pin(pool.infer_prepared_in(slots.next().unwrap(), failing, None)),
        Box::pin(pool.infer_prepared_in(slots.next().unwrap(), cancelled, None)),
        Box::pin(pool.infer_in(slots.next().unwrap(), image(4.0), None)),
        // Fifth: past the engine's max batch (4), so in a batch of its own.
        Box::pin(pool.infer_prepared_in(slots.next().unwrap(), panicking, None)),
    ];
    // Poll each once so that all are queued, in this order, behind the first.
    std::future::poll_fn(|cx| {
        for f in &mut queued {
            assert!(f.as_mut().poll(cx).is_pending(), "not queued");
        }
        std::task::Poll::Ready(())
    })
    .await;
    // The caller of the third goes away before the worker takes it.
    drop(queued.remove(2));
    controls.open();
    assert_eq!(first.await.unwrap().unwrap().logits[0], 1.0);
    let mut answers = Vec::new();
    for f in queued {
        answers.push(
            tokio::time::timeout(Duration::from_secs(30), f)
                .await
                .expect("answered"),
        );
    }
    // The second batch the engine ran held only the two good images, in order: the tensor's row
    // moved up next to the prepared one. The third (the panicking image alone) never reached it.
    assert_eq!(controls.batches(), vec![1, 2]);
    let good = answers[0].as_ref().unwrap();
    assert_eq!(good.logits, vec![2.0, 4.0, 6.0]);
    assert_eq!(good.batch_size, 2);
    assert_eq!(
        good.decoded_size,
        Some(DecodedSize {
            width: 2,
            height: 2
        })
    );
    assert!(good.prepare_time > Duration::ZERO);
    let tensor = answers[2].as_ref().unwrap();
    assert_eq!(tensor.logits, vec![4.0, 8.0, 12.0]);
    assert_eq!(tensor.decoded_size, None);
    match &answers[1] {
        Err(SchedulerError::Prepare(e)) => assert_eq!(e.to_string(), "not an image"),
        other => panic!("unexpected {other:?}"),
    }
    match &answers[3] {
        Err(SchedulerError::Prepare(e)) => {
            assert!(e.to_string().contains("panicked: decoder bug"), "{e}")
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(
        !cancelled_ran.load(Ordering::SeqCst),
        "a cancelled image was prepared"
    );
    let stats = pool.stats();
    assert_eq!(stats.images_cancelled.load(Ordering::Relaxed), 1);
    assert_eq!(stats.images_done.load(Ordering::Relaxed), 3);
    assert_eq!(stats.images_failed.load(Ordering::Relaxed), 0);
    assert_eq!(pool.slots_in_use(), 0);
    // The worker keeps serving.
    let slot = pool.reserve().unwrap();
    let again = pool
        .infer_prepared_in(slot, prepared(5.0), None)
        .await
        .unwrap();
    assert_eq!(again.logits[0], 5.0);
}

#[tokio::test]
async fn wrong_image_length_is_refused() {
    let (pool, _) = pool(1, 8, Duration::ZERO, false);
    let err = pool.infer(vec![0.0; 5], None).await.unwrap_err();
    assert!(matches!(
        err,
        SchedulerError::BadInput {
            actual: 5,
            expected: 12
        }
    ));
}

#[tokio::test]
async fn shutdown_answers_queued_work_first() {
    let (mut pool, _) = pool(2, 8, Duration::from_millis(10), false);
    let r = pool.infer(image(1.5), None).await.unwrap();
    assert_eq!(r.logits[0], 1.5);
    pool.shutdown();
    assert!(matches!(
        pool.infer(image(1.0), None).await,
        Err(SchedulerError::ShuttingDown)
    ));
}

#[tokio::test]
async fn admission_slots_are_taken_before_the_image_and_given_back() {
    let (pool, _) = pool(1, 2, Duration::ZERO, false);
    let a = pool.reserve().unwrap();
    let b = pool.reserve().unwrap();
    assert_eq!(pool.slots_in_use(), 2);
    // No third slot, at once (never a wait), counted as a rejection.
    assert!(matches!(
        pool.reserve(),
        Err(SchedulerError::QueueFull { capacity: 2 })
    ));
    assert_eq!(pool.stats().images_rejected.load(Ordering::Relaxed), 1);
    // An unused slot dropped is given back; a used one when an instance takes the image.
    drop(a);
    assert_eq!(pool.slots_in_use(), 1);
    let r = pool.infer_in(b, image(2.0), None).await.unwrap();
    assert_eq!(r.logits[0], 2.0);
    assert_eq!(pool.slots_in_use(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_queue_delay_forms_larger_batches_and_never_outlives_a_deadline() {
    let engine = engine(Duration::ZERO);
    let controls = engine.controls();
    let pool = Arc::new(EnginePool::with_queue_delay(
        engine.instances(1),
        16,
        Duration::from_millis(400),
    ));
    // Three images sent 50 ms apart: without a delay the idle instance would run each alone.
    let mut calls = Vec::new();
    for i in 0..3 {
        let p = Arc::clone(&pool);
        calls.push(tokio::spawn(
            async move { p.infer(image(i as f32), None).await },
        ));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for c in calls {
        c.await.unwrap().unwrap();
    }
    assert_eq!(controls.batches(), vec![3]);

    // A deadline shorter than the delay: the batch runs before it, not after the delay.
    let started = Instant::now();
    let r = pool
        .infer(
            image(1.0),
            Some(Instant::now() + Duration::from_millis(100)),
        )
        .await;
    // Run at its deadline (or answered DeadlineExceeded exactly then): well before 400 ms.
    assert!(
        started.elapsed() < Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
    assert!(
        r.is_ok() || matches!(r, Err(SchedulerError::DeadlineExceeded)),
        "{r:?}"
    );
    // A full batch does not wait.
    let started = Instant::now();
    let many: Vec<_> = (0..4)
        .map(|i| {
            let p = Arc::clone(&pool);
            tokio::spawn(async move { p.infer(image(i as f32), None).await })
        })
        .collect();
    for c in many {
        c.await.unwrap().unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_millis(350),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_follows_a_hung_and_a_failing_engine() {
    let (pool, controls) = pool(1, 4, Duration::ZERO, true);
    let pool = Arc::new(pool);
    assert_eq!(pool.health(Duration::from_millis(50)), EngineHealth::Ok);
    let p = Arc::clone(&pool);
    let held = tokio::spawn(async move { p.infer(image(1.0), None).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(matches!(
        pool.health(Duration::from_millis(50)),
        EngineHealth::Hung { instance: 0, .. }
    ));
    // Within a longer limit it is just busy.
    assert_eq!(pool.health(Duration::from_secs(60)), EngineHealth::Ok);
    controls.open();
    held.await.unwrap().unwrap();
    assert_eq!(pool.health(Duration::from_millis(50)), EngineHealth::Ok);

    // Batches failing in a row (the engine panics on the marker), then one success.
    for _ in 0..FAILING_AFTER_BATCHES {
        assert!(pool.infer(image(PANIC_MARKER), None).await.is_err());
    }
    assert_eq!(
        pool.health(Duration::from_secs(60)),
        EngineHealth::Failing {
            batches: FAILING_AFTER_BATCHES
        }
    );
    pool.infer(image(2.0), None).await.unwrap();
    assert_eq!(pool.health(Duration::from_secs(60)), EngineHealth::Ok);
}
