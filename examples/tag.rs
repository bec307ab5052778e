//! A game of your own: tag. Players run around; one of them is "it", and touching another
//! player passes it on, which everyone is told; after 20 tags the match ends, and whoever was
//! "it" the least wins. About 140 lines, and no line of the engine touched.
//!
//! Run it: `cargo run --release --example tag -- --game tag`, then `cargo run -p client-demo -- play` to
//! join, or open http://127.0.0.1:8080/rooms/default/ to watch.

use std::collections::BTreeMap;

use tickcast::Games;
use tickcast::game::motion::{IVec2, SCALE, UVec2, advance, velocity, within};
use tickcast::game::{Dispatch, Entities, Game, GameConfig, Join, Refusal};
use tickcast::protocol::{Entity, EntityId, EventKind, Field, FieldType, InputField, Kind, Param, Role, Schema};
use tickcast::protocol::{Results, Standing, Text, Value};

/// A runner: where it is, where it heads, its name, how often it was "it", and whether its
/// player's connection dropped (its seat is kept a while: it shows greyed out).
#[derive(Default)]
struct Runner {
    at: UVec2,
    dir: IVec2,
    name: Text,
    caught: u32,
    away: bool,
}

/// The runners by id, who is "it", ticks until it may tag (none straight back), tags so far.
#[derive(Default)]
pub struct Tag {
    size: u32,
    tick_hz: u32,
    next_id: EntityId,
    runners: BTreeMap<EntityId, Runner>,
    it: Option<EntityId>,
    calm: u32,
    tags: u32,
}

impl Game for Tag {
    const NAME: &'static str = "tag";

    fn schema(config: &GameConfig) -> Schema {
        let runner = [
            Field::new("it", FieldType::Flag, Role::Label),
            Field::new("away", FieldType::Flag, Role::None),
            Field::new("name", FieldType::Text(32), Role::Name),
        ];
        Schema::new(Self::NAME, SCALE, config.world_size, config.world_size)
            .with_kind(Kind::positioned("runner", runner))
            .with_input(InputField::axis("dx"))
            .with_input(InputField::axis("dy"))
            .with_event(EventKind::new("tagged", [Param::text("it", 32)], true))
    }

    fn new(config: &GameConfig, _seed: u64) -> Self {
        let (size, tick_hz) = (config.world_size * SCALE, config.tick_hz);
        Self {
            size,
            tick_hz,
            next_id: 1,
            ..Self::default()
        }
    }

    fn join(&mut self, join: &Join<'_>, _: &mut Dispatch) -> Result<EntityId, Refusal> {
        let id = self.next_id;
        self.next_id += 1;
        // Newcomers line up along the middle; the first one is "it".
        let at = UVec2::new(id * 800 % self.size, self.size / 2);
        self.runners.insert(
            id,
            Runner {
                at,
                name: join.name.clone(),
                ..Runner::default()
            },
        );
        self.it.get_or_insert(id);
        Ok(id)
    }

    fn leave(&mut self, player: EntityId, _: &mut Dispatch) {
        self.runners.remove(&player);
        // If "it" left, the runner with the lowest id is it.
        if self.it == Some(player) {
            self.it = self.runners.keys().next().copied();
        }
    }

    fn away(&mut self, player: EntityId, _: &mut Dispatch) {
        self.runners.entry(player).and_modify(|r| r.away = true);
    }

    fn back(&mut self, player: EntityId, _: &mut Dispatch) {
        self.runners.entry(player).and_modify(|r| r.away = false);
    }

    fn input(&mut self, player: EntityId, input: &[i32]) {
        if let (Some(r), [dx, dy]) = (self.runners.get_mut(&player), input) {
            r.dir = IVec2::new(*dx, *dy);
        }
    }

    fn step(&mut self, out: &mut Dispatch) {
        for r in self.runners.values_mut() {
            r.at = advance(r.at, velocity(r.dir, 200, self.tick_hz), self.size);
        }
        // "It" tags the first runner within 20 units, who becomes it after a second's calm.
        self.calm = self.calm.saturating_sub(1);
        let (Some(it), 0) = (self.it, self.calm) else { return };
        let at = self.runners[&it].at;
        let Some((&tagged, _)) = self
            .runners
            .iter()
            .find(|(id, r)| **id != it && within(r.at, at, 20 * SCALE))
        else {
            return;
        };
        (self.it, self.calm, self.tags) = (Some(tagged), self.tick_hz, self.tags + 1);
        let runner = self.runners.get_mut(&tagged).expect("just found");
        runner.caught += 1;
        let _ = out.tell_all(0, vec![Value::Text(runner.name.clone())]);
        if self.tags == 20 {
            out.end(self.results());
        }
    }

    fn entities(&self, out: &mut Entities<'_>) {
        for (&id, r) in &self.runners {
            let (it, away) = (u32::from(self.it == Some(id)), u32::from(r.away));
            out.push(Entity::new(id, 0, &[r.at.x, r.at.y, it, away]))
                .text(4, &r.name);
        }
    }
}

impl Tag {
    /// The runners ranked by how rarely they were "it".
    fn results(&self) -> Results {
        let mut by: Vec<_> = self
            .runners
            .iter()
            .map(|(&id, r)| (r.caught, id, r.name.clone()))
            .collect();
        by.sort();
        let standings = by.iter().map(|(caught, id, name)| Standing {
            player: *id,
            name: name.clone(),
            rank: 1 + by.iter().filter(|(c, ..)| c < caught).count() as u32,
            score: -(*caught as i32),
        });
        Results {
            summary: Text::lossy(&format!("{} tags", self.tags), 64),
            standings: standings.collect(),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut games = Games::builtin();
    games.register::<Tag>()?;
    tickcast::server::main_with(games).await // `--game tag` makes it the default room's
}
