//! Bytecode prelude of a MicroPython 1.9 function (py/bc.c, py/emitbc.c).
//!
//! `n_state`, `n_exc_stack` (big-endian base-128 uints), four flag/count bytes, then
//! the code info: its size (a uint counting itself) and the function's simple name
//! as a qstr of `bytecode_qstr_bytes` bytes.

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
    let simple_name = if qstr_bytes > 0 && code_info_size as usize >= pos - code_info_start + qstr_bytes as usize {
        bytes.get(pos..pos + qstr_bytes as usize).map(crate::memory::le_word)
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn truncated_or_endless_uints_are_none() {
        assert_eq!(parse_prelude(&[0x81], 2), None);
        assert_eq!(parse_prelude(&[0xff; 32], 2), None);
        assert_eq!(parse_prelude(&[], 2), None);
    }
}
