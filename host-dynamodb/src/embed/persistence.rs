//! A package's persistence object: where its circuits are kept (memory, a SQLite file, a
//! DynamoDB table) and the one store it opens there.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use fleetbreaker_core::ConfigError;

use super::{Casing, DynamoDbSettings, Misuse, Settings, StoreHandle, Value};
use crate::Error;
use crate::bridge::BoxedFuture;
use crate::util::lock;

/// Where a persistence object keeps its circuits, and its one store: opened by its first
/// breaker, with that breaker's `store_timeout`. Every later breaker must use the same deadline
/// (one connection, one deadline), except in memory, where there is none.
pub struct Persistence {
    place: Place,
    /// The store, once opened, with its deadline in seconds.
    opened: Mutex<Option<(f64, StoreHandle)>>,
}

enum Place {
    Memory,
    Sqlite(PathBuf),
    DynamoDb(Box<DynamoDbSettings>),
}

impl Persistence {
    fn new(place: Place) -> Persistence {
        Persistence {
            place,
            opened: Mutex::new(None),
        }
    }

    /// Circuits in this process's memory.
    pub fn memory() -> Persistence {
        Persistence::new(Place::Memory)
    }

    /// Circuits in the SQLite file `path` (a non-empty string), shared by the processes of one
    /// machine; the file opens with the first breaker.
    pub fn sqlite(casing: Casing, path: Value) -> Result<Persistence, ConfigError> {
        match path {
            Value::Text(path) if !path.is_empty() => {
                Ok(Persistence::new(Place::Sqlite(path.into())))
            }
            other => Err(ConfigError {
                field: casing.spell("path").into_owned(),
                message: format!("must be a non-empty string, got {other}"),
            }),
        }
    }

    /// Circuits in a DynamoDB table. The store opens now, with the default deadline, so its SDK
    /// configuration loads in the background; the first breaker with that deadline takes it.
    pub fn dynamodb(settings: DynamoDbSettings) -> Persistence {
        settings.prewarm();
        Persistence::new(Place::DynamoDb(Box::new(settings)))
    }

    /// The DynamoDB table's options, for a DynamoDB persistence object.
    pub fn dynamodb_settings(&self) -> Option<&DynamoDbSettings> {
        match &self.place {
            Place::DynamoDb(settings) => Some(settings),
            _ => None,
        }
    }

    /// The store, for a breaker whose configuration gives `store_timeout` seconds, or, with
    /// `None`, for one that takes the circuit's configuration: the deadline in use, else the
    /// default. A deadline other than the one in use is refused (naming `store_timeout` as
    /// `casing` spells it), except in memory.
    pub fn store(&self, casing: Casing, store_timeout: Option<f64>) -> Result<StoreHandle, Error> {
        if let Some((in_use, store)) = &*lock(&self.opened) {
            return match store_timeout {
                Some(given) if given != *in_use && !matches!(self.place, Place::Memory) => Err(
                    Error::Config(super::store_timeout_conflict(casing, *in_use, given)),
                ),
                _ => Ok(store.clone()),
            };
        }
        let seconds =
            store_timeout.unwrap_or_else(|| Settings::default().store_timeout().as_secs_f64());
        let deadline = Duration::from_secs_f64(seconds);
        // Opened without the lock (a SQLite file is opened and checked here), so a fork while
        // it opens cannot leave the child a lock that nobody releases.
        let store = match &self.place {
            Place::Memory => StoreHandle::memory(),
            Place::Sqlite(path) => StoreHandle::sqlite(path, deadline)?,
            Place::DynamoDb(settings) => settings.open(deadline)?,
        };
        let mut opened = lock(&self.opened);
        // Another thread may have opened it meanwhile: the first store stays.
        let (_, store) = opened.get_or_insert((seconds, store));
        Ok(store.clone())
    }

    /// Creates the DynamoDB table, with TTL on `expiration` (development and tests), through a
    /// store of its own: table administration has its own deadline.
    pub fn create_table(&self) -> Result<BoxedFuture<Result<(), Error>>, Misuse> {
        let settings = self.dynamodb_settings().ok_or(Misuse::NotDynamoDb)?;
        match settings.connect(Settings::default().store_timeout()) {
            Ok(store) => store.create_table(),
            Err(e) => Ok(Box::pin(async move { Err(e) })),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn the_first_breakers_deadline_is_the_stores_and_another_is_refused_by_name() {
        let dir =
            std::env::temp_dir().join(format!("fleetbreaker-persistence-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("circuits.db").to_string_lossy().into_owned();
        let persistence = Persistence::sqlite(Casing::Camel, Value::Text(path)).unwrap();
        let first = persistence.store(Casing::Camel, Some(2.0)).unwrap();
        let without = persistence.store(Casing::Camel, None).unwrap();
        assert!(
            Arc::ptr_eq(&first.store(), &without.store()),
            "one store, the deadline in use"
        );
        let Err(Error::Config(refused)) = persistence.store(Casing::Camel, Some(1.0)) else {
            panic!("a second deadline was accepted");
        };
        assert_eq!(refused.field, "storeTimeout");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn in_memory_any_deadline_shares_the_one_store() {
        let persistence = Persistence::memory();
        let first = persistence.store(Casing::Snake, Some(2.0)).unwrap();
        let other = persistence.store(Casing::Snake, Some(1.0)).unwrap();
        assert!(Arc::ptr_eq(&first.store(), &other.store()));
    }

    #[test]
    fn a_sqlite_path_must_be_a_non_empty_string() {
        for bad in [Value::Text(String::new()), Value::Null, Value::Int(3)] {
            let refused = Persistence::sqlite(Casing::Snake, bad).err().unwrap();
            assert_eq!(refused.field, "path");
            assert!(refused.message.starts_with("must be a non-empty string"));
        }
    }
}
