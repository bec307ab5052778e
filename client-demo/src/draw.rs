//! `play`'s screen: the arena scaled into the terminal and a side panel, drawn into a ratatui
//! [`Buffer`] from plain data, so tests check it cell by cell without a terminal.
//!
//! ```text
//! ┌ tickcast ──────────────────┐ you        #101
//! │   •         o              │ score      3
//! │        @          •        │ ...
//! └────────────────────────────┘ leaderboard
//! ```

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Margin, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Widget};
use tickcast::delta::NetWorld;
use tickcast::protocol::EntityKind;

use crate::arena::{self, Arena};
use crate::keys::arrow;
use crate::stats::{Millis, RttStats};

/// Smallest terminal the screen fits in.
pub const MIN_SIZE: (u16, u16) = (48, 14);

/// Width of the side panel.
const PANEL_WIDTH: u16 = 26;

/// Players shown on the leaderboard.
const LEADERS: usize = 5;

/// Glyphs: the player, other players, orbs.
const ME: &str = "@";
const PLAYER: &str = "o";
const ORB: &str = "•";

/// Everything the screen shows.
#[derive(Debug, Clone, Copy)]
pub struct View<'a> {
    /// The world as last received; `None` until the first snapshot.
    pub world: Option<&'a NetWorld>,
    /// The arena's size.
    pub arena: Arena,
    /// This player's entity id.
    pub me: u32,
    /// The direction the player asked for.
    pub direction: (i8, i8),
    /// Ping round trips so far.
    pub rtt: &'a RttStats,
    /// Times the world was rebuilt after a desync.
    pub resyncs: u64,
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
        let mut lines = vec![
            Line::styled(format!("{:<10} #{}", "you", self.me), highlight),
            row("score", own.map(|e| e.score.to_string())),
            row(
                "position",
                own.map(|e| self.arena.units(e)).map(|(x, y)| format!("{x:.0}, {y:.0}")),
            ),
            row("heading", Some(arrow(self.direction).to_string())),
            Line::default(),
            Line::from("leaderboard").bold(),
        ];
        let leaders = self.world.map(|w| arena::leaderboard(w, LEADERS)).unwrap_or_default();
        for (rank, s) in leaders.iter().enumerate() {
            let style = if s.id == self.me { highlight } else { Style::new() };
            lines.push(Line::styled(
                format!("{:>2}. #{:<8} {:>4}", rank + 1, s.id, s.score),
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
            let (players, orbs) = arena::census(world);
            lines.push(row("tick", Some(world.tick().to_string())));
            lines.push(row("players", Some(format!("{players}, {orbs} orbs"))));
        }
        if self.resyncs > 0 {
            lines.push(row("resyncs", Some(self.resyncs.to_string())));
        }
        lines.push(Line::default());
        lines.push(Line::from("arrows/WASD move").dim());
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

/// Orbs first, then the other players over them, then this player on top of everything.
fn draw_entities(world: &NetWorld, arena: &Arena, me: u32, inner: Rect, buf: &mut Buffer) {
    if inner.is_empty() {
        return;
    }
    let layers = [
        (EntityKind::Orb, ORB, Style::new().fg(Color::Yellow)),
        (EntityKind::Player, PLAYER, Style::new().fg(Color::Cyan)),
    ];
    for (kind, glyph, style) in layers {
        for e in world.entities().iter().filter(|e| e.kind == kind && e.id != me) {
            let (x, y) = cell(inner, arena, e.x, e.y);
            buf.set_string(x, y, glyph, style);
        }
    }
    if let Some(e) = world.get(me) {
        let (x, y) = cell(inner, arena, e.x, e.y);
        let style = Style::new()
            .fg(Color::LightGreen)
            .add_modifier(Modifier::BOLD | Modifier::REVERSED);
        buf.set_string(x, y, ME, style);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tickcast::protocol::{EntityState, Snapshot};

    use super::*;

    const ARENA: Arena = Arena {
        width: 16_000,
        height: 16_000,
        scale: 16,
    };

    fn world() -> NetWorld {
        let e = |id, kind, x, y, score| EntityState { id, kind, x, y, score };
        NetWorld::from_snapshot(&Snapshot {
            tick: 42,
            entities: vec![
                e(1, EntityKind::Orb, 0, 0, 0),
                e(2, EntityKind::Orb, 15_999, 15_999, 0),
                e(10, EntityKind::Player, 8_000, 0, 9),
                e(11, EntityKind::Player, 8_000, 8_000, 3),
            ],
        })
        .unwrap()
    }

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
        assert_eq!(fit(Rect::new(0, 0, 54, 24), &ARENA), Rect::new(0, 0, 46, 24));
        // A tall, narrow space: the width decides.
        assert_eq!(fit(Rect::new(0, 0, 22, 40), &ARENA), Rect::new(0, 0, 22, 12));
    }

    #[test]
    fn entities_land_in_their_cells_with_this_player_highlighted() {
        let world = world();
        let rtt = RttStats::new();
        let view = View {
            world: Some(&world),
            arena: ARENA,
            me: 11,
            direction: (127, 0),
            rtt: &rtt,
            resyncs: 0,
        };
        let buf = render(&view, 80, 24);
        // The field is 46x24 with a border: 44x22 cells inside, from (1, 1).
        assert_eq!(buf[(1, 1)].symbol(), ORB, "orb at the origin");
        assert_eq!(buf[(44, 22)].symbol(), ORB, "orb in the far corner");
        assert_eq!(buf[(23, 1)].symbol(), PLAYER, "the other player, top middle");
        let me = &buf[(23, 12)];
        assert_eq!(me.symbol(), ME, "this player, in the middle");
        assert!(me.modifier.contains(Modifier::REVERSED));
        assert_eq!(buf[(23, 1)].fg, Color::Cyan);
    }

    #[test]
    fn the_panel_shows_score_leaderboard_and_rtt() {
        let world = world();
        let mut rtt = RttStats::new();
        rtt.record(Duration::from_micros(420));
        let view = View {
            world: Some(&world),
            arena: ARENA,
            me: 11,
            direction: (0, -127),
            rtt: &rtt,
            resyncs: 0,
        };
        let screen = text(&render(&view, 80, 24));
        for expected in [
            "you        #11",
            "score      3",
            "position   500, 500",
            "heading    ↑",
            " 1. #10          9",
            " 2. #11          3",
            "rtt        0.42 ms",
            "tick       42",
            "players    2, 2 orbs",
        ] {
            assert!(screen.contains(expected), "{expected:?} missing from\n{screen}");
        }
    }

    #[test]
    fn before_the_snapshot_and_in_a_tiny_terminal_it_says_so() {
        let rtt = RttStats::new();
        let view = View {
            world: None,
            arena: ARENA,
            me: 11,
            direction: (0, 0),
            rtt: &rtt,
            resyncs: 0,
        };
        assert!(text(&render(&view, 80, 24)).contains("waiting for the first snapshot"));
        assert!(text(&render(&view, 30, 10)).contains("terminal too small"));
    }
}
