//! Motion in integers, for games whose clients predict: positions in coordinate steps (1/16
//! unit) as glam's [`UVec2`], directions and steps as [`IVec2`], every step computed in integer
//! arithmetic, so a client running the same rules lands on the same step, bit for bit. Arena,
//! tanks and `examples/tag.rs` move this way.

pub use glam::{IVec2, UVec2};

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
/// units per second along the direction `dir` (each component in [-127, 127]).
///
/// A direction shorter than 127 moves proportionally slower; a longer one is scaled to 127
/// (its length rounded up, so the result is never faster than `speed`). Each component is
/// truncated toward zero. In integers only, so any client can compute the same step:
/// `step = d * speed * 16 / (max(127, ceil(sqrt(dx² + dy²))) * tick_hz)`.
pub fn velocity(dir: IVec2, speed: u32, tick_hz: u32) -> IVec2 {
    let dir = dir.clamp(IVec2::splat(-MAX_AXIS), IVec2::splat(MAX_AXIS)).as_i64vec2();
    let length = isqrt_ceil(dir.length_squared() as u64).max(MAX_AXIS as u64) as i64;
    let per_second = i64::from(speed) * i64::from(SCALE);
    let denominator = length * i64::from(tick_hz.max(1));
    (dir * per_second / denominator).as_ivec2()
}

/// `at + step`, each axis kept within `0..=max`.
pub fn advance(at: UVec2, step: IVec2, max: u32) -> UVec2 {
    let to = at.as_i64vec2() + step.as_i64vec2();
    to.clamp(glam::I64Vec2::ZERO, glam::I64Vec2::splat(i64::from(max)))
        .as_uvec2()
}

/// `at + step` if that is within `0..=max` on both axes (`None`: it left the world).
pub fn inside(at: UVec2, step: IVec2, max: u32) -> Option<UVec2> {
    let to = at.as_i64vec2() + step.as_i64vec2();
    let max = i64::from(max);
    ((0..=max).contains(&to.x) && (0..=max).contains(&to.y)).then(|| to.as_uvec2())
}

/// The square of the distance from `a` to `b`, exactly.
pub fn distance_squared(a: UVec2, b: UVec2) -> u64 {
    let (dx, dy) = (u64::from(a.x.abs_diff(b.x)), u64::from(a.y.abs_diff(b.y)));
    dx * dx + dy * dy
}

/// Whether `b` is within `radius` of `a` (the distance at most `radius`). The cheap test on
/// each axis comes first: in a scan over many entities most are far away on one of them.
#[inline]
pub fn within(a: UVec2, b: UVec2, radius: u32) -> bool {
    a.x.abs_diff(b.x) <= radius && a.y.abs_diff(b.y) <= radius && distance_squared(a, b) <= u64::from(radius).pow(2)
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
        let v = |dx, dy| velocity(IVec2::new(dx, dy), 150, 30);
        // 150 units/s at 30 Hz is 80 steps a tick.
        assert_eq!(v(127, 0), IVec2::new(80, 0));
        assert_eq!(v(0, -127), IVec2::new(0, -80));
        assert_eq!(v(0, 0), IVec2::ZERO);
        assert_eq!(v(64, 0), IVec2::new(40, 0), "half a direction, half the speed");
        assert_eq!(v(500, -500), v(127, -127), "a direction past the axis limit is clamped");
        for dx in (-127..=127).step_by(7) {
            for dy in (-127..=127).step_by(5) {
                let s = v(dx, dy);
                assert!(s.length_squared() <= 80 * 80, "({dx}, {dy}) -> {s}");
            }
        }
    }

    #[test]
    fn moving_stays_in_the_world_and_distances_are_exact() {
        assert_eq!(
            advance(UVec2::new(10, 90), IVec2::new(-20, 20), 100),
            UVec2::new(0, 100)
        );
        assert_eq!(
            inside(UVec2::new(10, 90), IVec2::new(-5, 10), 100),
            Some(UVec2::new(5, 100))
        );
        assert_eq!(inside(UVec2::new(10, 90), IVec2::new(-11, 0), 100), None);
        assert_eq!(distance_squared(UVec2::new(0, 0), UVec2::new(3, 4)), 25);
        assert!(within(UVec2::new(0, 0), UVec2::new(3, 4), 5));
        assert!(!within(UVec2::new(0, 0), UVec2::new(4, 4), 5));
        assert!(!within(UVec2::ZERO, UVec2::new(u32::MAX, 0), 5));
    }
}
