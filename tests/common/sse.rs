//! A Server-Sent Events reader that follows the WHATWG event-stream parsing rules, so the
//! tests check the server's framing rather than trusting a lenient parser.

use futures_util::StreamExt;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
    /// The last event id as of this event (sticky, as in a browser).
    pub id: Option<String>,
}

/// Incremental parser: feed it bytes, take out complete events.
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    event: String,
    data: String,
    has_data: bool,
    last_id: Option<String>,
    pub retry: Option<u64>,
    pub comments: usize,
    /// Lines that ended in CR or CRLF: the server promises LF only.
    pub non_lf_endings: usize,
}

impl SseParser {
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(end) = self.buf.iter().position(|b| *b == b'\n' || *b == b'\r') {
            // A CR at the very end may be the first half of CRLF: wait for more bytes.
            if self.buf[end] == b'\r' && end + 1 == self.buf.len() {
                break;
            }
            let crlf = self.buf[end] == b'\r' && self.buf.get(end + 1) == Some(&b'\n');
            if self.buf[end] == b'\r' {
                self.non_lf_endings += 1;
            }
            let line = String::from_utf8(self.buf[..end].to_vec()).expect("event streams are UTF-8");
            self.buf.drain(..end + if crlf { 2 } else { 1 });
            if let Some(event) = self.line(&line) {
                out.push(event);
            }
        }
        out
    }

    fn line(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            self.comments += 1;
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = value.to_owned(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.last_id = Some(value.to_owned()),
            "retry" => self.retry = value.parse().ok().or(self.retry),
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<SseEvent> {
        let event = std::mem::take(&mut self.event);
        if !std::mem::take(&mut self.has_data) {
            return None;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the last LF
        let event = if event.is_empty() { "message".to_owned() } else { event };
        Some(SseEvent {
            event,
            data,
            id: self.last_id.clone(),
        })
    }
}

/// An open `GET /events` response.
pub struct SseClient {
    pub response_headers: reqwest::header::HeaderMap,
    stream: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    pub parser: SseParser,
    pending: std::collections::VecDeque<SseEvent>,
}

impl SseClient {
    pub async fn connect(url: &str, last_event_id: Option<&str>) -> Self {
        let mut req = reqwest::Client::new().get(url);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let res = super::within(req.send()).await.expect("GET /events");
        assert_eq!(res.status(), 200, "GET /events");
        let response_headers = res.headers().clone();
        Self {
            response_headers,
            stream: Box::pin(res.bytes_stream()),
            parser: SseParser::default(),
            pending: Default::default(),
        }
    }

    /// The next event; `None` when the response ends.
    pub async fn next(&mut self) -> Option<SseEvent> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            let chunk = super::within(self.stream.next()).await?.expect("read the event stream");
            self.pending.extend(self.parser.feed(&chunk));
        }
    }
}

/// An entity as spectators see it: its JSON object (`id`, `kind` and the fields its kind's schema
/// names), with every number as an `f64` so that `10` and `10.0` compare equal.
pub type SpecEntity = serde_json::Map<String, serde_json::Value>;

/// The world as a spectator rebuilds it from JSON events.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpecWorld {
    pub tick: Option<u64>,
    pub entities: std::collections::BTreeMap<u64, SpecEntity>,
}

/// Numbers as `f64`, everything else as it is.
fn normal(value: &serde_json::Value) -> serde_json::Value {
    match value.as_f64() {
        Some(n) if value.is_number() => serde_json::Value::from(n),
        _ => value.clone(),
    }
}

impl SpecWorld {
    /// The same world as a player holds it, read by the game's schema as spectators read it.
    pub fn from_net(world: &tickcast::protocol::delta::NetWorld, schema: &tickcast::protocol::Schema) -> Self {
        use tickcast::protocol::FieldType;
        let entities = world
            .entities()
            .iter()
            .map(|e| {
                let kind = schema.kind(e.kind).expect("every entity's kind is in the schema");
                let mut json = SpecEntity::new();
                json.insert("id".into(), f64::from(e.id).into());
                json.insert("kind".into(), kind.name.clone().into());
                for (field, &v) in kind.fields.iter().zip(&e.values) {
                    if field.private {
                        continue;
                    }
                    let value: serde_json::Value = match field.ty {
                        FieldType::Text(_) => world.text(v).into(),
                        FieldType::Coord => (f64::from(v) / f64::from(schema.scale)).into(),
                        FieldType::Int => f64::from(v as i32).into(),
                        FieldType::Flag => (v != 0).into(),
                        _ => f64::from(v).into(),
                    };
                    json.insert(field.name.clone(), value);
                }
                (u64::from(e.id), json)
            })
            .collect();
        Self {
            tick: Some(world.tick()),
            entities,
        }
    }

    /// Applies a `snapshot` or `delta` event; a delta must be based on the tick held.
    pub fn apply(&mut self, event: &str, data: &serde_json::Value) -> Result<(), String> {
        let entity = |e: &serde_json::Value| -> Result<(u64, SpecEntity), String> {
            let object = e.as_object().ok_or_else(|| format!("not an object: {e}"))?;
            let id = e["id"].as_u64().ok_or("id")?;
            e["kind"].as_str().ok_or("kind")?;
            Ok((id, object.iter().map(|(k, v)| (k.clone(), normal(v))).collect()))
        };
        match event {
            "snapshot" => {
                self.entities = data["entities"]
                    .as_array()
                    .ok_or("entities")?
                    .iter()
                    .map(entity)
                    .collect::<Result<_, _>>()?;
            }
            "delta" => {
                if data["base"].as_u64() != self.tick {
                    return Err(format!("delta based on {} applied at {:?}", data["base"], self.tick));
                }
                for u in data["updated"].as_array().ok_or("updated")? {
                    let id = u["id"].as_u64().ok_or("id")?;
                    let e = self.entities.get_mut(&id).ok_or(format!("update of unknown {id}"))?;
                    for (name, value) in u.as_object().ok_or("update")? {
                        if !e.contains_key(name) {
                            return Err(format!("update of {id} names an unknown field {name}"));
                        }
                        e.insert(name.clone(), normal(value));
                    }
                }
                for id in data["removed"].as_array().ok_or("removed")? {
                    let id = id.as_u64().ok_or("removed id")?;
                    self.entities.remove(&id).ok_or(format!("removal of unknown {id}"))?;
                }
                for e in data["spawned"].as_array().ok_or("spawned")? {
                    let (id, e) = entity(e)?;
                    if self.entities.insert(id, e).is_some() {
                        return Err(format!("spawn of existing {id}"));
                    }
                }
            }
            other => return Err(format!("unexpected event {other}")),
        }
        self.tick = Some(data["tick"].as_u64().ok_or("tick")?);
        Ok(())
    }
}

/// The tick of an event id, `<epoch>-<tick>`.
pub fn tick_of(id: &str) -> u64 {
    let (epoch, tick) = id
        .split_once('-')
        .unwrap_or_else(|| panic!("event id {id:?} has no epoch"));
    assert!(
        epoch.len() == 8 && epoch.bytes().all(|b| b.is_ascii_hexdigit()),
        "event id {id:?}: the epoch is 8 hex digits"
    );
    tick.parse()
        .unwrap_or_else(|_| panic!("event id {id:?}: the tick is a number"))
}
