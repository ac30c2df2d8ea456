//! One scheduler for every poll loop of every ScaledObject and ScaledJob: a single timer queue,
//! no task per object sleeping on its own timer. Each object polls at a fixed phase inside its
//! polling interval, derived from its UID, so a thousand objects with the same interval spread
//! evenly instead of firing together, and the phase survives operator restarts.
//!
//! Polls run as separate tasks under a concurrency bound; a slow poll never delays the others,
//! and an object whose previous poll still runs skips that slot rather than piling up.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use futures::future::BoxFuture;
use tokio::sync::{Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::time::DelayQueue;
use tokio_util::time::delay_queue;

/// The two kinds of scalable object the scheduler polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    ScaledObject,
    ScaledJob,
}

impl ObjectKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ScaledObject => "ScaledObject",
            Self::ScaledJob => "ScaledJob",
        }
    }
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `kind/namespace/name`, e.g. `ScaledObject/default/worker`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey {
    pub kind: ObjectKind,
    pub namespace: String,
    pub name: String,
}

impl ObjectKey {
    pub fn new(kind: ObjectKind, namespace: &str, name: &str) -> Self {
        Self {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
    }
}

/// What the scheduler runs when an object is due.
pub trait PollTarget: Send + Sync + 'static {
    fn poll(&self, key: ObjectKey) -> BoxFuture<'static, ()>;
}

enum Command {
    Upsert {
        key: ObjectKey,
        interval: Duration,
        seed: String,
    },
    Remove(ObjectKey),
    PollNow(ObjectKey),
    /// Ends the task; polls already running finish on their own.
    Stop,
}

/// Handle to the scheduler task; cheap to clone.
#[derive(Clone)]
pub struct Scheduler {
    commands: mpsc::UnboundedSender<Command>,
    stats: Arc<ScheduleStats>,
}

/// How late polls start relative to their slot, for benchmarks and the latency gauge.
#[derive(Default)]
pub struct ScheduleStats {
    lags: Mutex<LagRecorder>,
}

#[derive(Default)]
struct LagRecorder {
    samples: Vec<f64>,
    next: usize,
    polls: u64,
    skipped_busy: u64,
}

const LAG_SAMPLES: usize = 100_000;

impl ScheduleStats {
    fn record(&self, lag: Duration) {
        if let Ok(mut r) = self.lags.lock() {
            r.polls += 1;
            let secs = lag.as_secs_f64();
            if r.samples.len() < LAG_SAMPLES {
                r.samples.push(secs);
            } else {
                let i = r.next % LAG_SAMPLES;
                r.samples[i] = secs;
            }
            r.next = r.next.wrapping_add(1);
        }
    }

    fn record_skip(&self) {
        if let Ok(mut r) = self.lags.lock() {
            r.skipped_busy += 1;
        }
    }

    /// (polls started, slots skipped because the previous poll still ran, lag quantile in seconds).
    pub fn snapshot(&self, quantile: f64) -> (u64, u64, f64) {
        let Ok(r) = self.lags.lock() else {
            return (0, 0, 0.0);
        };
        let mut sorted = r.samples.clone();
        sorted.sort_by(f64::total_cmp);
        let q = if sorted.is_empty() {
            0.0
        } else {
            let i = ((sorted.len() - 1) as f64 * quantile.clamp(0.0, 1.0)).round() as usize;
            sorted[i.min(sorted.len() - 1)]
        };
        (r.polls, r.skipped_busy, q)
    }
}

struct Entry {
    delay: delay_queue::Key,
    interval: Duration,
    phase: Duration,
    due: Instant,
    busy: bool,
    /// A `poll_now` arrived while a poll was running: poll again as soon as it ends, since that
    /// poll may have read the backend before the change being announced.
    again: bool,
}

/// The scheduler's task before it runs: created with the handle, so whatever polls can be built
/// with the handle first and given to [`SchedulerTask::spawn`] afterwards, with no setter.
pub struct SchedulerTask {
    commands: mpsc::UnboundedReceiver<Command>,
    max_concurrent_polls: usize,
    stats: Arc<ScheduleStats>,
}

impl SchedulerTask {
    /// Runs the task, sending every due poll to `target`.
    pub fn spawn(self, target: Arc<dyn PollTarget>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(run(
            self.commands,
            target,
            self.max_concurrent_polls,
            self.stats,
        ))
    }
}

impl Scheduler {
    /// The handle and its not yet running task. At most `max_concurrent_polls` polls run at once.
    pub fn new(max_concurrent_polls: usize) -> (Self, SchedulerTask) {
        let (commands, rx) = mpsc::unbounded_channel();
        let stats = Arc::new(ScheduleStats::default());
        let task = SchedulerTask {
            commands: rx,
            max_concurrent_polls: max_concurrent_polls.max(1),
            stats: stats.clone(),
        };
        (Self { commands, stats }, task)
    }

    /// Starts the scheduler task polling `target`.
    pub fn spawn(target: Arc<dyn PollTarget>, max_concurrent_polls: usize) -> Self {
        let (scheduler, task) = Self::new(max_concurrent_polls);
        task.spawn(target);
        scheduler
    }

