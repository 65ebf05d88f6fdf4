//! The shared record, declared once. [`record_fields!`] holds the field list; the struct, its
//! store mapping ([`Record::to_stored`], [`Record::from_stored`]) and every glue that converts
//! it (the WIT bindings on both sides, the stores, the language bindings' views) are generated
//! from it. Adding a field is one line here, one in the WIT, and at most one per store.

use crate::CircuitState;

/// Calls the macro `$callback` (a path) with the record's fields, as
/// `$callback! { (args...) $(#[doc] name: Type,)* }`: `record_fields!(m, args...)`. Field
/// order is the WIT record's order.
#[macro_export]
macro_rules! record_fields {
    ($($callback:ident)::+ $(, $($args:tt)*)?) => {
        $($callback)::+! { ($($($args)*)?)
            /// Where the circuit stands.
            state: $crate::CircuitState,
            /// Bumped by exactly one on every write; the compare-and-swap is on it.
            version: u64,
            /// When the circuit last opened.
            opened_at_ms: Option<u64>,
            /// End of the current break: the first probe may start at or after it.
            open_until_ms: Option<u64>,
            /// Opens since the last full close; drives the backoff.
            trips: u32,
            /// The token of the call holding the single probe permit.
            probe_owner: Option<String>,
            /// Until when that permit is held; after it, any environment may take it over.
            probe_lease_until_ms: Option<u64>,
            /// Successful probes in this half-open episode.
            probe_successes: u32,
            /// When the circuit last closed; failures seen before it never count.
            closed_at_ms: Option<u64>,
            /// Failures seen by the environment that tripped the circuit (information only).
            failure_count: u32,
            /// Of those, the slow calls.
            slow_call_count: u32,
            /// When the record was written.
            updated_at_ms: u64,
            /// The environment that wrote it.
            updated_by: String,
            /// Why an operator forced the state, when one did.
            override_reason: Option<String>,
            /// When the operator's override ends, if it does.
            override_until_ms: Option<u64>,
            /// When a store may delete the record (DynamoDB TTL).
            expires_at_ms: u64,
        }
    };
}

/// A field's value as a store keeps it; an absent value is `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stored {
    /// A whole number (times in ms, counters, the version).
    Number(u64),
    /// Text (the state, owners, reasons).
    Text(String),
}

/// Which [`Stored`] case a field takes, so that a store can check what it reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoredKind {
    /// [`Stored::Number`].
    Number,
    /// [`Stored::Text`].
    Text,
}

/// A field that cannot be read back, named so that each store can word it its own way
/// ("column 'x' ...", "attribute 'x' ...").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// The record field.
    pub field: &'static str,
    /// What is wrong with it: "is missing", "is out of range: 5000000000", ...
    pub problem: String,
}

/// How one field's type maps to a stored value.
pub trait RecordField: Sized {
    /// What a store holds for it.
    const KIND: StoredKind;
    /// Its value in a record that was never written.
    fn absent() -> Self;
    /// Its stored value (`None`: leave it out).
    fn to_stored(&self) -> Option<Stored>;
    /// Reads it back; `Err` is the problem's text.
    fn from_stored(value: Option<Stored>) -> Result<Self, String>;
}

fn number(value: Option<Stored>) -> Result<Option<u64>, String> {
    match value {
        None => Ok(None),
        Some(Stored::Number(n)) => Ok(Some(n)),
        Some(Stored::Text(_)) => Err("should be a number, found text".into()),
    }
}

fn text(value: Option<Stored>) -> Result<Option<String>, String> {
    match value {
        None => Ok(None),
        Some(Stored::Text(s)) => Ok(Some(s)),
        Some(Stored::Number(_)) => Err("should be text, found a number".into()),
    }
}

impl RecordField for u64 {
    const KIND: StoredKind = StoredKind::Number;
    fn absent() -> Self {
        0
    }
    fn to_stored(&self) -> Option<Stored> {
        Some(Stored::Number(*self))
    }
    fn from_stored(value: Option<Stored>) -> Result<Self, String> {
        Ok(number(value)?.unwrap_or(0))
    }
}

impl RecordField for u32 {
    const KIND: StoredKind = StoredKind::Number;
    fn absent() -> Self {
        0
    }
    fn to_stored(&self) -> Option<Stored> {
        Some(Stored::Number((*self).into()))
    }
    fn from_stored(value: Option<Stored>) -> Result<Self, String> {
        let v = number(value)?.unwrap_or(0);
        u32::try_from(v).map_err(|_| format!("is out of range: {v}"))
    }
}

impl RecordField for Option<u64> {
    const KIND: StoredKind = StoredKind::Number;
    fn absent() -> Self {
        None
    }
    fn to_stored(&self) -> Option<Stored> {
        self.map(Stored::Number)
    }
    fn from_stored(value: Option<Stored>) -> Result<Self, String> {
        number(value)
    }
}

