//! `play`'s screen: the world scaled into the terminal and a side panel, drawn into a ratatui
//! [`Buffer`] from plain data, so tests check it cell by cell without a terminal. Any game with
//! positioned entities draws: the schema says where each kind's position and score are; the
//! player's own kind is drawn `o`, the others `•`, `*`, `+`…
//!
//! ```text
//! ┌ tickcast ──────────────────┐ you        #101
//! │   •         o              │ score      3
//! │        @          •        │ ...
//! └────────────────────────────┘ leaderboard
//! ```

use std::collections::VecDeque;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Margin, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Widget};
use tickcast::protocol::delta::NetWorld;

use crate::arena::{self, Arena};
use crate::keys::arrow;
use crate::stats::{Millis, RttStats};

/// Smallest terminal the screen fits in.
pub const MIN_SIZE: (u16, u16) = (48, 14);

/// Width of the side panel.
const PANEL_WIDTH: u16 = 26;

/// Players shown on the leaderboard.
const LEADERS: usize = 5;

/// Glyphs: the player, others of its kind, then the other kinds in order.
const ME: &str = "@";
const PLAYER: &str = "o";
const OTHERS: [&str; 4] = ["•", "*", "+", "x"];

/// Everything the screen shows.
#[derive(Debug, Clone)]
pub struct View<'a> {
    /// The world as last received; `None` until the first snapshot.
    pub world: Option<&'a NetWorld>,
    /// The world's size and its kinds' roles.
    pub arena: Arena,
    /// The turret's angle, in games that have one.
    pub aim: Option<u8>,
    /// This player's entity id.
    pub me: u32,
    /// The direction the player asked for.
    pub direction: (i8, i8),
    /// Ping round trips so far.
    pub rtt: &'a RttStats,
    /// Times the world was rebuilt after a desync.
    pub resyncs: u64,
    /// The last lines the game told (the kill feed, chat, results), newest last.
    pub told: &'a VecDeque<String>,
    /// The chat line being typed, while it is open.
    pub typing: Option<&'a str>,
    /// Whether the game has a chat.
    pub chat: bool,
}

impl Widget for &View<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
            let msg = format!("terminal too small: {}x{} at least", MIN_SIZE.0, MIN_SIZE.1);
            Paragraph::new(msg).render(area, buf);
            return;
        }
        let [field, _] = Layout::horizontal([Constraint::Min(0), Constraint::Length(PANEL_WIDTH)]).areas(area);
        let field = fit(field, &self.arena);
        // The panel follows the field, however much the field had to shrink to keep its shape.
        let panel = Rect {
            x: field.right(),
            width: area.right() - field.right(),
            ..area
        };
        let block = Block::bordered().title(" tickcast ");
        let inner = block.inner(field);
        block.render(field, buf);
        match self.world {
            Some(world) => draw_entities(world, &self.arena, self.me, inner, buf),
            None => Paragraph::new("waiting for the first snapshot…").render(inner, buf),
        }
        Paragraph::new(self.panel()).render(panel.inner(Margin::new(1, 0)), buf);
    }
}

impl View<'_> {
    /// The side panel's lines.
    fn panel(&self) -> Vec<Line<'static>> {
        let highlight = Style::new().fg(Color::LightGreen).add_modifier(Modifier::BOLD);
        let row =
            |label: &str, value: Option<String>| Line::from(format!("{label:<10} {}", value.as_deref().unwrap_or("-")));
        let own = self.world.and_then(|w| w.get(self.me));
        let name = |id: u32| {
            let named = self.world.and_then(|w| self.arena.name(w, w.get(id)?));
            named.map_or_else(|| format!("#{id}"), str::to_owned)
        };
        let mut lines = vec![
            Line::styled(format!("{:<10} {}", "you", name(self.me)), highlight),
            row("score", own.and_then(|e| self.arena.score(e)).map(|s| s.to_string())),
            row(
                "position",
                own.and_then(|e| self.arena.units(e))
                    .map(|(x, y)| format!("{x:.0}, {y:.0}")),
            ),
            row("heading", Some(arrow(self.direction).to_string())),
            Line::default(),
            Line::from("leaderboard").bold(),
        ];
        if let Some(aim) = self.aim {
            let label = own
                .and_then(|e| self.arena.label(e))
                .map_or(String::new(), |l| format!(", {l}"));
            lines.insert(
                4,
                row("turret", Some(format!("{}°{label}", u32::from(aim) * 360 / 256))),
            );
        }
        let leaders = self
            .world
            .map(|w| arena::leaderboard(w, &self.arena, LEADERS))
            .unwrap_or_default();
        for (rank, s) in leaders.iter().enumerate() {
            let style = if s.id == self.me { highlight } else { Style::new() };
            lines.push(Line::styled(
                format!("{:>2}. {:<12.12} {:>4}", rank + 1, name(s.id), s.score),
                style,
            ));
        }
        lines.push(Line::default());

        let p99 = Some(self.rtt.summary()).filter(|s| s.samples > 0).map(|s| s.p99);
        lines.push(row(
            "rtt",
            self.rtt.last().map(|d| Millis(d.as_micros() as u64).to_string()),
        ));
        lines.push(row("rtt p99", p99.map(|us| Millis(us).to_string())));
        if let Some(world) = self.world {
            let counts = arena::census(world, &self.arena);
            let census: Vec<String> = counts
                .iter()
                .enumerate()
                .map(|(kind, n)| format!("{n} {}", self.arena.kind_name(kind as u8)))
                .collect();
            lines.push(row("tick", Some(world.tick().to_string())));
            lines.push(row("world", Some(census.join(", "))));
        }
        if self.resyncs > 0 {
            lines.push(row("resyncs", Some(self.resyncs.to_string())));
        }
        if !self.told.is_empty() {
            lines.push(Line::default());
            lines.extend(self.told.iter().map(|l| Line::from(l.clone())));
        }
        if let Some(line) = self.typing {
            lines.push(Line::styled(format!("say> {line}_"), highlight));
        }
        lines.push(Line::default());
        lines.push(Line::from("arrows/WASD move").dim());
        if self.aim.is_some() {
            lines.push(Line::from("j/l turn, f fire").dim());
        }
        if self.chat {
            lines.push(Line::from("t chat").dim());
        }
        lines.push(Line::from("space stop, q quit").dim());
        lines
    }
}