    /// Stops the task: no poll starts afterwards.
    pub fn stop(&self) {
        let _ = self.commands.send(Command::Stop);
    }

    /// Adds an object or changes its interval. Its first poll runs at once (as KEDA's loop
    /// checks immediately), later ones at its phase. `seed` (the UID) fixes the phase.
    pub fn upsert(&self, key: ObjectKey, interval: Duration, seed: &str) {
        let _ = self.commands.send(Command::Upsert {
            key,
            interval: interval.max(Duration::from_millis(100)),
            seed: seed.to_string(),
        });
    }

    pub fn remove(&self, key: ObjectKey) {
        let _ = self.commands.send(Command::Remove(key));
    }

    /// Polls the object as soon as possible (push activation, a reconcile), keeping its phase.
    pub fn poll_now(&self, key: ObjectKey) {
        let _ = self.commands.send(Command::PollNow(key));
    }

    pub fn stats(&self) -> &ScheduleStats {
        &self.stats
    }
}

/// The phase of an object inside its interval: a stable hash of its seed.
pub fn phase_of(seed: &str, interval: Duration) -> Duration {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    seed.hash(&mut hasher);
    let millis = interval.as_millis().max(1) as u64;
    Duration::from_millis(hasher.finish() % millis)
}

/// The first slot strictly after `now`: `epoch + phase + k * interval`.
fn next_slot(epoch: Instant, now: Instant, interval: Duration, phase: Duration) -> Instant {
    let first = epoch + phase;
    if now < first {
        return first;
    }
    let since = now.duration_since(first).as_nanos();
    let step = interval.as_nanos().max(1);
    let k = since / step + 1;
    let offset = Duration::from_nanos(u64::try_from(step * k).unwrap_or(u64::MAX));
    first + offset
}

