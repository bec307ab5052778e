//! `play`'s controls: key events to commands, and the direction they steer, with no terminal.
//!
//! Terminals report key presses but, inside tmux and most emulators, not releases, and a held
//! key arrives as a stream of repeated presses. So "move while the key is held" cannot be done
//! reliably; the controls are the nearest thing that can:
//!
//! - an arrow or W/A/S/D sets the direction (it replaces the previous one);
//! - pressing or holding the key of the direction already set changes nothing, so key repeat
//!   sends nothing;
//! - space stops; q, Esc or ctrl-c quits;
//! - in games with a turret (tanks): j and l (or , and .) turn it an eighth of a turn at a
//!   time, f or Enter fires once;
//! - in games with a chat (tanks): t opens the chat line ([`crate::chat`]).

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

/// Full speed on one axis, as the protocol's `dx`/`dy` express it.
const FULL: i8 = 127;

/// One turret turn: an eighth of a turn, in 256ths.
const TURN: i8 = 32;

/// What a key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Move in `(dx, dy)` (screen orientation: negative `dy` is up); `(0, 0)` stops.
    Go(i8, i8),
    /// Turn the turret by this many 256ths of a turn.
    Turn(i8),
    /// Fire once.
    Fire,
    /// Open the chat line ([`crate::chat`]).
    Chat,
    /// Leave the game.
    Quit,
}

/// The command a key event stands for, if any.
pub fn command_for(key: &KeyEvent) -> Option<Command> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let command = match key.code {
        // Raw mode delivers ctrl-c as a key, not as a signal.
        KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => Command::Quit,
        KeyCode::Up | KeyCode::Char('w' | 'W') => Command::Go(0, -FULL),
        KeyCode::Down | KeyCode::Char('s' | 'S') => Command::Go(0, FULL),
        KeyCode::Left | KeyCode::Char('a' | 'A') => Command::Go(-FULL, 0),
        KeyCode::Right | KeyCode::Char('d' | 'D') => Command::Go(FULL, 0),
        KeyCode::Char(' ') => Command::Go(0, 0),
        KeyCode::Char('j' | 'J' | ',') => Command::Turn(-TURN),
        KeyCode::Char('l' | 'L' | '.') => Command::Turn(TURN),
        KeyCode::Char('f' | 'F') | KeyCode::Enter => Command::Fire,
        KeyCode::Char('t' | 'T') => Command::Chat,
        KeyCode::Char('q' | 'Q') | KeyCode::Esc => Command::Quit,
        _ => return None,
    };
    Some(command)
}

/// The direction the player asked for last, and where its turret points.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Steering {
    direction: (i8, i8),
    aim: u8,
}

impl Steering {
    /// The current direction, as a move command's `(dx, dy)`.
    pub fn direction(&self) -> (i8, i8) {
        self.direction
    }

    /// Steers towards `direction`; true when it changed, i.e. when a move should be sent.
    pub fn steer(&mut self, direction: (i8, i8)) -> bool {
        let changed = self.direction != direction;
        self.direction = direction;
        changed
    }

    /// The turret's angle, 256ths of a turn.
    pub fn aim(&self) -> u8 {
        self.aim
    }

    /// Turns the turret by `by` 256ths of a turn (wrapping).
    pub fn turn(&mut self, by: i8) {
        self.aim = self.aim.wrapping_add_signed(by);
    }
}

/// An arrow for a direction, `·` when stopped.
pub fn arrow((dx, dy): (i8, i8)) -> char {
    match (dx.signum(), dy.signum()) {
        (0, -1) => '↑',
        (1, -1) => '↗',
        (1, 0) => '→',
        (1, 1) => '↘',
        (0, 1) => '↓',
        (-1, 1) => '↙',
        (-1, 0) => '←',
        (-1, -1) => '↖',
        _ => '·',
    }
}

#[cfg(test)]
mod tests {
    use crossterm::event::KeyEventState;

    use super::*;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn arrows_and_wasd_steer_the_same_way() {
        let pairs = [
            (KeyCode::Up, 'w'),
            (KeyCode::Down, 's'),
            (KeyCode::Left, 'a'),
            (KeyCode::Right, 'd'),
        ];
        for (arrow, letter) in pairs {
            let by_arrow = command_for(&press(arrow));
            assert!(matches!(by_arrow, Some(Command::Go(..))), "{arrow:?}");
            assert_eq!(by_arrow, command_for(&press(KeyCode::Char(letter))));
            assert_eq!(
                by_arrow,
                command_for(&press(KeyCode::Char(letter.to_ascii_uppercase())))
            );
        }
        assert_eq!(command_for(&press(KeyCode::Up)), Some(Command::Go(0, -127)));
        assert_eq!(command_for(&press(KeyCode::Right)), Some(Command::Go(127, 0)));
    }

    #[test]
    fn space_stops_and_q_esc_ctrl_c_quit() {
        assert_eq!(command_for(&press(KeyCode::Char(' '))), Some(Command::Go(0, 0)));
        assert_eq!(command_for(&press(KeyCode::Char('q'))), Some(Command::Quit));
        assert_eq!(command_for(&press(KeyCode::Esc)), Some(Command::Quit));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(command_for(&ctrl_c), Some(Command::Quit));
        assert_eq!(command_for(&press(KeyCode::Char('c'))), None);
        assert_eq!(command_for(&press(KeyCode::Tab)), None);
    }

    #[test]
    fn releases_are_ignored_and_repeats_count_as_presses() {
        let release = KeyEvent::new_with_kind(KeyCode::Up, KeyModifiers::NONE, KeyEventKind::Release);
        assert_eq!(command_for(&release), None);
        let repeat = KeyEvent::new_with_kind_and_state(
            KeyCode::Up,
            KeyModifiers::NONE,
            KeyEventKind::Repeat,
            KeyEventState::NONE,
        );
        assert_eq!(command_for(&repeat), Some(Command::Go(0, -127)));
    }

    #[test]
    fn only_a_change_of_direction_asks_for_a_move() {
        let mut steering = Steering::default();
        assert!(!steering.steer((0, 0)), "already stopped");
        assert!(steering.steer((127, 0)));
        assert!(!steering.steer((127, 0)), "a held key repeats the same press");
        assert!(steering.steer((0, -127)));
        assert_eq!(steering.direction(), (0, -127));
        assert!(steering.steer((0, 0)));
    }

    #[test]
    fn the_turret_turns_and_fires_by_keys() {
        assert_eq!(command_for(&press(KeyCode::Char('l'))), Some(Command::Turn(32)));
        assert_eq!(command_for(&press(KeyCode::Char(','))), Some(Command::Turn(-32)));
        assert_eq!(command_for(&press(KeyCode::Enter)), Some(Command::Fire));
        let mut steering = Steering::default();
        steering.turn(-32);
        assert_eq!(steering.aim(), 224, "turning wraps around");
    }

    #[test]
    fn arrows_show_the_direction() {
        assert_eq!(arrow((0, -127)), '↑');
        assert_eq!(arrow((90, 90)), '↘');
        assert_eq!(arrow((0, 0)), '·');
    }
}
