//! The error table (`conformance/config-errors.json`) through the Rust API: every bad input is
//! refused with the field and the message the Python and Node packages give for it.
#![cfg(feature = "embed")]

use fleetbreaker::embed::{
    Action, Casing, DynamoDbSettings, Override, Persistence, Settings, Value, check_name,
};
use fleetbreaker::{Breaker, ConfigError, Environment, Error, MemoryStore};
use serde_json::Value as Json;

fn table() -> Vec<Json> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../conformance/config-errors.json"
    );
    let text = std::fs::read_to_string(path).expect("the error table");
    let doc: Json = serde_json::from_str(&text).expect("the error table is JSON");
    doc["cases"].as_array().expect("cases").clone()
}

/// A table value (`{"int": 0}`, `{"float": "NaN"}`, `{"text": ""}`, ...) as a binding passes it.
fn value(v: &Json) -> Value {
    let (kind, v) = v
        .as_object()
        .and_then(|o| o.iter().next())
        .expect("a typed value");
    match kind.as_str() {
        "int" => Value::Int(v.as_i64().expect("an int")),
        "float" => Value::Float(match v.as_str() {
            Some("NaN") => f64::NAN,
            Some("Infinity") => f64::INFINITY,
            Some("-Infinity") => f64::NEG_INFINITY,
            _ => v.as_f64().expect("a float"),
        }),
        "text" => Value::Text(v.as_str().expect("a string").to_string()),
        "repeat" => Value::Text(
            v[0].as_str()
                .unwrap()
                .repeat(v[1].as_u64().unwrap() as usize),
        ),
        "bool" => Value::Bool(v.as_bool().unwrap()),
        "null" => Value::Null,
        other => panic!("unknown value kind {other}"),
    }
}

fn settings(fields: &Json) -> Result<Settings, ConfigError> {
    let fields = fields.as_object().expect("config fields");
    Settings::parse(
        Casing::Snake,
        fields.iter().map(|(k, v)| (k.as_str(), value(v))),
    )
}

fn refusal(case: &Json) -> ConfigError {
    if let Some(fields) = case.get("config") {
        return settings(fields).expect_err("refused");
    }
    if let Some(name) = case.get("name") {
        return check_name(value(name)).expect_err("refused");
    }
    if let Some(options) = case.get("dynamodb") {
        let options = options.as_object().expect("options");
        let fields = options.iter().map(|(k, v)| (k.as_str(), value(v)));
        return DynamoDbSettings::parse(Casing::Snake, fields).expect_err("refused");
    }
    if let Some(path) = case.get("sqlite") {
        return Persistence::sqlite(Casing::Snake, value(path))
            .err()
            .expect("refused");
    }
    if let Some(args) = case.get("override") {
        let arg = |name: &str| args.get(name).map_or(Value::Null, value);
        return Override::parse(Action::ForceOpen, arg("duration"), arg("reason"))
            .expect_err("refused");
    }
    let [first, second] = case["conflict"].as_array().unwrap().as_slice() else {
        panic!("a conflict is two configurations")
    };
    let env = Environment::builder(MemoryStore::new()).build().unwrap();
    let on = |fields: &Json| {
        Breaker::builder("payments")
            .config(settings(fields).unwrap().config())
            .environment(&env)
            .build()
    };
    let _first = on(first).unwrap();
    match on(second) {
        Err(Error::Config(e)) => e,
        Err(other) => panic!("expected a config error, got {other}"),
        Ok(_) => panic!("a second configuration for one name was accepted"),
    }
}

/// `{recovery_timeout}` in a table message is a field name, spelled per language.
fn spelled(message: &str) -> String {
    let mut out = message.to_string();
    for field in Settings::FIELDS
        .iter()
        .chain(&DynamoDbSettings::FIELDS)
        .copied()
    {
        out = out.replace(&format!("{{{field}}}"), &Casing::Snake.spell(field));
    }
    out
}

#[test]
fn every_bad_input_in_the_table_gets_its_field_and_message() {
    let cases = table();
    assert!(cases.len() > 50, "the table has its cases");
    let mut wrong = Vec::new();
    for case in &cases {
        let got = refusal(case);
        let field = case["field"].as_str().unwrap();
        let message = spelled(case["message"].as_str().unwrap());
        if got.field != field || got.message != message {
            wrong.push(format!(
                "{}: expected {field}: {message}\n      got {}: {}",
                case["what"], got.field, got.message
            ));
        } else {
            // What every language shows: the field, then the message.
            assert_eq!(got.to_string(), format!("invalid {field}: {message}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