async fn run(
    mut commands: mpsc::UnboundedReceiver<Command>,
    target: Arc<dyn PollTarget>,
    max_concurrent: usize,
    stats: Arc<ScheduleStats>,
) {
    // A fixed epoch (aligned to wall-clock zero would be nicer, but Instant has no epoch);
    // phases are relative to it, which keeps objects spread evenly.
    let epoch = Instant::now();
    let mut queue: DelayQueue<ObjectKey> = DelayQueue::new();
    let mut entries: HashMap<ObjectKey, Entry> = HashMap::new();
    let permits = Arc::new(Semaphore::new(max_concurrent));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<ObjectKey>();

    loop {
        tokio::select! {
            command = commands.recv() => {
                let Some(command) = command else { break };
                match command {
                    Command::Upsert { key, interval, seed } => {
                        let phase = phase_of(&seed, interval);
                        let now = Instant::now();
                        match entries.get_mut(&key) {
                            Some(entry) if entry.interval == interval && entry.phase == phase => {}
                            Some(entry) => {
                                entry.interval = interval;
                                entry.phase = phase;
                                entry.due = next_slot(epoch, now, interval, phase);
                                queue.reset_at(&entry.delay, entry.due);
                            }
                            None => {
                                let delay = queue.insert_at(key.clone(), now);
                                entries.insert(key, Entry { delay, interval, phase, due: now, busy: false, again: false });
                            }
                        }
                    }
                    Command::Remove(key) => {
                        if let Some(entry) = entries.remove(&key) {
                            queue.try_remove(&entry.delay);
                        }
                    }
                    Command::Stop => break,
                    Command::PollNow(key) => {
                        if let Some(entry) = entries.get_mut(&key) {
                            entry.again = entry.busy;
                            entry.due = Instant::now();
                            queue.reset_at(&entry.delay, entry.due);
                        }
                    }
                }
            }
            Some(expired) = queue.next(), if !queue.is_empty() => {
                let key = expired.into_inner();
                let Some(entry) = entries.get_mut(&key) else { continue };
                let now = Instant::now();
                let lag = now.saturating_duration_since(entry.due);
                entry.due = next_slot(epoch, now, entry.interval, entry.phase);
                entry.delay = queue.insert_at(key.clone(), entry.due);
                if entry.busy {
                    stats.record_skip();
                    continue;
                }
                entry.busy = true;
                stats.record(lag);
                let permits = permits.clone();
                let target = target.clone();
                let done = done_tx.clone();
                tokio::spawn(async move {
                    if let Ok(_permit) = permits.acquire_owned().await {
                        target.poll(key.clone()).await;
                    }
                    let _ = done.send(key);
                });
            }
            Some(key) = done_rx.recv() => {
                if let Some(entry) = entries.get_mut(&key) {
                    entry.busy = false;
                    if std::mem::take(&mut entry.again) {
                        entry.due = Instant::now();
                        queue.reset_at(&entry.delay, entry.due);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder {
        polls: Mutex<Vec<(ObjectKey, Instant)>>,
        delay: Duration,
    }

    impl PollTarget for Recorder {
        fn poll(&self, key: ObjectKey) -> BoxFuture<'static, ()> {
            if let Ok(mut p) = self.polls.lock() {
                p.push((key, Instant::now()));
            }
            let delay = self.delay;
            Box::pin(async move {
                tokio::time::sleep(delay).await;
            })
        }
    }

    fn recorder(delay: Duration) -> Arc<Recorder> {
        Arc::new(Recorder {
            polls: Mutex::new(Vec::new()),
            delay,
        })
    }

    fn key(i: usize) -> ObjectKey {
        ObjectKey::new(ObjectKind::ScaledObject, "ns", &format!("so-{i}"))
    }

    #[test]
    fn phases_are_stable_and_inside_the_interval() {
        let interval = Duration::from_secs(30);
        for i in 0..1000 {
            let seed = format!("uid-{i}");
            let p = phase_of(&seed, interval);
            assert!(p < interval);
            assert_eq!(p, phase_of(&seed, interval));
        }
    }

    #[test]
    fn next_slot_is_strictly_in_the_future_and_on_phase() {
        let epoch = Instant::now();
        let interval = Duration::from_secs(10);
        let phase = Duration::from_secs(3);
        assert_eq!(next_slot(epoch, epoch, interval, phase), epoch + phase);
        let now = epoch + Duration::from_secs(3);
        assert_eq!(
            next_slot(epoch, now, interval, phase),
            epoch + Duration::from_secs(13)
        );
        let now = epoch + Duration::from_millis(27_500);
        assert_eq!(
            next_slot(epoch, now, interval, phase),
            epoch + Duration::from_secs(33)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn every_object_polls_once_per_interval_spread_over_it() {
        let rec = recorder(Duration::from_millis(10));
        let scheduler = Scheduler::spawn(rec.clone(), 64);
        let interval = Duration::from_secs(30);
        for i in 0..1000 {
            scheduler.upsert(key(i), interval, &format!("uid-{i}"));
        }
        let start = Instant::now();
        // The immediate first polls, then exactly one per object in every later interval.
        tokio::time::sleep(interval * 3).await;
        let polls = rec.polls.lock().map(|p| p.clone()).unwrap_or_default();
        let window_start = start + interval + Duration::from_secs(1);
        let second: Vec<_> = polls
            .iter()
            .filter(|(_, t)| *t >= window_start && *t < window_start + interval)
            .cloned()
            .collect();
        assert_eq!(
            second.len(),
            1000,
            "each object polled once in the interval"
        );
        let mut per_object = HashMap::new();
        for (k, _) in &second {
            *per_object.entry(k.clone()).or_insert(0) += 1;
        }
        assert!(per_object.values().all(|n| *n == 1));
        // No burst: no one-second bucket holds more than ~3× the even share (1000/30).
        let start = second
            .iter()
            .map(|(_, t)| *t)
            .min()
            .unwrap_or_else(Instant::now);
        let mut buckets = [0usize; 31];
        for (_, t) in &second {
            let b = t.duration_since(start).as_secs() as usize;
            buckets[b.min(30)] += 1;
        }
        assert!(buckets.iter().all(|n| *n < 100), "{buckets:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_poll_skips_its_slot_instead_of_piling_up() {
        let rec = recorder(Duration::from_secs(25));
        let scheduler = Scheduler::spawn(rec.clone(), 8);
        scheduler.upsert(key(0), Duration::from_secs(10), "slow");
        tokio::time::sleep(Duration::from_secs(61)).await;
        let polls = rec.polls.lock().map(|p| p.len()).unwrap_or(0);
        // Polls at 0, then the first free slot after 25 s, … never two at once.
        assert!((2..=3).contains(&polls), "{polls} polls");
        assert!(
            scheduler.stats().snapshot(0.5).1 >= 2,
            "skipped slots are counted"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn remove_stops_and_poll_now_fires_early() {
        let rec = recorder(Duration::ZERO);
        let scheduler = Scheduler::spawn(rec.clone(), 8);
        scheduler.upsert(key(1), Duration::from_secs(30), "a");
        tokio::time::sleep(Duration::from_millis(100)).await;
        scheduler.poll_now(key(1));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(rec.polls.lock().map(|p| p.len()).unwrap_or(0), 2);
        scheduler.remove(key(1));
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(rec.polls.lock().map(|p| p.len()).unwrap_or(0), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn poll_now_during_a_poll_polls_again_when_it_ends() {
        let rec = recorder(Duration::from_secs(2));
        let scheduler = Scheduler::spawn(rec.clone(), 8);
        scheduler.upsert(key(2), Duration::from_secs(300), "b");
        tokio::time::sleep(Duration::from_millis(500)).await;
        scheduler.poll_now(key(2));
        tokio::time::sleep(Duration::from_millis(1000)).await;
        assert_eq!(rec.polls.lock().map(|p| p.len()).unwrap_or(0), 1);
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let polls = rec.polls.lock().map(|p| p.clone()).unwrap_or_default();
        assert_eq!(polls.len(), 2, "a second poll right after the first ended");
        let gap = polls[1].1.duration_since(polls[0].1);
        assert!(
            gap >= Duration::from_secs(2) && gap < Duration::from_millis(2100),
            "{gap:?}"
        );
    }
}