impl RecordField for String {
    const KIND: StoredKind = StoredKind::Text;
    fn absent() -> Self {
        String::new()
    }
    fn to_stored(&self) -> Option<Stored> {
        Some(Stored::Text(self.clone()))
    }
    fn from_stored(value: Option<Stored>) -> Result<Self, String> {
        Ok(text(value)?.unwrap_or_default())
    }
}

impl RecordField for Option<String> {
    const KIND: StoredKind = StoredKind::Text;
    fn absent() -> Self {
        None
    }
    fn to_stored(&self) -> Option<Stored> {
        self.clone().map(Stored::Text)
    }
    fn from_stored(value: Option<Stored>) -> Result<Self, String> {
        text(value)
    }
}

impl RecordField for CircuitState {
    const KIND: StoredKind = StoredKind::Text;
    fn absent() -> Self {
        CircuitState::Closed
    }
    fn to_stored(&self) -> Option<Stored> {
        Some(Stored::Text(self.as_str().into()))
    }
    fn from_stored(value: Option<Stored>) -> Result<Self, String> {
        match text(value)? {
            None => Err("is missing".into()),
            Some(s) => {
                CircuitState::parse(&s).ok_or_else(|| format!("holds an unknown state {s:?}"))
            }
        }
    }
}

macro_rules! declare_record {
    (() $( $(#[$meta:meta])* $name:ident : $ty:ty, )*) => {
        /// The shared record of one circuit. Every write replaces it whole, with a
        /// compare-and-swap on `version`, and bumps `version` by exactly one.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct Record {
            $( $(#[$meta])* pub $name: $ty, )*
        }

        impl Record {
            /// The field names, in order: the names of the stores' columns and attributes.
            pub const FIELDS: &'static [(&'static str, StoredKind)] =
                &[$( (stringify!($name), <$ty as RecordField>::KIND), )*];

            /// What an absent item means: a closed circuit that was never written. Its version
            /// is the one the next write swaps against (0 for a missing item).
            pub fn absent(version: u64) -> Record {
                Record { $( $name: <$ty as RecordField>::absent(), )* }.with_version(version)
            }

            /// Every field with its stored value, in [`Record::FIELDS`] order.
            pub fn to_stored(&self) -> Vec<(&'static str, Option<Stored>)> {
                vec![$( (stringify!($name), self.$name.to_stored()), )*]
            }

            /// Reads a record back, asking `get` for each field in [`Record::FIELDS`] order;
            /// `get` returns the stored value, or the problem when the store holds something
            /// of another kind.
            pub fn from_stored(
                mut get: impl FnMut(&'static str, StoredKind) -> Result<Option<Stored>, String>,
            ) -> Result<Record, FieldError> {
                Ok(Record {
                    $( $name: {
                        let field = stringify!($name);
                        get(field, <$ty as RecordField>::KIND)
                            .and_then(<$ty as RecordField>::from_stored)
                            .map_err(|problem| FieldError { field, problem })?
                    }, )*
                })
            }
        }
    };
}

record_fields!(declare_record);

impl Record {
    fn with_version(mut self, version: u64) -> Record {
        self.version = version;
        self
    }
}

/// Converts a record between two structs with the same fields (the WIT bindings' and this
/// crate's), each field with `Into`. Use as `record_fields!(convert_record, value => Type)`.
#[macro_export]
macro_rules! convert_record {
    (($value:expr => $to:path) $( $(#[$meta:meta])* $name:ident : $ty:ty, )*) => {{
        let r = $value;
        $to { $( $name: r.$name.into(), )* }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_from_its_stored_fields() {
        let mut r = Record::absent(7);
        r.state = CircuitState::HalfOpen;
        r.probe_owner = Some("env-1:9".into());
        r.opened_at_ms = Some(1_000);
        let stored = r.to_stored();
        assert_eq!(stored.len(), Record::FIELDS.len());
        let mut it = stored.into_iter();
        let back = Record::from_stored(|field, _| {
            let (name, value) = it.next().unwrap();
            assert_eq!(name, field);
            Ok(value)
        });
        assert_eq!(back, Ok(r));
    }

    #[test]
    fn an_unreadable_field_is_named_with_its_problem() {
        let wrong = |field: &str, want: &str, value: Stored| {
            let err = Record::from_stored(|f, _| {
                Ok(match f {
                    _ if f == field => Some(value.clone()),
                    "state" => Some(Stored::Text("OPEN".into())),
                    _ => None,
                })
            })
            .unwrap_err();
            assert_eq!((err.field, err.problem.as_str()), (field, want));
        };
        wrong(
            "trips",
            "is out of range: 4294967296",
            Stored::Number(1 << 32),
        );
        wrong(
            "updated_by",
            "should be text, found a number",
            Stored::Number(1),
        );
        wrong(
            "state",
            "holds an unknown state \"AJAR\"",
            Stored::Text("AJAR".into()),
        );
        let missing = Record::from_stored(|_, _| Ok(None)).unwrap_err();
        assert_eq!(
            (missing.field, missing.problem.as_str()),
            ("state", "is missing")
        );
    }
}
