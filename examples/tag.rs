//! A game of your own: tag. Players run around; one of them is "it", and touching another
//! player passes it on. Under 100 lines, and no line of the engine touched.
//!
//! Run it: `cargo run --release --example tag -- --game tag`, then `cargo run -p client-demo -- play` to
//! join, or open http://127.0.0.1:8080/rooms/default/ to watch.

use tickcast::Games;
use tickcast::game::motion::{SCALE, advance, velocity};
use tickcast::game::{Game, GameConfig};
use tickcast::protocol::{Entity, EntityId, Field, FieldType, InputField, Kind, Role, Schema};

/// Runners (x, y, dx, dy) by id, who is "it", and ticks until it may tag (none straight back).
#[derive(Default)]
pub struct Tag {
    size: u32,
    tick_hz: u32,
    next_id: EntityId,
    runners: std::collections::BTreeMap<EntityId, (u32, u32, i32, i32)>,
    it: Option<EntityId>,
    calm: u32,
}

impl Game for Tag {
    const NAME: &'static str = "tag";

    fn schema(config: &GameConfig) -> Schema {
        Schema {
            game: Self::NAME.into(),
            scale: SCALE,
            width: config.world_size,
            height: config.world_size,
            kinds: vec![Kind::positioned(
                "runner",
                [Field::new("it", FieldType::Flag, Role::Label)],
            )],
            input: vec![InputField::axis("dx"), InputField::axis("dy")],
        }
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

    fn join(&mut self, _name: &str) -> EntityId {
        let id = self.next_id;
        self.next_id += 1;
        // Newcomers line up along the middle; the first one is "it".
        self.runners.insert(id, (id * 800 % self.size, self.size / 2, 0, 0));
        self.it.get_or_insert(id);
        id
    }

    fn leave(&mut self, player: EntityId) {
        self.runners.remove(&player);
        // If "it" left, the runner with the lowest id is it.
        if self.it == Some(player) {
            self.it = self.runners.keys().next().copied();
        }
    }

    fn input(&mut self, player: EntityId, input: &[i32]) {
        if let (Some(r), [dx, dy]) = (self.runners.get_mut(&player), input) {
            (r.2, r.3) = (*dx, *dy);
        }
    }

    fn step(&mut self) {
        for r in self.runners.values_mut() {
            let (vx, vy) = velocity(r.2, r.3, 200, self.tick_hz);
            (r.0, r.1) = (advance(r.0, vx, self.size), advance(r.1, vy, self.size));
        }
        // "It" tags the first runner within 20 units, who becomes it after a second's calm.
        self.calm = self.calm.saturating_sub(1);
        let (Some(it), 0) = (self.it, self.calm) else { return };
        let (x, y, ..) = self.runners[&it];
        let close = |r: &(u32, u32, i32, i32)| r.0.abs_diff(x).max(r.1.abs_diff(y)) < 20 * SCALE;
        if let Some((&tagged, _)) = self.runners.iter().find(|(id, r)| **id != it && close(r)) {
            (self.it, self.calm) = (Some(tagged), self.tick_hz);
        }
    }

    fn entities(&self, out: &mut Vec<Entity>) {
        for (&id, r) in &self.runners {
            out.push(Entity::new(id, 0, &[r.0, r.1, u32::from(self.it == Some(id))]));
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut games = Games::builtin();
    games.register::<Tag>()?;
    tickcast::server::main_with(games).await // `--game tag` makes it the default room's
}