/// The largest rectangle in `area`, anchored at its top left, that shows the arena undistorted
/// (with its border). A terminal cell is about twice as tall as wide, so one row of world takes
/// two columns.
pub fn fit(area: Rect, arena: &Arena) -> Rect {
    let cols_per_row = 2.0 * f64::from(arena.width.max(1)) / f64::from(arena.height.max(1));
    let (avail_cols, avail_rows) = (
        f64::from(area.width.saturating_sub(2)),
        f64::from(area.height.saturating_sub(2)),
    );
    let rows = avail_rows.min(avail_cols / cols_per_row).floor().max(1.0);
    let cols = (rows * cols_per_row).round().clamp(1.0, avail_cols.max(1.0));
    // Both are at most the area's own u16 sizes, so the casts are exact.
    Rect::new(area.x, area.y, cols as u16 + 2, rows as u16 + 2).intersection(area)
}

/// The cell of `inner` that a position falls in.
fn cell(inner: Rect, arena: &Arena, x: u32, y: u32) -> (u16, u16) {
    let scale = |v: u32, size: u32, cells: u16| {
        let c = u64::from(v) * u64::from(cells) / u64::from(size.max(1));
        // Clamped below `cells`, so it fits a u16.
        c.min(u64::from(cells.saturating_sub(1))) as u16
    };
    (
        inner.x + scale(x, arena.width, inner.width),
        inner.y + scale(y, arena.height, inner.height),
    )
}

/// The other kinds first, then the others of this player's kind over them, then this player
/// on top of everything.
fn draw_entities(world: &NetWorld, arena: &Arena, me: u32, inner: Rect, buf: &mut Buffer) {
    if inner.is_empty() {
        return;
    }
    let own_kind = world.get(me).map(|e| e.kind);
    let colours = [Color::Yellow, Color::Magenta, Color::Blue, Color::Red];
    let mut others = 0;
    for kind in 0..arena.kinds() as u8 {
        let (glyph, style) = if Some(kind) == own_kind {
            continue;
        } else {
            others += 1;
            let i = (others - 1) % OTHERS.len();
            (OTHERS[i], Style::new().fg(colours[i]))
        };
        draw_kind(world, arena, kind, me, glyph, style, inner, buf);
    }
    if let Some(kind) = own_kind {
        draw_kind(world, arena, kind, me, PLAYER, Style::new().fg(Color::Cyan), inner, buf);
    }
    if let Some((x, y)) = world.get(me).and_then(|e| arena.position(e)) {
        let (x, y) = cell(inner, arena, x, y);
        let style = Style::new()
            .fg(Color::LightGreen)
            .add_modifier(Modifier::BOLD | Modifier::REVERSED);
        buf.set_string(x, y, ME, style);
    }
}

