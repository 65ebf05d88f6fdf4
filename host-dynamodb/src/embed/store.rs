//! The store as the packages hold it: one of the three kinds, with the operations their
//! persistence classes, tests and operators use. Each package's store object wraps one.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use fleetbreaker_core::{CorruptItem, Record, StoreError};

use crate::bridge::{BoxedFuture, io_runtime};
use crate::stores::{MemoryStore, Store, StoreStats};
use crate::{DynamoDbConfig, DynamoDbStore, Error, SqliteStore};

/// A helper asked of a store that cannot do it, or with an argument it does not know: the
/// packages raise their language's argument error with its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Misuse {
    /// Only an in-memory store can be looked into or broken on purpose.
    NotInMemory,
    /// Only a DynamoDB store creates its table.
    NotDynamoDb,
    /// A fault kind other than `unavailable`, `timeout`, `throttled` or `misconfigured`.
    UnknownFault(String),
}

impl std::fmt::Display for Misuse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Misuse::NotInMemory => f.write_str("only for in-memory stores"),
            Misuse::NotDynamoDb => f.write_str("only a DynamoDB store creates its table"),
            Misuse::UnknownFault(kind) => write!(f, "unknown fault {kind:?}"),
        }
    }
}

#[derive(Clone)]
enum Kind {
    Memory(MemoryStore),
    Sqlite(Arc<SqliteStore>),
    DynamoDb(Arc<DynamoDbStore>),
}

/// One store of any kind.
///
/// ```
/// use fleetbreaker::embed::StoreHandle;
///
/// let store = StoreHandle::memory();
/// store.set_fault(Some("throttled")).unwrap();
/// assert!(store.set_fault(Some("flooded")).is_err());
/// ```
#[derive(Clone)]
pub struct StoreHandle {
    store: Arc<dyn Store>,
    kind: Kind,
}

impl StoreHandle {
    /// A store in this process's memory.
    pub fn memory() -> StoreHandle {
        let memory = MemoryStore::new();
        StoreHandle {
            store: Arc::new(memory.clone()),
            kind: Kind::Memory(memory),
        }
    }

    /// The SQLite file at `path`, each call bounded by `store_timeout`.
    pub fn sqlite(path: impl AsRef<Path>, store_timeout: Duration) -> Result<StoreHandle, Error> {
        let store = Arc::new(SqliteStore::open_with_timeout(path, store_timeout)?);
        Ok(StoreHandle {
            store: store.clone(),
            kind: Kind::Sqlite(store),
        })
    }

    /// A DynamoDB table. Returns at once: the SDK configuration loads in the background (see
    /// [`DynamoDbStore::connect`]); the first open starts the I/O runtime's threads.
    pub fn dynamodb(config: DynamoDbConfig) -> Result<StoreHandle, Error> {
        let store = Arc::new(io_runtime().block_on(DynamoDbStore::connect(config))?);
        Ok(StoreHandle {
            store: store.clone(),
            kind: Kind::DynamoDb(store),
        })
    }

    /// The store, for an environment.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// The in-memory store, for the helpers only it has (holding calls, the look at a record
    /// that neither counts nor meets a fault).
    pub fn in_memory(&self) -> Result<&MemoryStore, Misuse> {
        match &self.kind {
            Kind::Memory(m) => Ok(m),
            _ => Err(Misuse::NotInMemory),
        }
    }

    /// Creates the DynamoDB table, with TTL on `expiration` (development and tests).
    pub fn create_table(&self) -> Result<BoxedFuture<Result<(), Error>>, Misuse> {
        match &self.kind {
            Kind::DynamoDb(d) => {
                let d = d.clone();
                Ok(Box::pin(async move { d.create_table().await }))
            }
            _ => Err(Misuse::NotDynamoDb),
        }
    }

    /// Deletes `circuit`'s item, as a TTL or an operator does.
    pub fn remove(&self, circuit: String) -> BoxedFuture<Result<(), Error>> {
        match self.kind.clone() {
            Kind::Memory(m) => {
                m.remove(&circuit);
                Box::pin(std::future::ready(Ok(())))
            }
            Kind::Sqlite(s) => Box::pin(async move { Ok(s.remove(&circuit).await?) }),
            Kind::DynamoDb(d) => Box::pin(async move { d.remove(&circuit).await }),
        }
    }

    /// The valid record of `circuit`, or `None` (no item, or a corrupt one). For a memory
    /// store, a look that neither counts as a read nor meets an injected fault.
    pub fn record(&self, circuit: String) -> BoxedFuture<Result<Option<Record>, Error>> {
        if let Kind::Memory(m) = &self.kind {
            return Box::pin(std::future::ready(Ok(m.record(&circuit))));
        }
        let store = self.store.clone();
        Box::pin(async move {
            match store.load(&circuit).await {
                Ok(r) => Ok(r),
                Err(StoreError::Corrupt(_)) => Ok(None),
                Err(e) => Err(Error::Store(e)),
            }
        })
    }

    /// Calls made so far; a memory store counts injected faults as errors.
    pub fn stats(&self) -> StoreStats {
        match &self.kind {
            Kind::Memory(m) => StoreStats {
                reads: m.reads(),
                writes: m.writes(),
                window_adds: m.window_adds(),
                conflicts: m.conflicts(),
                errors: m.faulted_calls(),
            },
            Kind::Sqlite(s) => s.stats(),
            Kind::DynamoDb(d) => d.stats(),
        }
    }

    /// Memory stores: every later call fails with the fault named `kind` (`None`: works
    /// again).
    pub fn set_fault(&self, kind: Option<&str>) -> Result<(), Misuse> {
        let fault = kind
            .map(|k| {
                StoreError::of_kind(k, "injected").ok_or_else(|| Misuse::UnknownFault(k.into()))
            })
            .transpose()?;
        self.in_memory()?.set_fault(fault);
        Ok(())
    }

    /// Memory stores: replaces `circuit`'s item with one that is not a valid record.
    pub fn put_corrupt(
        &self,
        circuit: &str,
        version: Option<u64>,
        detail: String,
    ) -> Result<(), Misuse> {
        self.in_memory()?
            .put_corrupt(circuit, CorruptItem { detail, version });
        Ok(())
    }
}
