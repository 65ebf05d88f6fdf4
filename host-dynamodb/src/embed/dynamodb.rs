//! A DynamoDB persistence store's options as the packages take them (`table_name`,
//! `key_attr`, ... in Python; `tableName`, `keyAttr`, ... in Node): checked once, with one
//! text per refusal, as the breaker's configuration is.

use std::sync::Mutex;
use std::time::Duration;

use fleetbreaker_core::ConfigError;

use super::{Casing, Settings, StoreHandle, Value};
use crate::Error;
use crate::dynamodb::DynamoDbConfig;
use crate::util::lock;

/// A DynamoDB persistence object's options, checked; [`Persistence::dynamodb`] opens its
/// store.
///
/// [`Persistence::dynamodb`]: super::Persistence::dynamodb
pub struct DynamoDbSettings {
    config: DynamoDbConfig,
    /// What the user is told at construction, if anything (an option that has no effect).
    pub warning: Option<String>,
    /// The store `prewarm` opened, for the first `open` with its deadline.
    prewarmed: Mutex<Option<(Duration, StoreHandle)>>,
}

impl std::fmt::Debug for DynamoDbSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoDbSettings")
            .field("config", &self.config)
            .field("warning", &self.warning)
            .finish_non_exhaustive()
    }
}

impl DynamoDbSettings {
    /// The options, snake_case; other keys are the package's own (Node's `logger`).
    pub const FIELDS: [&'static str; 7] = [
        "table_name",
        "key_attr",
        "sort_key_attr",
        "static_pk_value",
        "region",
        "endpoint_url",
        "consistent_read",
    ];

    /// Checks `fields` (names spelled per `casing`; absent or null: the default) as the store
    /// will: the table name by DynamoDB's rules, the key attributes, and the Powertools rule
    /// that `static_pk_value` goes with `sort_key_attr`.
    pub fn parse<K: AsRef<str>>(
        casing: Casing,
        fields: impl IntoIterator<Item = (K, Value)>,
    ) -> Result<DynamoDbSettings, ConfigError> {
        let mut given: [Value; 7] = std::array::from_fn(|_| Value::Null);
        for (key, value) in fields {
            if let Some(i) = Self::FIELDS
                .iter()
                .position(|f| casing.spell(f) == key.as_ref())
            {
                given[i] = value;
            }
        }
        let refuse = |i: usize, message: String| ConfigError {
            field: casing.spell(Self::FIELDS[i]).into_owned(),
            message,
        };
        let text = |i: usize, required: bool| match &given[i] {
            Value::Null if !required => Ok(None),
            Value::Text(t) if !t.is_empty() => Ok(Some(t.clone())),
            other => {
                let wanted = if required { "a" } else { "absent or a" };
                Err(refuse(
                    i,
                    format!("must be {wanted} non-empty string, got {other}"),
                ))
            }
        };
        let mut config = DynamoDbConfig::new(text(0, true)?.unwrap_or_default());
        if let Some(key_attr) = text(1, false)? {
            config.key_attr = key_attr;
        }
        config.sort_key_attr = text(2, false)?;
        config.static_pk_value = text(3, false)?;
        config.region = text(4, false)?;
        config.endpoint_url = text(5, false)?;
        config.consistent_read = match given[6] {
            Value::Null => false,
            Value::Bool(b) => b,
            ref other => return Err(refuse(6, format!("must be true or false, got {other}"))),
        };
        if config.sort_key_attr.as_ref() == Some(&config.key_attr) {
            let message = format!(
                "{} [{k}] and {} [{k}] cannot be the same!",
                casing.spell("key_attr"),
                casing.spell("sort_key_attr"),
                k = config.key_attr
            );
            return Err(refuse(2, message));
        }
        let mut warning = None;
        if config.static_pk_value.is_some() && config.sort_key_attr.is_none() {
            warning = Some(format!(
                "{} is ignored unless {} is also set.",
                casing.spell("static_pk_value"),
                casing.spell("sort_key_attr")
            ));
            config.static_pk_value = None;
        }
        config.validate().map_err(|e| ConfigError {
            field: Self::FIELDS
                .iter()
                .find(|f| **f == e.field)
                .map_or(e.field.clone(), |f| casing.spell(f).into_owned()),
            message: e.message,
        })?;
        Ok(DynamoDbSettings {
            config,
            warning,
            prewarmed: Mutex::new(None),
        })
    }

    /// Opens the store now, with the default deadline, so that its SDK configuration (profile
    /// files, TLS roots: milliseconds of a cold start) loads in the background while the
    /// program goes on to make its breakers; the first `open` with that deadline takes it. A store opened before a `fork()` serves the child too (it builds its own
    /// connections). A failure is left for that `open` to report.
    pub(super) fn prewarm(&self) {
        let deadline = Settings::default().store_timeout();
        if let Ok(store) = self.open(deadline) {
            *lock(&self.prewarmed) = Some((deadline, store));
        }
    }

