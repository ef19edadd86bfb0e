//! Bytecode preludes (py/bc.h, py/emitbc.c), which hold a function's name.
//!
//! MicroPython 1.9 / CircuitPython 3: `n_state`, `n_exc_stack` (big-endian
//! base-128 uints), four flag/count bytes, then the code info: its size (a uint
//! counting itself) and the function's simple name: a little-endian qstr of
//! `bytecode_qstr_bytes` (2) bytes with `MICROPY_PERSISTENT_CODE`, else
//! (`bytecode_qstr_bytes` 0) a base-128 uint as `mp_encode_uint` writes it.
//!
//! MicroPython 1.12+ (and CircuitPython 7+): the signature packed bit-wise as
//! `xSSSSEAA [xFSSKAED ...]`, the size as `xIIIIIIC ...` (`n_info` source-info
//! bytes, `n_cells`), then the source info, which starts with the simple name as a
//! big-endian base-128 uint: the qstr itself, or its index in the module context's
//! qstr table when the build emits bytecode that way.

/// Fields of the prelude; `simple_name` is the qstr id of the function's name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Prelude {
    pub n_state: u64,
    pub n_exc_stack: u64,
    pub scope_flags: u8,
    pub n_pos_args: u8,
    pub n_kwonly_args: u8,
    pub n_def_pos_args: u8,
    pub code_info_size: u64,
    pub simple_name: Option<u64>,
}

