//! A spectator's viewport: a rectangle of the world, or a square around an entity it follows.
//! The feed's snapshots and deltas are the whole world's, encoded once for every spectator; a
//! viewport stream makes its own instead, from the feed's latest world, filtered to its
//! rectangle: a snapshot first, then a delta from what it sent last (what entered the
//! rectangle spawned in full, what left it removed, ids unchanged). The game's events and the
//! end of a match pass as they are. Unpositioned entities are everyone's.

use std::sync::Arc;

use crate::feed::event::{At, Epoch, Event, EventKind};
use crate::feed::{Feed, render};
use crate::protocol::delta::NetWorld;
use crate::protocol::{EntityId, Role, Schema};

/// What part of the world a spectator watches, in world units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watch {
    /// The rectangle from `(x, y)`, `w` wide and `h` high.
    Rect { x: u32, y: u32, w: u32, h: u32 },
    /// A `w` x `h` rectangle centred on entity `id` (where it was last seen, once it is gone).
    Follow { id: EntityId, w: u32, h: u32 },
}

impl Watch {
    /// Reads `x`, `y`, `w`, `h` and `follow` from a query's pairs: a rectangle (all four), an
    /// entity to follow (with `w` and `h`, 500 by default), or none of them; anything else is
    /// the reason for a 400.
    pub(crate) fn from_query<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> Result<Option<Self>, String> {
        let (mut x, mut y, mut w, mut h, mut follow) = (None, None, None, None, None);
        for (name, value) in pairs {
            let slot = match name {
                "x" => &mut x,
                "y" => &mut y,
                "w" => &mut w,
                "h" => &mut h,
                "follow" => &mut follow,
                _ => continue,
            };
            let number: u32 = value
                .parse()
                .map_err(|_| format!("{name}={value:?} is not a whole number of world units"))?;
            *slot = Some(number);
        }
        let positive = |name: &str, v: Option<u32>| match v {
            Some(0) => Err(format!("{name} must be at least 1")),
            v => Ok(v),
        };
        let (w, h) = (positive("w", w)?, positive("h", h)?);
        match (follow, x, y, w, h) {
            (None, None, None, None, None) => Ok(None),
            (Some(id), None, None, w, h) => Ok(Some(Self::Follow {
                id,
                w: w.unwrap_or(500),
                h: h.unwrap_or(500),
            })),
            (None, Some(x), Some(y), Some(w), Some(h)) => Ok(Some(Self::Rect { x, y, w, h })),
            (Some(_), _, _, _, _) => Err("follow takes w and h, not x and y".into()),
            _ => Err("a viewport needs x, y, w and h (world units), or follow=<entity id>".into()),
        }
    }
}

/// One spectator's viewport and what it was sent last.
#[derive(Debug)]
pub(crate) struct Viewport {
    watch: Watch,
    /// The centre of a followed entity, as last seen (fixed point).
    centre: Option<(u32, u32)>,
    /// The viewport's world as last sent, and the incarnation it was of.
    sent: Option<(Epoch, NetWorld)>,
}

impl Viewport {
    pub(crate) fn new(watch: Watch) -> Self {
        Self {
            watch,
            centre: None,
            sent: None,
        }
    }

    /// The next event for this viewport: of the feed's latest world, a snapshot (the first, or
    /// after a new match) or a delta from what was sent last; `None` if nothing in it changed.
    pub(crate) fn next(&mut self, feed: &Feed) -> Option<Event> {
        let (epoch, world) = feed.current();
        let schema = feed.schema();
        let visible = self.filter(&world, schema);
        let spectators = feed.spectator_count();
        let at = At::tick(visible.tick());
        let event = match self.sent.take() {
            Some((sent_epoch, sent)) if sent_epoch == epoch => {
                if sent.tick() == visible.tick() {
                    self.sent = Some((sent_epoch, sent));
                    return None;
                }
                let changes = sent.diff(&visible, schema);
                let json = render::delta(sent.tick(), &changes, &visible, schema, spectators);
                Event::new(&epoch, at, At::tick(sent.tick()), EventKind::Delta, json)
            }
            _ => {
                let json = render::snapshot(&visible, schema, feed.schema_json(), spectators);
                Event::new(&epoch, at, at, EventKind::Snapshot, json)
            }
        };
        self.sent = Some((epoch, visible));
        Some(event)
    }

    /// The part of `world` in the viewport.
    fn filter(&mut self, world: &Arc<NetWorld>, schema: &Schema) -> NetWorld {
        let scale = schema.scale.max(1);
        let position = |e: &crate::protocol::Entity| {
            let kind = schema.kinds.get(usize::from(e.kind))?;
            let x = kind.fields.iter().position(|f| f.role == Role::X)?;
            let y = kind.fields.iter().position(|f| f.role == Role::Y)?;
            Some((e.values[x], e.values[y]))
        };
        let (x0, y0, w, h) = match self.watch {
            Watch::Rect { x, y, w, h } => (x.saturating_mul(scale), y.saturating_mul(scale), w, h),
            Watch::Follow { id, w, h } => {
                if let Some(at) = world.get(id).and_then(position) {
                    self.centre = Some(at);
                }
                let (cx, cy) = self.centre.unwrap_or_default();
                let (hw, hh) = (w.saturating_mul(scale) / 2, h.saturating_mul(scale) / 2);
                (cx.saturating_sub(hw), cy.saturating_sub(hh), w, h)
            }
        };
        let (x1, y1) = (
            x0.saturating_add(w.saturating_mul(scale)),
            y0.saturating_add(h.saturating_mul(scale)),
        );
        let inside: Vec<usize> = world
            .entities()
            .iter()
            .enumerate()
            .filter(|(_, e)| position(e).is_none_or(|(x, y)| (x0..x1).contains(&x) && (y0..y1).contains(&y)))
            .map(|(i, _)| i)
            .collect();
        let mut visible = NetWorld::default();
        world.pick_into(&mut visible, &inside);
        visible
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(query: &str) -> Result<Option<Watch>, String> {
        Watch::from_query(query.split('&').filter_map(|p| p.split_once('=')))
    }

    #[test]
    fn a_viewport_is_a_rectangle_or_an_entity_followed() {
        assert_eq!(watch("last_event_id=x"), Ok(None));
        assert_eq!(
            watch("x=10&y=20&w=300&h=200"),
            Ok(Some(Watch::Rect {
                x: 10,
                y: 20,
                w: 300,
                h: 200
            }))
        );
        assert_eq!(watch("follow=7"), Ok(Some(Watch::Follow { id: 7, w: 500, h: 500 })));
        for bad in ["x=1&y=2", "x=1&y=2&w=0&h=3", "follow=7&x=1", "w=-1", "x=a&y=1&w=1&h=1"] {
            assert!(watch(bad).is_err(), "{bad}");
        }
    }
}
