//! Pauses that last the requested time to within a few hundredths of a
//! millisecond when the machine is not busy.
//!
//! Tokio's timer works at millisecond granularity and rounds deadlines up,
//! so a 1 ms `tokio::time::sleep` lasts between 1 and 2 ms. Here one thread
//! per process keeps the pending wake-up times in a heap and waits on a
//! condition variable, whose timeout has microsecond resolution, until the
//! earliest wake-up time plus [`COALESCE`]. It then wakes every task whose
//! wake-up time has passed, so a hundred sessions cost a few wake-ups, not
//! one each. Tasks are woken [`WAKE_AHEAD`] of their deadline and yield
//! until it has passed, so the wake-ups' own latency does not add to the
//! pause.
//! On Linux the thread sets its timer slack to one microsecond,
//! because the default of 50 µs let each pause overrun by that much again.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// Time after the earliest wake-up at which the timer thread wakes, so
/// that the tasks due by then are woken together.
const COALESCE: Duration = Duration::from_micros(20);

/// Time before its deadline at which a waiting task is woken. It then
/// yields to the runtime's other tasks until the deadline has passed, which
/// costs a little CPU. On the benchmark's virtual machine a sleeping thread
/// took 50 µs on average to run after being woken for the timer thread, and
/// 19 µs for a tokio worker (`perf sched latency`), and a wake-up at the
/// deadline pays both.
const WAKE_AHEAD: Duration = Duration::from_micros(100);

/// Waits until `deadline`, and not at all when it has passed, as for
/// replies to commands that arrived together. Falls back to tokio's timer
/// when the timer thread could not be started.
pub(crate) async fn pause_until(deadline: Instant) {
    if deadline <= Instant::now() {
        return;
    }
    let Some(timer) = timer() else {
        tokio::time::sleep_until(deadline.into()).await;
        return;
    };
    if let Some(wake_at) = deadline.checked_sub(WAKE_AHEAD)
        && wake_at > Instant::now()
    {
        let (wake, woken) = oneshot::channel();
        timer.add(Entry { wake_at, wake });
        // An entry dropped unsent would end the wait early, so the deadline
        // is then kept with tokio's timer.
        if woken.await.is_err() {
            tokio::time::sleep_until(deadline.into()).await;
            return;
        }
    }
    while Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
}

/// One waiting task: woken through `wake` once `wake_at` has passed.
struct Entry {
    wake_at: Instant,
    wake: oneshot::Sender<()>,
}

// The heap pops its greatest entry, so the earliest wake-up compares greatest.
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> Ordering {
        other.wake_at.cmp(&self.wake_at)
    }
}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.wake_at == other.wake_at
    }
}

impl Eq for Entry {}

struct Timer {
    pending: Mutex<BinaryHeap<Entry>>,
    /// Signalled when an entry becomes the earliest, so that the thread
    /// sleeps until the new first wake-up.
    earlier: Condvar,
}

impl Timer {
    fn lock(&self) -> MutexGuard<'_, BinaryHeap<Entry>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, entry: Entry) {
        let wake_at = entry.wake_at;
        let mut pending = self.lock();
        pending.push(entry);
        // Pauses of one length arrive in wake-up order, so the thread
        // rarely needs waking: only when the new entry comes first.
        let first = pending.peek().is_some_and(|first| first.wake_at == wake_at);
        drop(pending);
        if first {
            self.earlier.notify_one();
        }
    }

    fn run(&self) {
        reduce_timer_slack();
        let mut pending = self.lock();
        loop {
            let now = Instant::now();
            while let Some(first) = pending.peek_mut() {
                if first.wake_at > now {
                    break;
                }
                // A task that stopped waiting has dropped its receiver.
                let _ = PeekMut::pop(first).wake.send(());
            }
            pending = match pending.peek() {
                Some(first) => {
                    let wait = first.wake_at + COALESCE - now;
                    self.earlier
                        .wait_timeout(pending, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
                None => self
                    .earlier
                    .wait(pending)
                    .unwrap_or_else(|e| e.into_inner()),
            };
        }
    }
}

/// Lets the calling thread's timed waits end within a microsecond of their
/// deadline instead of the default 50 µs.
#[cfg(target_os = "linux")]
fn reduce_timer_slack() {
    const SLACK_NANOSECONDS: libc::c_ulong = 1_000;
    // SAFETY: PR_SET_TIMERSLACK reads only its integer argument and changes
    // only the calling thread's timer slack.
    let result = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, SLACK_NANOSECONDS, 0, 0, 0) };
    if result != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "keeping the default timer slack");
    }
}

#[cfg(not(target_os = "linux"))]
fn reduce_timer_slack() {}

/// Returns the timer shared by every server of the process and starts its
/// thread on first use.
fn timer() -> Option<&'static Timer> {
    static TIMER: Timer = Timer {
        pending: Mutex::new(BinaryHeap::new()),
        earlier: Condvar::new(),
    };
    static STARTED: OnceLock<bool> = OnceLock::new();
    let started = *STARTED.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("sim-reply-timer".to_owned())
            .spawn(|| TIMER.run());
        if let Err(e) = &spawned {
            tracing::warn!(error = %e, "starting the reply timer thread failed; reply latency uses tokio's millisecond timer");
        }
        spawned.is_ok()
    });
    started.then_some(&TIMER)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pause_never_ends_early() {
        for micros in [1, 250, 1_000, 1_500] {
            let duration = Duration::from_micros(micros);
            let started = Instant::now();
            pause_until(Instant::now() + duration).await;
            let elapsed = started.elapsed();
            assert!(
                elapsed >= duration,
                "a pause of {duration:?} lasted {elapsed:?}"
            );
        }
    }

    #[test]
    fn pause_until_past_deadline_ends_at_once() {
        let past = Instant::now() - Duration::from_millis(5);
        // Ready on the first poll, so no timer thread was involved.
        let paused = std::pin::pin!(pause_until(past));
        let mut context = std::task::Context::from_waker(std::task::Waker::noop());
        assert!(paused.poll(&mut context).is_ready());
    }

    #[tokio::test]
    async fn pauses_end_in_deadline_order() {
        let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        for (label, millis) in [("third", 30), ("first", 10), ("second", 20)] {
            let sender = sender.clone();
            tasks.push(tokio::spawn(async move {
                pause_until(Instant::now() + Duration::from_millis(millis)).await;
                let _ = sender.send(label);
            }));
        }
        for task in tasks {
            task.await.expect("pause task");
        }
        drop(sender);
        let mut order = Vec::new();
        while let Some(label) = receiver.recv().await {
            order.push(label);
        }
        assert_eq!(order, ["first", "second", "third"]);
    }
}
