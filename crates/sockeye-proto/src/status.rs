use core::num::NonZeroUsize;

/// The result of a decoder that may need more input.
///
/// "Need more bytes" is never an error: a decoder returns `Incomplete` while the input is a
/// strict prefix of something that can still become valid (and is under its limit). Nothing is
/// consumed on `Incomplete`; call again with the same bytes plus whatever arrived since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<T> {
    /// The value is complete.
    Complete(T),
    /// More input is needed; `needed` is the minimum number of extra bytes when it is known.
    Incomplete {
        /// At least this many more bytes are needed, when the decoder can tell.
        needed: Option<NonZeroUsize>,
    },
}

impl<T> Status<T> {
    /// `Incomplete` with a known count of missing bytes (`0` means unknown).
    pub(crate) fn incomplete(needed: usize) -> Self {
        Status::Incomplete {
            needed: NonZeroUsize::new(needed),
        }
    }

    /// Whether the value is complete.
    pub fn is_complete(&self) -> bool {
        matches!(self, Status::Complete(_))
    }

    /// The complete value, if any.
    pub fn complete(self) -> Option<T> {
        match self {
            Status::Complete(value) => Some(value),
            Status::Incomplete { .. } => None,
        }
    }

    /// Maps the complete value.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Status<U> {
        match self {
            Status::Complete(value) => Status::Complete(f(value)),
            Status::Incomplete { needed } => Status::Incomplete { needed },
        }
    }
}