#[allow(clippy::too_many_arguments)]
fn draw_kind(
    world: &NetWorld,
    arena: &Arena,
    kind: u8,
    me: u32,
    glyph: &str,
    style: Style,
    inner: Rect,
    buf: &mut Buffer,
) {
    for e in world.entities().iter().filter(|e| e.kind == kind && e.id != me) {
        if let Some((x, y)) = arena.position(e) {
            let (x, y) = cell(inner, arena, x, y);
            buf.set_string(x, y, glyph, style);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::arena::tests::{arena_schema, orb, player, world as arena_world};

    fn arena() -> Arena {
        Arena::from_schema(&arena_schema())
    }

    fn world() -> NetWorld {
        let mut w = arena_world(vec![
            orb(1, 0, 0),
            orb(2, 15_999, 15_999),
            player(10, 8_000, 0, 9),
            player(11, 8_000, 8_000, 3),
        ]);
        w = NetWorld::new(42, w.entities().to_vec());
        w
    }

    fn view<'a>(world: Option<&'a NetWorld>, rtt: &'a RttStats, direction: (i8, i8)) -> View<'a> {
        View {
            world,
            arena: arena(),
            aim: None,
            me: 11,
            direction,
            rtt,
            resyncs: 0,
            told: &NO_LINES,
            typing: None,
            chat: false,
        }
    }

    static NO_LINES: VecDeque<String> = VecDeque::new();

    fn render(view: &View<'_>, w: u16, h: u16) -> Buffer {
        let mut buf = Buffer::empty(Rect::new(0, 0, w, h));
        view.render(buf.area, &mut buf);
        buf
    }

    fn text(buf: &Buffer) -> String {
        let area = buf.area;
        (0..area.height)
            .map(|y| (0..area.width).map(|x| buf[(x, y)].symbol()).collect::<String>() + "\n")
            .collect()
    }

    #[test]
    fn the_arena_keeps_its_shape_in_any_terminal() {
        // 80x24 leaves 54 columns: 22 rows of world need 44 columns.
        assert_eq!(fit(Rect::new(0, 0, 54, 24), &arena()), Rect::new(0, 0, 46, 24));
        // A tall, narrow space: the width decides.
        assert_eq!(fit(Rect::new(0, 0, 22, 40), &arena()), Rect::new(0, 0, 22, 12));
    }

    #[test]
    fn entities_land_in_their_cells_with_this_player_highlighted() {
        let (world, rtt) = (world(), RttStats::new());
        let buf = render(&view(Some(&world), &rtt, (127, 0)), 80, 24);
        // The field is 46x24 with a border: 44x22 cells inside, from (1, 1).
        assert_eq!(buf[(1, 1)].symbol(), OTHERS[0], "orb at the origin");
        assert_eq!(buf[(44, 22)].symbol(), OTHERS[0], "orb in the far corner");
        assert_eq!(buf[(23, 1)].symbol(), PLAYER, "the other player, top middle");
        let me = &buf[(23, 12)];
        assert_eq!(me.symbol(), ME, "this player, in the middle");
        assert!(me.modifier.contains(Modifier::REVERSED));
        assert_eq!(buf[(23, 1)].fg, Color::Cyan);
    }

    #[test]
    fn the_panel_shows_score_leaderboard_and_rtt() {
        let (world, mut rtt) = (world(), RttStats::new());
        rtt.record(Duration::from_micros(420));
        let screen = text(&render(&view(Some(&world), &rtt, (0, -127)), 80, 24));
        for expected in [
            "you        #11",
            "score      3",
            "position   500, 500",
            "heading    ↑",
            " 1. #10             9",
            " 2. #11             3",
            "rtt        0.42 ms",
            "tick       42",
            "world      2 player, 2 orb",
        ] {
            assert!(screen.contains(expected), "{expected:?} missing from\n{screen}");
        }
    }

    #[test]
    fn names_the_kill_feed_and_the_chat_line_show_in_the_panel() {
        use tickcast::protocol::{Entity, Text};
        let schema = arena_schema();
        let mut world = NetWorld::default();
        let name = |n: &str| Text::new(n).unwrap();
        world
            .capture(42, &schema)
            .push(Entity::new(10, 0, &[8_000, 0, 9]))
            .text(3, &name("ann"))
            .push(Entity::new(11, 0, &[8_000, 8_000, 3]))
            .text(3, &name("bob"));
        let told = VecDeque::from(["ann destroyed bob".to_owned()]);
        let rtt = RttStats::new();
        let view = View {
            told: &told,
            typing: Some("gg"),
            chat: true,
            ..view(Some(&world), &rtt, (0, 0))
        };
        let screen = text(&render(&view, 80, 30));
        for expected in [
            "you        bob",
            " 1. ann             9",
            "ann destroyed bob",
            "say> gg_",
            "t chat",
        ] {
            assert!(screen.contains(expected), "{expected:?} missing from\n{screen}");
        }
    }

    #[test]
    fn before_the_snapshot_and_in_a_tiny_terminal_it_says_so() {
        let rtt = RttStats::new();
        let view = view(None, &rtt, (0, 0));
        assert!(text(&render(&view, 80, 24)).contains("waiting for the first snapshot"));
        assert!(text(&render(&view, 30, 10)).contains("terminal too small"));
    }
}
