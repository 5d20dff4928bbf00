//! Issue 13: with the `metrics` feature, acquires, losses and the held
//! gauge reach the installed recorder (its own test binary: the recorder is
//! process-global).

use std::collections::HashMap;
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use redsem_core::{LockOptions, Mutex};
use redsem_mock::MockBackend;

/// Sums of every counter and gauge, and histogram sample counts, by name.
#[derive(Default, Debug)]
struct Totals(StdMutex<HashMap<String, f64>>);

struct Handle(Arc<Totals>, String);

impl Handle {
    fn add(&self, v: f64) {
        *self.0 .0.lock().unwrap().entry(self.1.clone()).or_default() += v;
    }
}

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        self.add(value as f64);
    }
    fn absolute(&self, _: u64) {}
}

impl GaugeFn for Handle {
    fn increment(&self, value: f64) {
        self.add(value);
    }
    fn decrement(&self, value: f64) {
        self.add(-value);
    }
    fn set(&self, _: f64) {}
}

impl HistogramFn for Handle {
    fn record(&self, _: f64) {
        self.add(1.0);
    }
}

struct Sums(Arc<Totals>);

impl Recorder for Sums {
    fn describe_counter(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_gauge(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn describe_histogram(&self, _: KeyName, _: Option<Unit>, _: SharedString) {}
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(Arc::new(Handle(self.0.clone(), key.name().to_owned())))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(Arc::new(Handle(self.0.clone(), key.name().to_owned())))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(Arc::new(Handle(self.0.clone(), key.name().to_owned())))
    }
}

#[test]
fn acquires_losses_and_the_held_gauge_are_recorded() {
    let totals = Arc::new(Totals::default());
    metrics::set_global_recorder(Sums(totals.clone())).unwrap();
    let get = |name: &str| totals.0.lock().unwrap().get(name).copied().unwrap_or(0.0);
    futures::executor::block_on(async {
        let redis = MockBackend::new();
        let options = LockOptions::builder()
            .lock_timeout(Duration::from_secs(3))
            .build()
            .unwrap();
        let mutex = Mutex::with_options(redis.clone(), "m", options).unwrap();
        let kept = mutex.acquire().await.unwrap();
        let lost = Mutex::new(redis.clone(), "n")
            .unwrap()
            .acquire()
            .await
            .unwrap();
        assert_eq!(get("redsem_acquired_total"), 2.0);
        assert_eq!(get("redsem_acquire_wait_seconds"), 2.0);
        assert_eq!(get("redsem_held"), 2.0);
        redis.del("mutex:n");
        redis.advance(Duration::from_secs(4)); // refreshes: n is found gone
        let _ = lost.lost().await;
        assert_eq!(get("redsem_lost_total"), 1.0);
        drop(lost);
        kept.release().await.unwrap();
        assert!(redsem_core::flush(Duration::from_secs(5)).await);
        assert_eq!(get("redsem_held"), 0.0);
    });
}
