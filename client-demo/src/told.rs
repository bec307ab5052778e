//! What a game told, as a line for people: the kill feed, chat, anything else by name.

use tickcast::protocol::{GameEvent, Schema, Value};

/// `event` as a line to show, or `None` for events too frequent to print (tanks' `hit`).
pub fn describe(schema: &Schema, event: &GameEvent) -> Option<String> {
    let kind = schema.events.get(usize::from(event.kind))?;
    let value = |name: &str| {
        let i = kind.params.iter().position(|p| p.name == name)?;
        Some(match event.values.get(i)? {
            Value::Int(v) => v.to_string(),
            Value::Text(t) => t.to_string(),
        })
    };
    let name = |key: &str| value(key).filter(|n| !n.is_empty()).unwrap_or_else(|| "someone".into());
    match kind.name.as_str() {
        "hit" => None,
        "kill" => Some(format!("{} destroyed {}", name("by_name"), name("victim_name"))),
        "chat" => {
            let to = if value("team").as_deref() == Some("1") {
                " (team)"
            } else {
                ""
            };
            Some(format!("{}{to}: {}", name("name"), value("line").unwrap_or_default()))
        }
        other => {
            let fields: Vec<String> = kind
                .params
                .iter()
                .filter_map(|p| Some(format!("{}={}", p.name, value(&p.name)?)))
                .collect();
            Some(format!("{other} {}", fields.join(" ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use tickcast::game::{Game, GameConfig, Tanks};
    use tickcast::protocol::Text;

    use super::*;

    #[test]
    fn tanks_kills_and_chat_read_as_sentences() {
        let schema = Tanks::schema(&GameConfig::default());
        let text = |t: &str| Value::Text(Text::new(t).unwrap());
        let kill = GameEvent {
            kind: schema.event_named("kill").unwrap(),
            values: vec![Value::Int(3), Value::Int(5), text("bob"), text("ann")],
        };
        assert_eq!(describe(&schema, &kill).as_deref(), Some("ann destroyed bob"));
        let chat = GameEvent {
            kind: schema.event_named("chat").unwrap(),
            values: vec![Value::Int(5), text("ann"), text("gg"), Value::Int(1)],
        };
        assert_eq!(describe(&schema, &chat).as_deref(), Some("ann (team): gg"));
        let hit = GameEvent {
            kind: schema.event_named("hit").unwrap(),
            values: vec![Value::Int(3), Value::Int(5)],
        };
        assert_eq!(describe(&schema, &hit), None);
    }
}
