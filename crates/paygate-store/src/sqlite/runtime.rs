//! The threads behind the SQLite store.
//!
//! SQLite allows one writer at a time, and with `synchronous=FULL` every commit waits for an fsync. So all writes
//! go to one thread that owns the only read-write connection. It takes whatever jobs are queued (up to a bound),
//! runs each inside its own SAVEPOINT within one `BEGIN IMMEDIATE` transaction, commits once, and only then answers
//! each caller: group commit. A job that fails rolls back to its savepoint without disturbing the others, and no
//! caller hears "done" before its data is durable.
//!
//! Reads run on the calling thread with a read-only connection taken from a small pool: a point read costs a few
//! microseconds of SQLite work, much less than the two thread wake-ups of handing it to another thread (measured:
//! five such hand-offs per key-in were a fifth of the gateway's CPU, see BENCHMARKS.md). Long reads (the ledger
//! audit) and reads that find every pooled connection busy go to a fixed set of reader threads, each with its own
//! read-only connection. WAL lets all of them run beside the writer and never wait for it.
//!
//! Checkpoints (copying the WAL back into the database file, with its own fsync) run on a thread of their own in
//! PASSIVE mode, every `checkpoint_interval`: the writer's automatic checkpoint is off, so no commit ever waits for
//! one. PASSIVE never blocks the writer or readers; it copies what it can and the next pass continues.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::StoreError;

/// A unit of work for the writer thread.
pub(crate) trait WriteJob: Send {
    /// Runs inside a savepoint; returns false if the savepoint must be rolled back.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Delivers the result once the batch's commit outcome is known.
    fn finish(self: Box<Self>, commit: Result<(), String>);
}

struct Job<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> WriteJob for Job<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| work(conn)))
            .unwrap_or_else(|_| Err(StoreError::Backend("a write job panicked".into())));
        let ok = outcome.is_ok();
        self.result = Some(outcome);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), String>) {
        let result = match (self.result, commit) {
            (Some(Err(error)), _) => Err(error),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (Some(Ok(_)), Err(message)) => Err(StoreError::Backend(format!("commit failed: {message}"))),
            (None, Err(message)) => Err(StoreError::Backend(format!("transaction failed: {message}"))),
            (None, Ok(())) => Err(StoreError::Backend("write job did not run".into())),
        };
        // The caller may have given up (request timeout); its data is committed or not either way.
        let _ = self.reply.send(result);
    }
}

pub(crate) type ReadJob = Box<dyn FnOnce(&mut Connection) + Send>;

pub(crate) struct Limits {
    pub write_queue_max: u32,
    pub write_batch_max: u32,
    /// None: SQLite checkpoints inside commits (its default), and no checkpointer thread runs.
    pub checkpoint_interval: Option<std::time::Duration>,
}

pub(crate) struct Runtime {
    /// Dropping it stops the checkpointer.
    _checkpoint_stop: flume::Sender<()>,
    writer_tx: flume::Sender<Box<dyn WriteJob>>,
    reader_tx: flume::Sender<ReadJob>,
    reader_count: u32,
    /// Read-only connections for reads on the calling thread. A connection is taken out for one read and put back;
    /// the lock is held only for the take and the put.
    inline: std::sync::Mutex<Vec<Connection>>,
    inline_count: u32,
    /// Set by `close`: later calls fail fast instead of queueing behind a store that is going away.
    closed: std::sync::atomic::AtomicBool,
    _threads: Vec<JoinHandle<()>>,
}

impl Runtime {
    pub(crate) fn start(
        writer: Connection,
        readers: Vec<Connection>,
        inline: Vec<Connection>,
        checkpointer: Connection,
        limits: Limits,
    ) -> Result<Runtime, StoreError> {
        let queue_len = usize::try_from(limits.write_queue_max).unwrap_or(usize::MAX).max(1);
        let batch_max = usize::try_from(limits.write_batch_max).unwrap_or(1).max(1);
        let (writer_tx, writer_rx) = flume::bounded::<Box<dyn WriteJob>>(queue_len);
        let reader_count = u32::try_from(readers.len()).unwrap_or(u32::MAX);
        let inline_count = u32::try_from(inline.len()).unwrap_or(u32::MAX);
        let (reader_tx, reader_rx) = flume::bounded::<ReadJob>(queue_len);
        let mut threads = Vec::new();
        let spawn_error = |e: std::io::Error| StoreError::Backend(format!("cannot start a SQLite thread: {e}"));
        threads.push(
            std::thread::Builder::new()
                .name("paygate-sqlite-writer".into())
                .spawn(move || writer_loop(writer, writer_rx, batch_max))
                .map_err(spawn_error)?,
        );
        for (index, mut conn) in readers.into_iter().enumerate() {
            let rx = reader_rx.clone();
            threads.push(
                std::thread::Builder::new()
                    .name(format!("paygate-sqlite-reader-{index}"))
                    .spawn(move || {
                        while let Ok(job) = rx.recv() {
                            job(&mut conn);
                        }
                    })
                    .map_err(spawn_error)?,
            );
        }
        let (checkpoint_stop, checkpoint_rx) = flume::bounded::<()>(1);
        if let Some(interval) = limits.checkpoint_interval {
            threads.push(
                std::thread::Builder::new()
                    .name("paygate-sqlite-checkpoint".into())
                    .spawn(move || checkpoint_loop(checkpointer, checkpoint_rx, interval))
                    .map_err(spawn_error)?,
            );
        }
        Ok(Runtime {
            _checkpoint_stop: checkpoint_stop,
            writer_tx,
            reader_tx,
            reader_count,
            inline: std::sync::Mutex::new(inline),
            inline_count,
            closed: std::sync::atomic::AtomicBool::new(false),
            _threads: threads,
        })
    }

