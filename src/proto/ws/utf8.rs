//! Streaming UTF-8 validation of text messages (RFC 6455 §8.1).
//!
//! A text message may arrive in many frames and each frame in many reads, so a
//! multi-byte sequence can be cut anywhere. [`Utf8Validator`] keeps at most
//! three bytes of an incomplete trailing sequence between calls and reports an
//! error as soon as a byte makes the input invalid, not at the end of the
//! message (Autobahn 6.x "fail fast").

use simdutf8::compat::from_utf8;

/// The input so far cannot be the prefix of valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidUtf8;

/// Incremental validator. Feed it every chunk of a message in order, then call
/// [`Utf8Validator::finish`] at the end of the message.
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

/// Length of a UTF-8 sequence from its lead byte, or `None` for a byte that
/// cannot start a sequence.
fn sequence_len(lead: u8) -> Option<usize> {
    match lead {
        0x00..=0x7f => Some(1),
        0xc2..=0xdf => Some(2),
        0xe0..=0xef => Some(3),
        0xf0..=0xf4 => Some(4),
        _ => None,
    }
}

impl Utf8Validator {
    /// A validator at the start of a message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget any carried bytes (start of a new message).
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }

    /// Validate the next chunk of the message.
    pub fn feed(&mut self, mut input: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            let have = self.pending_len as usize;
            let need = sequence_len(self.pending[0]).ok_or(InvalidUtf8)?;
            let take = (need - have).min(input.len());
            self.pending[have..have + take].copy_from_slice(&input[..take]);
            let now = have + take;
            match from_utf8(&self.pending[..now]) {
                Ok(_) => {
                    self.pending_len = 0;
                    input = &input[take..];
                }
                Err(e) if e.error_len().is_none() && now < need => {
                    // Still incomplete and the input is exhausted.
                    self.pending_len = now as u8;
                    return Ok(());
                }
                Err(_) => return Err(InvalidUtf8),
            }
        }
        match from_utf8(input) {
            Ok(_) => Ok(()),
            Err(e) => match e.error_len() {
                Some(_) => Err(InvalidUtf8),
                None => {
                    // An incomplete sequence at the very end: at most 3 bytes.
                    let tail = &input[e.valid_up_to()..];
                    self.pending[..tail.len()].copy_from_slice(tail);
                    self.pending_len = tail.len() as u8;
                    Ok(())
                }
            },
        }
    }

    /// The message ended: it is valid only if no sequence is left incomplete.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let incomplete = self.pending_len != 0;
        self.pending_len = 0;
        if incomplete {
            Err(InvalidUtf8)
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream_ok(bytes: &[u8], cuts: &[usize]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::new();
        let mut start = 0;
        for &c in cuts {
            v.feed(&bytes[start..c])?;
            start = c;
        }
        v.feed(&bytes[start..])?;
        v.finish()
    }

    #[test]
    fn agrees_with_std_at_every_split() {
        let samples: Vec<Vec<u8>> = vec![
            "Hello-µ@ßöäüàá-UTF-8!!".as_bytes().to_vec(),
            "κόσμε".as_bytes().to_vec(),
            "𝄞 and 😀 and 中文".as_bytes().to_vec(),
            vec![
                0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
            ],
            vec![0xf4, 0x90, 0x80, 0x80],
            vec![0xc0, 0xaf],
            vec![0xe0, 0x80, 0xaf],
            vec![0xf0, 0x9f, 0x98],
            vec![0xff],
            vec![0x80],
        ];
        for s in &samples {
            let expect = std::str::from_utf8(s).is_ok();
            for a in 0..=s.len() {
                for b in a..=s.len() {
                    assert_eq!(stream_ok(s, &[a, b]).is_ok(), expect, "{s:x?} cuts {a} {b}");
                }
            }
        }
    }

    #[test]
    fn fails_fast_on_first_bad_byte() {
        // 0xce 0xba is valid, then 0xed 0xa0 is a surrogate: invalid as soon as
        // the second byte of the surrogate is seen, before the message ends.
        let mut v = Utf8Validator::new();
        assert!(v.feed(&[0xce]).is_ok());
        assert!(v.feed(&[0xba, 0xed]).is_ok());
        assert_eq!(v.feed(&[0xa0]), Err(InvalidUtf8));
    }

    #[test]
    fn incomplete_at_end_is_invalid() {
        let mut v = Utf8Validator::new();
        assert!(v.feed(&[0xf0, 0x9f]).is_ok());
        assert_eq!(v.finish(), Err(InvalidUtf8));
    }

    #[test]
    fn byte_by_byte_every_codepoint_class() {
        let s = "a\u{7f}\u{80}\u{7ff}\u{800}\u{ffff}\u{10000}\u{10ffff}";
        let mut v = Utf8Validator::new();
        for b in s.as_bytes() {
            v.feed(std::slice::from_ref(b)).unwrap();
        }
        v.finish().unwrap();
    }
}
