//! Interest management through a real server: in a room with a view radius each player is sent
//! only its part of the world (read from what its client holds, which its checksums prove is
//! exactly what the server sent), an entity walking out of a view is removed and walking back
//! in is spawned again with its id, a game's own audience (an entity for one team, one for
//! everyone) is kept, and spectators still see the whole world.

mod common;

use std::collections::BTreeMap;

use common::{PATIENCE, TestServer, within};
use tickcast::client::Client;
use tickcast::game::{Audience, Dispatch, Entities, Game, GameConfig, Join, Refusal};
use tickcast::protocol::{
    Entity, EntityId, Field, FieldType, Hello, InputField, InputType, Kind, Param, Role, Schema, Value,
};
use tickcast::{Config, Games};
use tokio::time::Instant;

/// A game made for these tests: walkers that go where their input says at once (`x`, `y`),
/// each of a team (a join option); a beacon for each team at (150, 150), seen by that team
/// only; a board that everyone sees wherever they are.
#[derive(Default)]
struct Walk {
    walkers: BTreeMap<EntityId, (u32, u32, u32)>,
    next: EntityId,
}

const BOARD: EntityId = 1;
const BEACONS: [EntityId; 2] = [2, 3];

impl Game for Walk {
    const NAME: &'static str = "walk";

    fn schema(config: &GameConfig) -> Schema {
        let team = || Field::new("team", FieldType::Uint, Role::None);
        Schema::new(Self::NAME, 1, config.world_size, config.world_size)
            .with_kind(Kind::positioned("walker", [team()]))
            .with_kind(Kind::positioned("beacon", [team()]))
            .with_kind(Kind::new("board", [Field::new("walkers", FieldType::Uint, Role::None)]))
            .with_input(InputField::new("x", InputType::I32, 0, 999))
            .with_input(InputField::new("y", InputType::I32, 0, 999))
            .with_option(Param::int("team", 0, 1))
    }

    fn new(_: &GameConfig, _: u64) -> Self {
        Self {
            next: 10,
            ..Self::default()
        }
    }

    fn join(&mut self, join: &Join<'_>, _: &mut Dispatch) -> Result<EntityId, Refusal> {
        let id = self.next;
        self.next += 1;
        let team = join.options.int("team").unwrap_or(0) as u32;
        self.walkers.insert(id, (50, 50, team));
        Ok(id)
    }

    fn leave(&mut self, player: EntityId, _: &mut Dispatch) {
        self.walkers.remove(&player);
    }

    fn input(&mut self, player: EntityId, input: &[i32]) {
        if let (Some(w), [x, y]) = (self.walkers.get_mut(&player), input) {
            (w.0, w.1) = (*x as u32, *y as u32);
        }
    }

    fn step(&mut self, _: &mut Dispatch) {}

    fn entities(&self, out: &mut Entities<'_>) {
        out.push(Entity::new(BOARD, 2, &[self.walkers.len() as u32]));
        for (team, id) in BEACONS.iter().enumerate() {
            out.push(Entity::new(*id, 1, &[150, 150, team as u32]));
        }
        for (id, (x, y, team)) in &self.walkers {
            out.push(Entity::new(*id, 0, &[*x, *y, *team]));
        }
    }

    fn audience(&self, entity: &Entity) -> Audience {
        match entity.kind {
            1 => Audience::Team(entity.values[2]),
            _ => Audience::Near,
        }
    }

    fn team(&self, player: EntityId) -> Option<u32> {
        self.walkers.get(&player).map(|w| w.2)
    }
}

async fn walkers() -> TestServer {
    let mut games = Games::builtin();
    games.register::<Walk>().unwrap();
    let config = Config {
        game: Walk::NAME.into(),
        view_radius: Some(100),
        ..Config::defaults()
    };
    TestServer::with_games(config, games).await
}

async fn walker(server: &TestServer, team: i32) -> Client {
    let hello = Hello {
        options: vec![("team".into(), Value::Int(team))],
        ..Hello::new("w")
    };
    let mut client = within(Client::connect_with(&server.ws_url(), hello)).await.unwrap();
    common::until_snapshot(&mut client).await;
    client
}

/// The ids `client` holds now.
fn held(client: &Client) -> Vec<EntityId> {
    client.world().unwrap().entities().iter().map(|e| e.id).collect()
}

/// Receives until `done` holds for what `client` holds (every frame applied, every checksum
/// checked on the way).
async fn until(client: &mut Client, what: &str, done: impl Fn(&[EntityId]) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done(&held(client)) {
        assert!(Instant::now() < deadline, "never: {what} (holds {:?})", held(client));
        within(client.recv()).await.unwrap();
    }
}

/// Receives `ticks` more ticks, checking after each that `client` never holds `never`.
async fn never_holds(client: &mut Client, never: EntityId, ticks: u64) {
    let to = client.world().unwrap().tick() + ticks;
    while client.world().unwrap().tick() < to {
        within(client.recv()).await.unwrap();
        assert!(
            !held(client).contains(&never),
            "holds {never} at tick {}",
            client.world().unwrap().tick()
        );
    }
}

