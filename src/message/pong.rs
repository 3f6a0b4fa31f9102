//! `pong_text`: the text a venue answers our text ping with (OKX, Bitget: `pong`, not
//! JSON). Such a frame is keep-alive traffic: not written, not counted as refused.

/// The configured pong text, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct PongText(Option<Box<[u8]>>);

impl PongText {
    /// From the `pong_text` field: `""` = none.
    pub(crate) fn parse(text: String) -> PongText {
        PongText((!text.is_empty()).then(|| text.into_bytes().into_boxed_slice()))
    }

    /// Whether the text frame `t` is the pong.
    #[inline]
    pub(crate) fn is_pong(&self, t: &[u8]) -> bool {
        self.0.as_deref() == Some(t)
    }
}
