//! What a simulated customer's task carries in its attributes besides the routing keys: the
//! call (Twilio Voice's `<Enqueue>` copies the call's parameters into the task) or the
//! conversation (Flex) it came from. Real callbacks are 1.5–2.5 KB mostly because of these
//! attributes, repeated in every event of the task, so bodies without them would make the log
//! and its benchmarks look smaller and faster than they are.

use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};

use super::sid;

const PLACES: &[(&str, &str, &str)] = &[
    ("SPRINGFIELD", "IL", "62701"),
    ("JACKSON", "MS", "39201"),
    ("AUSTIN", "TX", "73301"),
    ("SALEM", "OR", "97301"),
    ("MADISON", "WI", "53703"),
    ("ALBANY", "NY", "12207"),
];

/// The template's routing keys plus the origin details of a call (`"channel": "voice"`, the
/// default) or a conversation (any other channel), with fresh SIDs and numbers from `rng`.
pub fn with_origin(template: &Value, rng: &mut impl Rng, account_sid: &str) -> Value {
    let mut attributes = template.as_object().cloned().unwrap_or_default();
    let channel = attributes.get("channel").and_then(Value::as_str).unwrap_or("voice").to_string();
    let customer = format!("+1555{:07}", rng.gen_range(0..10_000_000));
    let contact_center = format!("+1555{:07}", rng.gen_range(0..100));
    let (city, state, zip) = *PLACES.choose(rng).expect("places");
    let origin = if channel == "voice" {
        json!({
            "call_sid": sid::generate(rng, "CA"),
            "account_sid": account_sid,
            "api_version": "2010-04-01",
            "direction": "inbound",
            "from": customer, "caller": customer,
            "from_city": city, "caller_city": city,
            "from_state": state, "caller_state": state,
            "from_zip": zip, "caller_zip": zip,
            "from_country": "US", "caller_country": "US",
            "to": contact_center, "called": contact_center,
            "to_city": "", "called_city": "",
            "to_state": "FL", "called_state": "FL",
            "to_zip": "", "called_zip": "",
            "to_country": "US", "called_country": "US",
        })
    } else {
        let conversation = sid::generate(rng, "CH");
        json!({
            "channelType": channel,
            "conversationSid": conversation,
            "channelSid": conversation,
            "from": customer,
            "customerAddress": customer,
            "direction": "inbound",
            "customers": {"phone": customer, "location": format!("{city}, {state}")},
            "conversations": {
                "conversation_id": sid::generate(rng, "KO"),
                "initiated_by": "customer",
                "communication_channel": channel,
                "external_contact": contact_center,
            },
        })
    };
    if let Value::Object(origin) = origin {
        for (name, value) in origin {
            attributes.entry(name).or_insert(value);
        }
    }
    Value::Object(attributes)
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn keeps_routing_keys_and_adds_a_fresh_call_per_task() {
        let mut rng = SmallRng::seed_from_u64(3);
        let template = json!({"type": "support", "selected_language": "en", "channel": "voice"});
        let first = with_origin(&template, &mut rng, "AC00");
        let second = with_origin(&template, &mut rng, "AC00");
        assert_eq!(first["type"], "support");
        assert_eq!(first["selected_language"], "en");
        assert!(taskrouter_protocol::sid::has_form(first["call_sid"].as_str().unwrap(), "CA"));
        assert_ne!(first["call_sid"], second["call_sid"]);
        // Real voice tasks' attributes are about 600 bytes of JSON.
        let size = first.to_string().len();
        assert!((450..900).contains(&size), "{size}: {first}");
    }

    #[test]
    fn conversations_carry_their_channel() {
        let mut rng = SmallRng::seed_from_u64(3);
        let attributes = with_origin(&json!({"type": "sales", "channel": "chat"}), &mut rng, "AC00");
        assert_eq!(attributes["channelType"], "chat");
        assert!(taskrouter_protocol::sid::has_form(attributes["conversationSid"].as_str().unwrap(), "CH"));
        assert!(attributes.get("call_sid").is_none());
    }
}