    pub(crate) async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.is_closed() {
            return Err(StoreError::Overloaded("the store is closed"));
        }
        let (reply, receive) = oneshot::channel();
        let job: Box<dyn WriteJob> = Box::new(Job {
            work: Some(work),
            result: None,
            reply,
        });
        self.writer_tx
            .send_async(job)
            .await
            .map_err(|_| StoreError::Overloaded("the SQLite writer has stopped"))?;
        receive
            .await
            .map_err(|_| StoreError::Backend("the SQLite writer dropped a job".into()))?
    }

    /// A short read (a lookup by key, a bounded page): on the calling thread when a pooled connection is free, on a
    /// reader thread otherwise.
    pub(crate) async fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.is_closed() {
            return Err(StoreError::Overloaded("the store is closed"));
        }
        let Some(mut conn) = self.take_inline() else {
            return self.read_long(work).await;
        };
        match catch_unwind(AssertUnwindSafe(|| work(&mut conn))) {
            Ok(outcome) => {
                self.put_inline(conn);
                outcome
            }
            // The connection's state is unknown after a panic: it is dropped, and the pool is one smaller.
            Err(_) => Err(StoreError::Backend("a read job panicked".into())),
        }
    }

    fn take_inline(&self) -> Option<Connection> {
        // A poisoned lock only means a panic between take and put, which cannot leave the Vec inconsistent.
        let mut pool = self.inline.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pool.pop()
    }

    fn put_inline(&self, conn: Connection) {
        let mut pool = self.inline.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        pool.push(conn);
    }

    /// A read that may take long (a scan of a whole table): on a reader thread, never on the calling thread.
    pub(crate) async fn read_long<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        if self.is_closed() {
            return Err(StoreError::Overloaded("the store is closed"));
        }
        let (reply, receive) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let outcome = catch_unwind(AssertUnwindSafe(|| work(conn)))
                .unwrap_or_else(|_| Err(StoreError::Backend("a read job panicked".into())));
            let _ = reply.send(outcome);
        });
        self.reader_tx
            .send_async(job)
            .await
            .map_err(|_| StoreError::Overloaded("the SQLite readers have stopped"))?;
        receive
            .await
            .map_err(|_| StoreError::Backend("a SQLite reader dropped a job".into()))?
    }

    pub(crate) fn queued_writes(&self) -> u32 {
        u32::try_from(self.writer_tx.len()).unwrap_or(u32::MAX)
    }

    /// Read connections: the reader threads' and the pool's.
    pub(crate) fn reader_count(&self) -> u32 {
        self.reader_count.saturating_add(self.inline_count)
    }

    fn is_closed(&self) -> bool {
        self.closed.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Refuses new work, then waits until every write queued before it is committed: the writer handles jobs in
    /// order, so an empty job sent last is answered only after the others. The threads exit when the store drops.
    pub(crate) async fn close(&self) {
        if self.closed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let (reply, receive) = oneshot::channel::<Result<(), StoreError>>();
        let barrier: Box<dyn WriteJob> = Box::new(Job {
            work: Some(|_: &Connection| Ok(())),
            result: None,
            reply,
        });
        if self.writer_tx.send_async(barrier).await.is_ok() {
            let _ = receive.await;
        }
    }
}

fn writer_loop(conn: Connection, jobs: flume::Receiver<Box<dyn WriteJob>>, batch_max: usize) {
    while let Ok(first) = jobs.recv() {
        let mut batch = Vec::with_capacity(batch_max.min(64));
        batch.push(first);
        while batch.len() < batch_max {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let commit = run_batch(&conn, &mut batch);
        for job in batch {
            job.finish(commit.clone());
        }
    }
}

fn checkpoint_loop(conn: Connection, stop: flume::Receiver<()>, interval: std::time::Duration) {
    loop {
        match stop.recv_timeout(interval) {
            Err(flume::RecvTimeoutError::Timeout) => {
                // Busy (another process is checkpointing) or any other failure: the next pass tries again.
                let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            }
            _ => return,
        }
    }
}

fn run_batch(conn: &Connection, batch: &mut [Box<dyn WriteJob>]) -> Result<(), String> {
    // Transaction control goes through the statement cache: parsing these four statements for every job was a
    // measurable share of the write path.
    let control = |sql: &str| conn.prepare_cached(sql).and_then(|mut s| s.execute([])).map(|_| ());
    control("BEGIN IMMEDIATE").map_err(|e| e.to_string())?;
    for job in batch.iter_mut() {
        if let Err(error) = control("SAVEPOINT job") {
            let _ = control("ROLLBACK");
            return Err(error.to_string());
        }
        let keep = job.run(conn);
        let end = if keep {
            control("RELEASE job")
        } else {
            control("ROLLBACK TO job").and_then(|()| control("RELEASE job"))
        };
        if let Err(error) = end {
            let _ = control("ROLLBACK");
            return Err(error.to_string());
        }
    }
    match control("COMMIT") {
        Ok(()) => Ok(()),
        Err(error) => {
            let _ = control("ROLLBACK");
            Err(error.to_string())
        }
    }
}
