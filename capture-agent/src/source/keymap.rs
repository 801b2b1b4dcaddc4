//! Turning key presses into typed text, special keys and clipboard hotkeys:
//! X keysyms, a keyboard mapping and the modifier state. Pure.

use crate::event::{ClipboardOp, SpecialKey};

/// What one key press means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// A typed character.
    Char(char),
    /// Enter, Tab, Escape or Backspace.
    Special(SpecialKey),
    /// Copy, cut or paste.
    Hotkey(ClipboardOp),
    /// Nothing worth recording (modifiers, shortcuts, arrows, ...).
    Nothing,
}

const SHIFT_L: u32 = 0xffe1;
const SHIFT_R: u32 = 0xffe2;
const CONTROL_L: u32 = 0xffe3;
const CONTROL_R: u32 = 0xffe4;
const CAPS_LOCK: u32 = 0xffe5;
const META_L: u32 = 0xffe7;
const META_R: u32 = 0xffe8;
const ALT_L: u32 = 0xffe9;
const ALT_R: u32 = 0xffea;
const SUPER_L: u32 = 0xffeb;
const SUPER_R: u32 = 0xffec;
const LEVEL3_SHIFT: u32 = 0xfe03;
const INSERT: u32 = 0xff63;
const DELETE: u32 = 0xffff;

/// The character a keysym types, if any.
pub fn keysym_char(sym: u32) -> Option<char> {
    match sym {
        0x20..=0x7e | 0xa0..=0xff => char::from_u32(sym),
        0x0100_0020..=0x0110_ffff => char::from_u32(sym - 0x0100_0000),
        0xffb0..=0xffb9 => char::from_u32(u32::from(b'0') + (sym - 0xffb0)),
        0xff80 => Some(' '),
        0xffaa => Some('*'),
        0xffab => Some('+'),
        0xffad => Some('-'),
        0xffae => Some('.'),
        0xffaf => Some('/'),
        0xffbd => Some('='),
        _ => None,
    }
}

