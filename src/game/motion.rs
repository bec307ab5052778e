//! Motion in integers, for games whose clients predict: positions in coordinate steps (1/16
//! unit), steps computed in integer arithmetic, so a client running the same rules lands on
//! the same step, bit for bit. Arena and tanks move this way.

/// Coordinate steps per world unit, in both games.
pub const SCALE: u32 = 16;

/// The largest magnitude of a direction's components in an input.
pub const MAX_AXIS: i32 = 127;

/// The smallest integer at least `sqrt(n)`.
pub fn isqrt_ceil(n: u64) -> u64 {
    let mut r = (n as f64).sqrt() as u64;
    // The float's estimate may be one off either way for large `n`: settle it exactly.
    while r * r > n {
        r -= 1;
    }
    while r * r < n {
        r += 1;
    }
    r
}

/// The step, in coordinate steps per tick and per axis, of something moving at `speed` world
/// units per second along the direction `(dx, dy)` (each component in [-127, 127]).
///
/// A direction shorter than 127 moves proportionally slower; a longer one is scaled to 127
/// (its length rounded up, so the result is never faster than `speed`). Each component is
/// truncated toward zero. In integers only, so any client can compute the same step:
/// `step = d * speed * 16 / (max(127, ceil(sqrt(dx² + dy²))) * tick_hz)`.
pub fn velocity(dx: i32, dy: i32, speed: u32, tick_hz: u32) -> (i32, i32) {
    let (dx, dy) = (
        i64::from(dx.clamp(-MAX_AXIS, MAX_AXIS)),
        i64::from(dy.clamp(-MAX_AXIS, MAX_AXIS)),
    );
    let length = isqrt_ceil((dx * dx + dy * dy) as u64).max(MAX_AXIS as u64) as i64;
    let per_second = i64::from(speed) * i64::from(SCALE);
    let denominator = length * i64::from(tick_hz.max(1));
    (
        (dx * per_second / denominator) as i32,
        (dy * per_second / denominator) as i32,
    )
}

/// `at + step`, kept within `0..=max`.
pub fn advance(at: u32, step: i32, max: u32) -> u32 {
    (i64::from(at) + i64::from(step)).clamp(0, i64::from(max)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_roots_are_rounded_up_exactly() {
        for n in [0u64, 1, 2, 3, 4, 15, 16, 17, 32_258, u64::from(u32::MAX)] {
            let r = isqrt_ceil(n);
            assert!(r * r >= n && (r == 0 || (r - 1) * (r - 1) < n), "{n}: {r}");
        }
    }

    #[test]
    fn a_step_is_never_faster_than_the_speed() {
        // 150 units/s at 30 Hz is 80 steps a tick.
        assert_eq!(velocity(127, 0, 150, 30), (80, 0));
        assert_eq!(velocity(0, -127, 150, 30), (0, -80));
        assert_eq!(velocity(0, 0, 150, 30), (0, 0));
        assert_eq!(velocity(64, 0, 150, 30), (40, 0), "half a direction, half the speed");
        for dx in (-127..=127).step_by(7) {
            for dy in (-127..=127).step_by(5) {
                let (sx, sy) = velocity(dx, dy, 150, 30);
                assert!(sx * sx + sy * sy <= 80 * 80, "({dx}, {dy}) -> ({sx}, {sy})");
            }
        }
        assert_eq!(advance(10, -20, 100), 0);
        assert_eq!(advance(90, 20, 100), 100);
    }
}