#[tokio::test]
async fn each_player_holds_its_view_and_entities_come_and_go_with_their_ids() {
    let server = walkers().await;
    let mut ann = walker(&server, 0).await;
    let mut bob = walker(&server, 1).await;
    let (a, b) = (ann.player_id(), bob.player_id());
    // Both at (50, 50): each sees the other, the board, and its own team's beacon only.
    until(&mut ann, "ann sees bob", |ids| ids.contains(&b)).await;
    assert_eq!(held(&ann), vec![BOARD, BEACONS[0], a, b]);
    until(&mut bob, "bob sees ann", |ids| ids.contains(&a)).await;
    assert_eq!(held(&bob), vec![BOARD, BEACONS[1], a, b]);

    // Bob walks far away: ann's next frames remove him, and never show him while he is away
    // (a second and more of deltas: every checksum of ann's view holds).
    let far = bob.input_values(&[("x", 900), ("y", 900)]).unwrap();
    bob.send_input(&far).await.unwrap();
    until(&mut ann, "bob leaves ann's view", |ids| !ids.contains(&b)).await;
    never_holds(&mut ann, b, 45).await;
    // The board is everyone's, even far away; the beacons are near ann, not bob.
    until(&mut bob, "bob's view is his own", |ids| !ids.contains(&a)).await;
    assert_eq!(held(&bob), vec![BOARD, b]);

    // Bob comes back: spawned again in ann's world, with the same id and all his fields.
    let near = bob.input_values(&[("x", 120), ("y", 130)]).unwrap();
    bob.send_input(&near).await.unwrap();
    until(&mut ann, "bob comes back", |ids| ids.contains(&b)).await;
    let back = ann.world().unwrap().get(b).copied().unwrap();
    assert_eq!((back.values[0], back.values[1], back.values[2]), (120, 130, 1));
    until(&mut bob, "bob sees his beacon again", |ids| ids.contains(&BEACONS[1])).await;
    assert!(!held(&bob).contains(&BEACONS[0]), "another team's beacon");
    let to = ann.world().unwrap().tick() + 45;
    common::until_tick(&mut ann, to).await;

    // Spectators see the whole world.
    let state: serde_json::Value = within(reqwest::get(server.http_url("/state")))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(state["entities"].as_array().unwrap().len(), 5, "{state}");
}

#[tokio::test]
async fn players_of_one_view_hold_the_same_world_tick_by_tick() {
    let server = walkers().await;
    let mut ann = walker(&server, 0).await;
    let mut cal = walker(&server, 0).await;
    let mut bob = walker(&server, 1).await;
    let far = bob.input_values(&[("x", 900), ("y", 900)]).unwrap();
    bob.send_input(&far).await.unwrap();
    until(&mut bob, "bob is alone", |ids| ids.len() == 2).await;
    // Ann and cal are in one view (one cell, one team): they hold the same world, tick by tick.
    for _ in 0..40 {
        within(ann.recv()).await.unwrap();
        let tick = ann.world().unwrap().tick();
        common::until_tick(&mut cal, tick).await;
        if cal.world().unwrap().tick() == tick {
            assert_eq!(held(&ann), held(&cal));
        }
    }
    assert_eq!(held(&ann), vec![BOARD, BEACONS[0], ann.player_id(), cal.player_id()]);
    // Two views for three players: ann and cal's, and bob's.
    assert_eq!(server.metrics.views.get(), 2);
    assert!(server.metrics.view_frames_encoded.get() > 0);
}

/// The ids a viewport spectator holds in `world` after applying every event until `done`
/// holds.
async fn watch_until(
    sse: &mut common::sse::SseClient,
    world: &mut common::sse::SpecWorld,
    what: &str,
    done: impl Fn(&[u64]) -> bool,
) -> Vec<u64> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let ids: Vec<u64> = world.entities.keys().copied().collect();
        if world.tick.is_some() && done(&ids) {
            return ids;
        }
        assert!(Instant::now() < deadline, "never: {what} (holds {ids:?})");
        let event = within(sse.next()).await.expect("the stream goes on");
        if matches!(event.event.as_str(), "snapshot" | "delta") {
            let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
            world.apply(&event.event, &data).unwrap();
        }
    }
}

#[tokio::test]
async fn a_spectator_watches_a_rectangle_or_follows_a_player() {
    let server = walkers().await;
    let ann = walker(&server, 0).await;
    let mut bob = walker(&server, 1).await;
    let (a, b) = (u64::from(ann.player_id()), u64::from(bob.player_id()));
    let far = bob.input_values(&[("x", 900), ("y", 900)]).unwrap();
    bob.send_input(&far).await.unwrap();

    // The corner ann stands in: the board (unpositioned: everyone's), both beacons (a
    // spectator sees every team's), ann; bob once he is gone from it.
    let corner = server.http_url("/events?x=0&y=0&w=200&h=200");
    let mut sse = common::sse::SseClient::connect(&corner, None).await;
    let mut world = common::sse::SpecWorld::default();
    let ids = watch_until(&mut sse, &mut world, "ann alone in the corner", |ids| {
        ids.contains(&a) && !ids.contains(&b)
    })
    .await;
    assert_eq!(ids, vec![1, 2, 3, a]);
    // Following bob: the board and bob, wherever he goes.
    let follow = server.http_url(&format!("/events?follow={b}&w=200&h=200"));
    let mut sse = common::sse::SseClient::connect(&follow, None).await;
    let mut world = common::sse::SpecWorld::default();
    watch_until(&mut sse, &mut world, "bob alone", |ids| ids == [1, b]).await;
    let near = bob.input_values(&[("x", 60), ("y", 60)]).unwrap();
    bob.send_input(&near).await.unwrap();
    watch_until(&mut sse, &mut world, "bob by ann again", |ids| ids == [1, 2, 3, a, b]).await;

    // A viewport that is not one is a 400 with the reason.
    let bad = within(reqwest::get(server.http_url("/events?x=1&y=2"))).await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("x, y, w and h"));
}
