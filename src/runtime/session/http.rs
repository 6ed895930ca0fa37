//! The plain HTTP response session: write a whole response, then close.

/// Writing a response; the connection closes once it is out.
pub(in crate::runtime) struct Respond {
    out: Vec<u8>,
    pos: usize,
}

impl Respond {
    pub(in crate::runtime) fn new(out: Vec<u8>) -> Respond {
        Respond { out, pos: 0 }
    }

    /// The bytes not yet written.
    #[inline]
    pub(in crate::runtime) fn output(&self) -> &[u8] {
        &self.out[self.pos..]
    }

    pub(in crate::runtime) fn advance(&mut self, n: usize) {
        self.pos += n;
    }
}