    /// The partition key value in effect with composite keys (the given one, or the
    /// Powertools default); `None` with a simple key.
    pub fn partition_value(&self) -> Option<String> {
        self.config.partition_value()
    }

    /// Opens the store with `store_timeout` as the deadline of every call; it returns at once
    /// (the SDK's configuration loads in the background).
    pub(super) fn open(&self, store_timeout: Duration) -> Result<StoreHandle, Error> {
        let mut prewarmed = lock(&self.prewarmed);
        if let Some((_, store)) = prewarmed.take_if(|(deadline, _)| *deadline == store_timeout) {
            return Ok(store);
        }
        drop(prewarmed);
        self.connect(store_timeout)
    }

    /// A store of its own (never the prewarmed one), with `store_timeout`.
    pub(super) fn connect(&self, store_timeout: Duration) -> Result<StoreHandle, Error> {
        let mut config = self.config.clone();
        config.store_timeout = store_timeout;
        StoreHandle::dynamodb(config)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn parse(casing: Casing, fields: &[(&str, Value)]) -> Result<DynamoDbSettings, ConfigError> {
        DynamoDbSettings::parse(casing, fields.iter().cloned())
    }

    fn text(s: &str) -> Value {
        Value::Text(s.into())
    }

    #[test]
    fn the_table_name_is_required_and_checked_by_dynamodbs_rules() {
        let missing = parse(Casing::Camel, &[]).unwrap_err();
        assert_eq!(missing.field, "tableName");
        assert_eq!(missing.message, "must be a non-empty string, got null");
        let bad = parse(Casing::Snake, &[("table_name", text("a b"))]).unwrap_err();
        assert_eq!(bad.field, "table_name");
        assert!(bad.message.contains("may contain only"), "{}", bad.message);
    }

    #[test]
    fn a_sort_key_like_the_partition_key_is_refused_in_the_powertools_words() {
        let fields = [("tableName", text("circuits")), ("sortKeyAttr", text("id"))];
        let refused = parse(Casing::Camel, &fields).unwrap_err();
        assert_eq!(refused.field, "sortKeyAttr");
        assert_eq!(
            refused.message,
            "keyAttr [id] and sortKeyAttr [id] cannot be the same!"
        );
    }

    #[test]
    fn a_static_partition_value_without_a_sort_key_is_dropped_with_a_warning() {
        let fields = [
            ("table_name", text("circuits")),
            ("static_pk_value", text("team")),
        ];
        let settings = parse(Casing::Snake, &fields).unwrap();
        assert_eq!(
            settings.warning.as_deref(),
            Some("static_pk_value is ignored unless sort_key_attr is also set.")
        );
        assert_eq!(settings.partition_value(), None);
        let composite = [
            ("table_name", text("circuits")),
            ("sort_key_attr", text("sk")),
            ("static_pk_value", text("team")),
        ];
        let settings = parse(Casing::Snake, &composite).unwrap();
        assert_eq!(settings.partition_value().as_deref(), Some("team"));
        assert_eq!(settings.warning, None);
    }

    #[test]
    fn the_prewarmed_store_serves_the_first_open_with_its_deadline_only() {
        let fields = [
            ("table_name", text("circuits")),
            ("region", text("us-east-1")),
            ("endpoint_url", text("http://127.0.0.1:9")),
        ];
        let settings = parse(Casing::Snake, &fields).unwrap();
        settings.prewarm();
        let warm = lock(&settings.prewarmed).as_ref().map(|(_, s)| s.store());
        let warm = warm.expect("prewarm opened the store");
        let default = Settings::default().store_timeout();
        let other = settings.open(default * 2).unwrap();
        assert!(
            !Arc::ptr_eq(&other.store(), &warm),
            "another deadline opens its own"
        );
        let first = settings.open(default).unwrap();
        assert!(
            Arc::ptr_eq(&first.store(), &warm),
            "the default deadline takes the warm one"
        );
        let second = settings.open(default).unwrap();
        assert!(!Arc::ptr_eq(&second.store(), &warm), "only once");
    }

    #[test]
    fn options_of_the_wrong_type_name_the_field_and_the_value() {
        let fields = [
            ("tableName", text("circuits")),
            ("consistentRead", Value::Int(1)),
        ];
        let refused = parse(Casing::Camel, &fields).unwrap_err();
        assert_eq!(
            (refused.field.as_str(), refused.message.as_str()),
            ("consistentRead", "must be true or false, got 1")
        );
        let fields = [("table_name", text("circuits")), ("region", text(""))];
        let refused = parse(Casing::Snake, &fields).unwrap_err();
        assert_eq!(
            refused.message,
            "must be absent or a non-empty string, got \"\""
        );
    }
}
