//! Every JSON the engine reads from outside — resources with their targets and settings,
//! and metric pushes — fed arbitrary JSON, arbitrary bytes and near-valid documents (a
//! valid one with one field replaced, dropped or added): parsing and validation never
//! panic, and valid documents round-trip and stay valid. Case counts keep this to a few
//! seconds in CI.

use engine::model::{Resource, ResourceId, ResourceSettings, ResourceType, Target};
use engine::push::parse_push;
use proptest::prelude::*;
use serde_json::{json, Map, Value};

/// Any JSON value, nested a few levels, with the numbers that break naive code (NaN is
/// not JSON; huge, tiny, negative and fractional values are).
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            Just(String::new()),
            Just("cpu".to_owned()),
            Just("custom:42".to_owned()),
            Just("utilization".to_owned()),
            Just("le".to_owned()),
            Just("p95".to_owned()),
            "\\PC{0,40}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(("[a-z_]{1,14}", inner), 0..6)
                .prop_map(|pairs| Value::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// One edit that keeps a document almost valid.
#[derive(Debug, Clone)]
enum Nudge {
    Replace(usize, Value),
    Remove(usize),
    Add(String, Value),
}

fn nudges() -> impl Strategy<Value = Vec<Nudge>> {
    let nudge = prop_oneof![
        (any::<usize>(), any_json()).prop_map(|(i, v)| Nudge::Replace(i, v)),
        any::<usize>().prop_map(Nudge::Remove),
        ("[a-z_]{1,14}", any_json()).prop_map(|(k, v)| Nudge::Add(k, v)),
    ];
    prop::collection::vec(nudge, 1..4)
}

/// Applies the nudges to the object at `path` inside `doc` (or the root).
fn nudge_object(doc: &mut Value, path: &[&str], nudges: &[Nudge]) {
    let mut target = doc;
    for key in path {
        match target.get_mut(*key) {
            Some(next) => target = next,
            None => return,
        }
    }
    let Some(object) = target.as_object_mut() else {
        return;
    };
    for nudge in nudges {
        let keys: Vec<String> = object.keys().cloned().collect();
        match nudge {
            Nudge::Replace(i, v) if !keys.is_empty() => {
                object.insert(keys[i % keys.len()].clone(), v.clone());
            }
            Nudge::Remove(i) if !keys.is_empty() => {
                object.remove(&keys[i % keys.len()]);
            }
            Nudge::Add(k, v) => {
                object.insert(k.clone(), v.clone());
            }
            _ => {}
        }
    }
}

fn resource_of(resource_type: ResourceType) -> Resource {
    let id = ResourceId::new(&resource_type.to_string()).unwrap();
    Resource::new(id, resource_type, "host")
}

fn any_resource_type() -> impl Strategy<Value = ResourceType> {
    prop_oneof![
        Just(ResourceType::Cpu),
        Just(ResourceType::Memory),
        Just(ResourceType::Disk),
        Just(ResourceType::Network),
        Just(ResourceType::Database),
        Just(ResourceType::Cache),
        (0u32..1000).prop_map(ResourceType::Custom),
    ]
}

/// Parses and, when that works, validates: the result does not matter, a panic does.
fn parse_and_validate(doc: &Value) {
    if let Ok(resource) = serde_json::from_value::<Resource>(doc.clone()) {
        let _ = resource.validate();
        if let Some(target) = &resource.target {
            let _ = target.validate(&resource.metrics, &resource.settings);
            let _ = resource.target_kind().map(|kind| target.describe(kind));
        }
    }
    if let Ok(settings) = serde_json::from_value::<ResourceSettings>(doc.clone()) {
        let _ = settings.validate();
    }
    if let Ok(target) = serde_json::from_value::<Target>(doc.clone()) {
        let cpu = resource_of(ResourceType::Cpu);
        let _ = target.validate(&cpu.metrics, &cpu.settings);
    }
}

const NOW: i64 = 1_800_000_000_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_json_never_panics_resources_targets_or_settings(doc in any_json()) {
        parse_and_validate(&doc);
    }

    #[test]
    fn near_valid_resources_never_panic(
        resource_type in any_resource_type(),
        where_ in prop_oneof![Just(vec![]), Just(vec!["target"]), Just(vec!["settings"])],
        edits in nudges(),
    ) {
        let mut doc = serde_json::to_value(resource_of(resource_type)).unwrap();
        nudge_object(&mut doc, &where_, &edits);
        parse_and_validate(&doc);
    }

    #[test]
    fn valid_targets_round_trip_and_stay_valid(value in 0.0f64..=100.0, for_secs in 0u32..3600) {
        let mut resource = resource_of(ResourceType::Cpu);
        let target = resource.target.as_mut().unwrap();
        target.value = value;
        // 0 or at least the sample interval, as the engine requires.
        target.for_secs = if for_secs < resource.settings.step_secs { 0 } else { for_secs };
        prop_assert!(resource.validate().is_ok());
        let json = serde_json::to_string(&resource).unwrap();
        let mut back: Resource = serde_json::from_str(&json).unwrap();
        prop_assert!(back.validate().is_ok());
        // serde_json parses floats fast rather than exactly (no `float_roundtrip`
        // feature): the last bit may differ, nothing else.
        let read = back.target.as_ref().unwrap().value;
        prop_assert!((read - value).abs() <= value.abs() * 4.0 * f64::EPSILON, "{} vs {}", read, value);
        back.target.as_mut().unwrap().value = value;
        prop_assert_eq!(&back, &resource);
    }

    #[test]
    fn arbitrary_bytes_and_json_never_panic_the_push_parser(
        bytes in prop::collection::vec(any::<u8>(), 0..256),
        doc in any_json(),
    ) {
        let _ = parse_push(&bytes, NOW);
        let _ = parse_push(doc.to_string().as_bytes(), NOW);
        let _ = parse_push(json!({"samples": [doc]}).to_string().as_bytes(), NOW);
    }

    #[test]
    fn near_valid_pushes_never_panic_and_valid_ones_are_accepted(
        id in 0u32..100_000,
        value in -1e12f64..1e12,
        ago_ms in 0i64..3_000_000,
        edits in nudges(),
    ) {
        let sample = json!({
            "resource": format!("custom:{id}"),
            "metric": "queue_depth",
            "value": value,
            "timestamp": NOW - ago_ms,
        });
        let valid = json!({"samples": [sample.clone()]});
        let parsed = parse_push(valid.to_string().as_bytes(), NOW);
        prop_assert!(parsed.is_ok(), "{:?}", parsed);
        let parsed = parsed.unwrap();
        prop_assert_eq!(parsed.len(), 1);
        prop_assert_eq!(parsed[0].custom_id, id);
        let mut broken = json!({"samples": [sample]});
        nudge_object(&mut broken["samples"][0], &[], &edits);
        let _ = parse_push(broken.to_string().as_bytes(), NOW);
        let mut top = valid;
        nudge_object(&mut top, &[], &edits);
        let _ = parse_push(top.to_string().as_bytes(), NOW);
    }
}
