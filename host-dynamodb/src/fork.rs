//! Process identity across `fork()` and snapshot restores.
//!
//! A forked child has one thread, the forking one, and a copy of everything else: tokio
//! runtimes whose worker threads do not exist (and whose epoll instance it *shares* with the
//! parent), SQLite and DynamoDB connections, locks that a vanished thread may hold, and the
//! parent's identity. A snapshot restore (Lambda SnapStart) copies a whole environment into
//! many. So the state that belongs to one process lives in a [`ForkLocal`]: a copy made after
//! a fork (or a restore) is not used, never dropped (dropping would touch what the parent
//! still uses), and a fresh one is built on first use.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::time::{Duration, Instant};

static FORKS: AtomicU64 = AtomicU64::new(0);
static RESTORES: AtomicU64 = AtomicU64::new(0);
static INSTALL: Once = Once::new();
/// Sections a fork waits for (see [`hold_off_forks`]), and whether a fork is waiting.
static HELD_OFF: AtomicU64 = AtomicU64::new(0);
static FORKING: AtomicBool = AtomicBool::new(false);
/// How long a fork waits for a held-off section: far more than one takes (milliseconds), and
/// little enough that a section stuck on I/O costs a forking server little.
const FORK_WAIT: Duration = Duration::from_millis(500);

extern "C" fn before_fork() {
    FORKING.store(true, Ordering::SeqCst);
    if HELD_OFF.load(Ordering::SeqCst) == 0 {
        return;
    }
    let deadline = Instant::now() + FORK_WAIT;
    while HELD_OFF.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_micros(100));
    }
}

extern "C" fn in_parent_after_fork() {
    FORKING.store(false, Ordering::SeqCst);
}

extern "C" fn in_child_after_fork() {
    // Atomics only: async-signal-safe, as a handler running in a freshly forked child must be.
    FORKS.fetch_add(1, Ordering::SeqCst);
    HELD_OFF.store(0, Ordering::SeqCst);
    FORKING.store(false, Ordering::SeqCst);
}

fn install() {
    INSTALL.call_once(|| {
        // SAFETY: registers handlers that touch atomics (and, before a fork, sleep on the
        // forking thread); none allocates or takes a lock.
        #[cfg(unix)]
        unsafe {
            libc::pthread_atfork(
                Some(before_fork),
                Some(in_parent_after_fork),
                Some(in_child_after_fork),
            );
        }
    });
}