/// The special key a keysym is, if any.
pub fn keysym_special(sym: u32) -> Option<SpecialKey> {
    match sym {
        0xff0d | 0xff8d => Some(SpecialKey::Enter),
        0xff09 | 0xfe20 => Some(SpecialKey::Tab),
        0xff1b => Some(SpecialKey::Escape),
        0xff08 => Some(SpecialKey::Backspace),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Mods {
    shift: u8,
    ctrl: u8,
    alt: u8,
    level3: u8,
    caps: bool,
}

/// Decodes key presses against a keyboard mapping, tracking modifiers
/// itself (recorded device events carry no reliable modifier state).
#[derive(Debug, Clone)]
pub struct KeyDecoder {
    min_keycode: u8,
    per_keycode: usize,
    syms: Vec<u32>,
    mods: Mods,
}

impl KeyDecoder {
    /// A decoder for the mapping starting at `min_keycode`, with
    /// `per_keycode` keysyms per keycode.
    pub fn new(min_keycode: u8, per_keycode: u8, syms: Vec<u32>) -> Self {
        Self {
            min_keycode,
            per_keycode: usize::from(per_keycode).max(1),
            syms,
            mods: Mods::default(),
        }
    }

    /// Take `other`'s mapping, keeping this decoder's modifier state.
    pub fn take_mapping(&mut self, other: KeyDecoder) {
        self.min_keycode = other.min_keycode;
        self.per_keycode = other.per_keycode;
        self.syms = other.syms;
    }

    /// The keysym at `column` for `keycode` (0 = NoSymbol).
    pub fn keysym(&self, keycode: u8, column: usize) -> u32 {
        let Some(row) = keycode.checked_sub(self.min_keycode) else {
            return 0;
        };
        let i = usize::from(row) * self.per_keycode + column.min(self.per_keycode - 1);
        self.syms.get(i).copied().unwrap_or(0)
    }

    /// Does `keycode` have any keysym in this mapping?
    pub fn is_mapped(&self, keycode: u8) -> bool {
        self.keysym(keycode, 0) != 0
    }

    fn modifier(&mut self, sym: u32, down: bool) -> bool {
        let counter = match sym {
            SHIFT_L | SHIFT_R => &mut self.mods.shift,
            CONTROL_L | CONTROL_R => &mut self.mods.ctrl,
            ALT_L | ALT_R | META_L | META_R | SUPER_L | SUPER_R => &mut self.mods.alt,
            LEVEL3_SHIFT => &mut self.mods.level3,
            CAPS_LOCK => {
                if down {
                    self.mods.caps = !self.mods.caps;
                }
                return true;
            }
            _ => return false,
        };
        *counter = if down {
            counter.saturating_add(1).min(2)
        } else {
            counter.saturating_sub(1)
        };
        true
    }

    /// A key was released.
    pub fn release(&mut self, keycode: u8) {
        let sym = self.keysym(keycode, 0);
        self.modifier(sym, false);
    }

    /// A key was pressed: what it means.
    pub fn press(&mut self, keycode: u8) -> Decoded {
        let base = self.keysym(keycode, 0);
        if self.modifier(base, true) {
            return Decoded::Nothing;
        }
        let m = self.mods;
        let shift = m.shift > 0;
        let lower = base
            | if (0x41..=0x5a).contains(&base) {
                0x20
            } else {
                0
            };
        if m.ctrl > 0 && m.alt == 0 {
            return match (lower, shift) {
                // Ctrl+Shift+C/X/V: terminals' copy, cut and paste.
                (0x63, _) | (INSERT, false) => Decoded::Hotkey(ClipboardOp::Copy),
                (0x78, _) => Decoded::Hotkey(ClipboardOp::Cut),
                (0x76, _) => Decoded::Hotkey(ClipboardOp::Paste),
                _ => Decoded::Nothing,
            };
        }
        if m.alt > 0 {
            return Decoded::Nothing;
        }
        if shift && base == INSERT {
            return Decoded::Hotkey(ClipboardOp::Paste);
        }
        if shift && base == DELETE {
            return Decoded::Hotkey(ClipboardOp::Cut);
        }
        if let Some(s) = keysym_special(base) {
            return Decoded::Special(s);
        }
        let column = if m.level3 > 0 && self.per_keycode > 4 {
            4 + usize::from(shift)
        } else {
            usize::from(shift)
        };
        let mut sym = self.keysym(keycode, column);
        if sym == 0 {
            sym = base;
        }
        if let Some(s) = keysym_special(sym) {
            return Decoded::Special(s);
        }
        match keysym_char(sym) {
            Some(c) if m.caps && c.is_alphabetic() => {
                let flipped = if c.is_uppercase() {
                    c.to_lowercase().next()
                } else {
                    c.to_uppercase().next()
                };
                Decoded::Char(flipped.unwrap_or(c))
            }
            Some(c) => Decoded::Char(c),
            None => Decoded::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // keycode 8: a/A, 9: Shift_L, 10: Control_L, 11: Return, 12: c/C,
    // 13: space, 14: 1/!, 15: Caps_Lock, 16: U+00E9 é, 17: BackSpace,
    // 18: Alt_L, 19: v/V
    fn decoder() -> KeyDecoder {
        let syms = vec![
            0x61,
            0x41,
            0xffe1,
            0,
            0xffe3,
            0,
            0xff0d,
            0,
            0x63,
            0x43,
            0x20,
            0x20,
            0x31,
            0x21,
            0xffe5,
            0,
            0x0100_00e9,
            0x0100_00c9,
            0xff08,
            0,
            0xffe9,
            0,
            0x76,
            0x56,
        ];
        KeyDecoder::new(8, 2, syms)
    }

    #[test]
    fn shift_caps_and_unicode() {
        let mut d = decoder();
        assert_eq!(d.press(8), Decoded::Char('a'));
        assert_eq!(d.press(9), Decoded::Nothing);
        assert_eq!(d.press(8), Decoded::Char('A'));
        assert_eq!(d.press(14), Decoded::Char('!'));
        d.release(9);
        assert_eq!(d.press(14), Decoded::Char('1'));
        d.press(15);
        assert_eq!(d.press(8), Decoded::Char('A'));
        assert_eq!(d.press(16), Decoded::Char('É'));
        d.press(15);
        assert_eq!(d.press(16), Decoded::Char('é'));
        assert_eq!(d.press(13), Decoded::Char(' '));
    }

    #[test]
    fn specials_and_hotkeys() {
        let mut d = decoder();
        assert_eq!(d.press(11), Decoded::Special(SpecialKey::Enter));
        assert_eq!(d.press(17), Decoded::Special(SpecialKey::Backspace));
        d.press(10);
        assert_eq!(d.press(12), Decoded::Hotkey(ClipboardOp::Copy));
        assert_eq!(d.press(19), Decoded::Hotkey(ClipboardOp::Paste));
        assert_eq!(
            d.press(8),
            Decoded::Nothing,
            "ctrl+a is a shortcut, not text"
        );
        d.release(10);
        d.press(18);
        assert_eq!(
            d.press(8),
            Decoded::Nothing,
            "alt+a is a shortcut, not text"
        );
        d.release(18);
        assert_eq!(d.press(8), Decoded::Char('a'));
    }

    #[test]
    fn unknown_keycodes_are_nothing_not_a_panic() {
        let mut d = decoder();
        assert_eq!(d.press(0), Decoded::Nothing);
        assert_eq!(d.press(255), Decoded::Nothing);
        assert!(!d.is_mapped(200));
        d.release(255);
    }
}
