//! The gateway's request ids, and the time they carry.
//!
//! An id is 20 characters of base 32 (`0-9a-v`), 100 bits, most significant first:
//!
//! | bits    | what |
//! |---------|------|
//! | 99..60  | when the gateway took the request: ms since the Unix epoch, modulo 2⁴⁰ (34.8 years) |
//! | 59..50  | a check over the other 90 bits, so a caller's own id (`x-request-id`) of the same shape is not mistaken for one of ours (1 in 1,024 would be) |
//! | 49..0   | the gateway's process id and a per-process counter: unique per gateway and millisecond |
//!
//! So ids sort by time within a 34-year wrap, and [`time_of`] gives `inspect` the time a
//! request entered, to read only the records written around it (§8).

const DIGITS: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";
const TIME_BITS: u32 = 40;
const LOW_BITS: u32 = 50;
const LOW_MASK: u64 = (1 << LOW_BITS) - 1;
const TIME_MASK: u64 = (1 << TIME_BITS) - 1;

/// A new id for a request taken at `now_ms` by process `pid`, its `n`th.
pub fn new(now_ms: i64, pid: u32, n: u64) -> String {
    let time = (now_ms as u64) & TIME_MASK;
    let low = ((u64::from(pid) << 28) ^ n) & LOW_MASK;
    let bits = (u128::from(time) << 60) | (u128::from(check(time, low)) << LOW_BITS) | u128::from(low);
    let mut out = [0u8; 20];
    let mut rest = bits;
    for c in out.iter_mut().rev() {
        *c = DIGITS[(rest & 31) as usize];
        rest >>= 5;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// When the request with this id entered the gateway (ms since the epoch), if `id` is one of
/// the gateway's ids; `now_ms` resolves the 34-year wrap (an id is never from the future by
/// more than a day of clock skew).
pub fn time_of(id: &str, now_ms: i64) -> Option<i64> {
    if id.len() != 20 {
        return None;
    }
    let mut bits: u128 = 0;
    for b in id.bytes() {
        let digit = DIGITS.iter().position(|d| *d == b)?;
        bits = (bits << 5) | digit as u128;
    }
    let time = (bits >> 60) as u64;
    let low = (bits as u64) & LOW_MASK;
    if ((bits >> LOW_BITS) as u64 & 0x3ff) as u16 != check(time, low) {
        return None;
    }
    let wrap = 1i64 << TIME_BITS;
    let mut at = (now_ms & !(wrap - 1)) | time as i64;
    if at > now_ms + 86_400_000 {
        at -= wrap;
    }
    (at >= 0).then_some(at)
}

/// 10 bits mixed from the time and the low bits (a multiply-xorshift hash).
fn check(time: u64, low: u64) -> u16 {
    let mut h = time.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ low.wrapping_mul(0xc2b2_ae3d_27d4_eb4f);
    h ^= h >> 29;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 32;
    (h & 0x3ff) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_796_000_000_000; // 2026-12

    #[test]
    fn ids_carry_their_time_and_sort_by_it() {
        let a = new(NOW, 4242, 1);
        let b = new(NOW + 1, 4242, 2);
        assert_eq!(a.len(), 20);
        assert!(a < b, "{a} < {b}");
        assert_eq!(time_of(&a, NOW + 5_000), Some(NOW));
        assert_eq!(time_of(&b, NOW + 5_000), Some(NOW + 1));
        // Read back long after, and a little before (clock skew between hosts).
        assert_eq!(time_of(&a, NOW + 365 * 86_400_000), Some(NOW));
        assert_eq!(time_of(&a, NOW - 60_000), Some(NOW));
        // Unique per process and counter in the same millisecond.
        assert_ne!(new(NOW, 4242, 3), new(NOW, 4243, 3));
        assert_ne!(new(NOW, 4242, 3), new(NOW, 4242, 4));
    }

    #[test]
    fn other_ids_carry_no_time() {
        for id in [
            "",
            "req-1",
            "0123456789abcdef0123",
            "ffffffffffffffffffff",
            "0.p.x",
            "ABCDEFGHIJ0123456789",
        ] {
            assert_eq!(time_of(id, NOW), None, "{id}");
        }
        // A changed character breaks the check (most of the time; these do).
        let id = new(NOW, 7, 9);
        let mut changed = id.clone().into_bytes();
        changed[12] = if changed[12] == b'0' { b'1' } else { b'0' };
        assert_eq!(time_of(std::str::from_utf8(&changed).unwrap(), NOW), None);
    }
}