/// Holds off `fork()` (for up to half a second) until the returned guard is dropped. For work
/// that runs on a background thread and takes process-wide locks a forked child would find
/// held forever, such as the one-time initialisations inside the AWS SDK and TLS stack: a
/// child forked in the middle of them would hang on its first store call.
pub(crate) async fn hold_off_forks() -> HeldOff {
    install();
    loop {
        HELD_OFF.fetch_add(1, Ordering::SeqCst);
        if !FORKING.load(Ordering::SeqCst) {
            return HeldOff {
                generation: FORKS.load(Ordering::SeqCst),
            };
        }
        // A fork is waiting for the sections already running: let it go first.
        HELD_OFF.fetch_sub(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

pub(crate) struct HeldOff {
    generation: u64,
}

impl Drop for HeldOff {
    fn drop(&mut self) {
        // A guard of the parent's, dropped in a child, counts for nothing there.
        if FORKS.load(Ordering::SeqCst) == self.generation {
            HELD_OFF.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// What changes when this process stops being the one that made some state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Threads, runtimes, connections: new after a fork (a restore keeps threads).
    Process,
    /// Identities and the connections that carry them: new after a fork or a restore.
    Identity,
}

/// The current generation of `scope`; it changes in a forked child and, for
/// [`Scope::Identity`], after [`after_restore`].
pub fn generation(scope: Scope) -> u64 {
    install();
    let forks = FORKS.load(Ordering::Acquire);
    match scope {
        Scope::Process => forks,
        // Both counters only grow, so their sum changes whenever either does.
        Scope::Identity => forks + RESTORES.load(Ordering::Acquire),
    }
}

/// Call after a snapshot restore (Lambda SnapStart's after-restore hook): environments take
/// new identities and open new connections, so two restored copies never share a probe token.
pub fn after_restore() {
    RESTORES.fetch_add(1, Ordering::SeqCst);
}

/// Arms the fork handler now. Anything that keeps state across calls does this on first use;
/// bindings call it at import so that a fork right after it is seen.
pub fn watch() {
    install();
}

struct Generation<T> {
    generation: u64,
    value: T,
}

/// A value that belongs to one process (or one identity): rebuilt on first use after a fork
/// or a restore. Reading it is an atomic load and a compare. A value made stale that way is
/// leaked on purpose, never dropped: in a forked child it holds the parent's threads,
/// sockets and locks.
pub struct ForkLocal<T> {
    scope: Scope,
    current: AtomicPtr<Generation<T>>,
}

impl<T> ForkLocal<T> {
    /// An empty value, renewed in every new generation of `scope`.
    pub const fn new(scope: Scope) -> ForkLocal<T> {
        ForkLocal {
            scope,
            current: AtomicPtr::new(std::ptr::null_mut()),
        }
    }

    /// The value of this generation, built with `make` if there is none yet.
    pub fn get_or_init(&self, make: impl FnOnce() -> T) -> &T {
        let generation = generation(self.scope);
        let current = self.current.load(Ordering::Acquire);
        // SAFETY: a non-null pointer was published by `Box::into_raw` below and is freed only
        // in `drop`, which cannot run while `&self` is borrowed; replaced values are leaked.
        if let Some(g) = unsafe { current.as_ref() }
            && g.generation == generation
        {
            return &g.value;
        }
        let fresh = Box::into_raw(Box::new(Generation {
            generation,
            value: make(),
        }));
        match self
            .current
            .compare_exchange(current, fresh, Ordering::AcqRel, Ordering::Acquire)
        {
            // SAFETY: as above; `fresh` is now published and lives until `drop`.
            Ok(_) => unsafe { &(*fresh).value },
            Err(winner) => {
                // Another thread built this generation first: use its value. Ours may hold a
                // thread or a runtime, which must not be dropped here; leak it.
                // SAFETY: `winner` was published by `Box::into_raw` and lives until `drop`.
                let winner = unsafe { &*winner };
                if winner.generation == generation {
                    &winner.value
                } else {
                    // Yet another fork in between: take ours anyway, it is of this process.
                    // SAFETY: `fresh` was never published and is never freed (leaked).
                    unsafe { &(*fresh).value }
                }
            }
        }
    }

    /// The value of this generation, if it was built.
    pub fn get(&self) -> Option<&T> {
        let current = self.current.load(Ordering::Acquire);
        // SAFETY: see `get_or_init`.
        unsafe { current.as_ref() }
            .filter(|g| g.generation == generation(self.scope))
            .map(|g| &g.value)
    }

    /// Whether a value of the current generation exists.
    pub fn is_current(&self) -> bool {
        let current = self.current.load(Ordering::Acquire);
        // SAFETY: see `get_or_init`.
        unsafe { current.as_ref() }.is_some_and(|g| g.generation == generation(self.scope))
    }
}

impl<T> Drop for ForkLocal<T> {
    fn drop(&mut self) {
        let current = *self.current.get_mut();
        // Only a value of this process is dropped; an inherited one is left alone.
        if !current.is_null() {
            // SAFETY: published by `Box::into_raw`, and no borrow of `self` is left.
            let g = unsafe { Box::from_raw(current) };
            if g.generation == generation(self.scope) {
                drop(g);
            } else {
                std::mem::forget(g);
            }
        }
    }
}

// SAFETY: a `ForkLocal<T>` hands out `&T` to any thread, like a `OnceLock<T>`.
unsafe impl<T: Send + Sync> Sync for ForkLocal<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for ForkLocal<T> {}

static SEED: ForkLocal<u64> = ForkLocal::new(Scope::Identity);
static DRAWS: AtomicU64 = AtomicU64::new(0);

/// 64 bits that differ on every call, in every process and every restored copy: a seed from the
/// operating system (drawn again after a fork or [`after_restore`]), a counter, and the wall
/// clock's nanoseconds (so even copies restored without the hook differ), mixed. Costs a few
/// nanoseconds, not a system call.
pub fn random_u64() -> u64 {
    let seed = *SEED.get_or_init(os_random);
    let n = DRAWS.fetch_add(1, Ordering::Relaxed);
    let t = wall_clock_ticks();
    splitmix64(seed ^ splitmix64(n) ^ t.rotate_left(29))
}

/// The wall clock, as cheaply as it can be read (the coarse clock, about 5 ns on Linux).
fn wall_clock_ticks() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime only writes the timespec it is given.
        if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) } == 0 {
            return (ts.tv_sec as u64).wrapping_mul(1_000_000_000) ^ ts.tv_nsec as u64;
        }
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// 64 random bits from the operating system.
fn os_random() -> u64 {
    let mut bytes = [0u8; 8];
    #[cfg(target_os = "linux")]
    {
        // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer it is given.
        let n = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
        if n == bytes.len() as isize {
            return u64::from_ne_bytes(bytes);
        }
    }
    fallback_random(&mut bytes)
}

fn fallback_random(bytes: &mut [u8; 8]) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(bytes);
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fork_local_is_built_once_per_generation() {
        let cell: ForkLocal<u64> = ForkLocal::new(Scope::Identity);
        let mut built = 0;
        assert_eq!(
            *cell.get_or_init(|| {
                built += 1;
                7
            }),
            7
        );
        assert_eq!(*cell.get_or_init(|| unreachable!()), 7);
        assert!(cell.is_current());
        after_restore();
        assert!(!cell.is_current());
        assert_eq!(*cell.get_or_init(|| 8), 8, "rebuilt after a restore");
        assert_eq!(built, 1);
    }

    #[cfg(unix)]
    #[test]
    fn a_fork_waits_for_a_held_off_section_to_end() {
        use std::sync::Arc;
        use std::sync::atomic::AtomicBool;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let ended = Arc::new(AtomicBool::new(false));
        let (entered_tx, entered_rx) = std::sync::mpsc::channel();
        let section = {
            let ended = ended.clone();
            std::thread::spawn(move || {
                runtime.block_on(async {
                    let held = hold_off_forks().await;
                    entered_tx.send(()).unwrap();
                    // Long enough that a fork not held off lands inside the section.
                    std::thread::sleep(Duration::from_millis(100));
                    ended.store(true, Ordering::SeqCst);
                    drop(held);
                })
            })
        };
        entered_rx.recv().unwrap();
        // SAFETY: the child only calls `_exit`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: ends the child without running anything of the parent's.
            unsafe { libc::_exit(0) };
        }
        assert!(pid > 0, "fork failed");
        let ended_before_fork = ended.load(Ordering::SeqCst);
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        section.join().unwrap();
        assert!(
            ended_before_fork,
            "the fork came in the middle of the section"
        );
        // The count is the process's: other tests (the DynamoDB store's load and warm-up) may
        // hold short sections of their own meanwhile. Ours is gone once it drains.
        let deadline = Instant::now() + Duration::from_secs(5);
        while HELD_OFF.load(Ordering::SeqCst) != 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(HELD_OFF.load(Ordering::SeqCst), 0, "a section left held");
    }

    #[test]
    fn random_values_differ() {
        let draws: std::collections::BTreeSet<u64> = (0..100).map(|_| random_u64()).collect();
        assert_eq!(draws.len(), 100);
    }
}