/// Reads one uint, most significant group first, at most 10 bytes (64 bits).
fn read_uint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for _ in 0..10 {
        let b = *bytes.get(*pos)?;
        *pos += 1;
        value = (value << 7) | (b & 0x7f) as u64;
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Parses the prelude at the start of `bytes`; `None` if it runs past the end.
pub fn parse_prelude(bytes: &[u8], qstr_bytes: u32) -> Option<Prelude> {
    let mut pos = 0usize;
    let n_state = read_uint(bytes, &mut pos)?;
    let n_exc_stack = read_uint(bytes, &mut pos)?;
    let flags = bytes.get(pos..pos + 4)?;
    pos += 4;
    let code_info_start = pos;
    let code_info_size = read_uint(bytes, &mut pos)?;
    let simple_name = if qstr_bytes == 0 {
        // A variable-length uint, inside the code info.
        let mut at = pos;
        read_uint(bytes, &mut at).filter(|_| code_info_size as usize >= at - code_info_start)
    } else if code_info_size >= (pos - code_info_start) as u64 + qstr_bytes as u64 {
        bytes.get(pos..pos.checked_add(qstr_bytes as usize)?).map(crate::memory::le_word)
    } else {
        None
    };
    Some(Prelude {
        n_state,
        n_exc_stack,
        scope_flags: flags[0],
        n_pos_args: flags[1],
        n_kwonly_args: flags[2],
        n_def_pos_args: flags[3],
        code_info_size,
        simple_name,
    })
}

/// Parses a packed (MicroPython 1.12+) prelude; `simple_name` is the raw name value (a qstr
/// or a qstr-table index) and `code_info_size` the source-info size (`n_info`).
/// `None` if it runs past the end or a field is longer than any real one.
pub fn parse_prelude_packed(bytes: &[u8]) -> Option<Prelude> {
    let mut pos = 0usize;
    let mut next = || -> Option<u8> {
        let b = *bytes.get(pos)?;
        pos += 1;
        Some(b)
    };
    // xSSSSEAA, then xFSSKAED while x is set (MP_BC_PRELUDE_SIG_DECODE_INTO).
    let z = next()?;
    let (mut s, mut e, mut f, mut a, mut k, mut d) =
        (((z >> 3) & 0xf) as u64, ((z >> 2) & 1) as u64, 0u64, (z & 3) as u64, 0u64, 0u64);
    let mut z = z;
    let mut n = 0u32;
    while z & 0x80 != 0 {
        if n >= 16 {
            return None;
        }
        z = next()?;
        s |= ((z & 0x30) as u64) << (2 * n);
        e |= ((z & 0x02) as u64) << n;
        f |= (((z & 0x40) >> 6) as u64) << n;
        a |= ((z & 0x04) as u64) << n;
        k |= (((z & 0x08) >> 3) as u64) << n;
        d |= ((z & 0x01) as u64) << n;
        n += 1;
    }
    // xIIIIIIC while x is set (MP_BC_PRELUDE_SIZE_DECODE_INTO).
    let (mut n_info, mut n_cells) = (0u64, 0u64);
    for n in 0..10u32 {
        let z = next()?;
        n_cells |= ((z & 1) as u64) << n;
        n_info |= (((z & 0x7e) >> 1) as u64) << (6 * n);
        if z & 0x80 == 0 {
            break;
        }
        if n == 9 {
            return None;
        }
    }
    let _ = n_cells;
    let simple_name = if n_info > 0 { read_uint(bytes, &mut pos) } else { None };
    Some(Prelude {
        n_state: s + 1,
        n_exc_stack: e,
        scope_flags: f as u8,
        n_pos_args: a as u8,
        n_kwonly_args: k as u8,
        n_def_pos_args: d as u8,
        code_info_size: n_info,
        simple_name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_prelude_by_hand() {
        // n_state 5 (S = 4), no exception stack, 2 positional args: xSSSSEAA =
        // 0 0100 0 10 = 0x22. n_info 7, no cells: xIIIIIIC = 0 000111 0 = 0x0e.
        // Name index 3, then line info.
        let b = [0x22, 0x0e, 0x03, 0x05, 0x00];
        let p = parse_prelude_packed(&b).unwrap();
        assert_eq!((p.n_state, p.n_exc_stack, p.n_pos_args, p.n_kwonly_args), (5, 0, 2, 0));
        assert_eq!((p.code_info_size, p.simple_name), (7, Some(3)));
        // S = 20 needs an extension byte: z = 1 0100 0 00 (S low 4 bits = 4, 0x80 set),
        // then xFSSKAED = 0 0 01 0 0 0 1: S bits 4-5 = 1 (16 + 4 = 20), one default.
        // n_info 70 needs two size bytes: 1 000110 1 (I = 6, a cell), 0 000001 0 (I += 64).
        // Name 300 = 0x82 0x2c as a big-endian base-128 uint.
        let b = [0xa0, 0x11, 0x8d, 0x02, 0x82, 0x2c];
        let p = parse_prelude_packed(&b).unwrap();
        assert_eq!((p.n_state, p.n_def_pos_args), (21, 1));
        assert_eq!((p.code_info_size, p.simple_name), (70, Some(300)));
    }

    #[test]
    fn packed_truncated_or_endless_preludes_are_none() {
        assert_eq!(parse_prelude_packed(&[]), None);
        assert_eq!(parse_prelude_packed(&[0x80; 40]), None);
        assert_eq!(parse_prelude_packed(&[0x22, 0x8e]), None);
        // A name cut short: the prelude, without a name.
        assert_eq!(parse_prelude_packed(&[0x22, 0x0e, 0x83]).unwrap().simple_name, None);
    }

    #[test]
    fn prelude_by_hand() {
        // n_state 0x81 0x02 = 130, n_exc_stack 1, flags, code_info_size 9, name qstr 0x0123.
        let b = [0x81, 0x02, 0x01, 0x00, 0x02, 0x00, 0x01, 0x09, 0x23, 0x01, 0xff];
        let p = parse_prelude(&b, 2).unwrap();
        assert_eq!(p.n_state, 130);
        assert_eq!(p.n_exc_stack, 1);
        assert_eq!((p.scope_flags, p.n_pos_args, p.n_kwonly_args, p.n_def_pos_args), (0, 2, 0, 1));
        assert_eq!(p.code_info_size, 9);
        assert_eq!(p.simple_name, Some(0x0123));
    }

    #[test]
    fn prelude_without_persistent_code_has_a_uint_name() {
        // Same prelude, the name qstr 300 as mp_encode_uint writes it (0x82 0x2c),
        // then the source file's qstr 5.
        let b = [0x81, 0x02, 0x01, 0x00, 0x02, 0x00, 0x01, 0x09, 0x82, 0x2c, 0x05, 0xff];
        let p = parse_prelude(&b, 0).unwrap();
        assert_eq!((p.code_info_size, p.simple_name), (9, Some(300)));
        // Read as two fixed bytes it would be another qstr: the profile decides.
        assert_eq!(parse_prelude(&b, 2).unwrap().simple_name, Some(0x2c82));
    }

    #[test]
    fn truncated_or_endless_uints_are_none() {
        assert_eq!(parse_prelude(&[0x81], 2), None);
        assert_eq!(parse_prelude(&[0xff; 32], 2), None);
        assert_eq!(parse_prelude(&[], 2), None);
    }
}
