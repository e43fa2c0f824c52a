//! Topic names in the NATS subject syntax, a reference matcher, and a trie of
//! subscription patterns.
//!
//! # Subject rules
//!
//! - A topic is one or more *tokens* separated by `.`. No token is empty, so a
//!   topic never starts or ends with `.` and never contains `..`.
//! - A topic is at most [`MAX_TOPIC_LEN`] (256) bytes long.
//! - A topic contains no ASCII whitespace and no ASCII control character
//!   (bytes below `0x20` and `0x7f`). Any other UTF-8 text is allowed.
//! - A *pattern* (used to subscribe) may contain wildcard tokens:
//!   - `*` matches exactly one token;
//!   - `>` matches one or more tokens, and may only be the last token.
//!
//!   A token that mixes `*` or `>` with other characters (`a*`, `>b`, `**`)
//!   is invalid.
//! - A *literal* topic (used to publish) contains no `*` or `>` at all, not
//!   even inside a longer token.
//!
//! When a string breaks several rules, the error reported is the first that
//! applies in this order: [`TopicError::Empty`], [`TopicError::TooLong`],
//! [`TopicError::Whitespace`], [`TopicError::EmptyToken`], then the wildcard
//! errors.
//!
//! # Matching
//!
//! [`matches()`] is a plain token-by-token matcher for one pattern. [`Trie`]
//! holds many patterns and reports, for one published topic, every stored
//! pattern that matches it.

use std::collections::HashMap;
use std::fmt;
use std::str::Split;

/// The longest valid topic or pattern, in bytes.
pub(crate) const MAX_TOPIC_LEN: usize = 256;

/// The token separator.
const SEPARATOR: char = '.';

/// The wildcard token that matches exactly one token.
const ONE: &str = "*";

/// The wildcard token that matches one or more trailing tokens.
const TAIL: &str = ">";

/// Why a topic or a pattern is invalid.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopicError {
    /// The topic is the empty string.
    Empty,
    /// The topic is longer than 256 bytes.
    TooLong,
    /// A token is empty: the topic starts or ends with `.`, or contains `..`.
    EmptyToken,
    /// The topic contains ASCII whitespace or an ASCII control character.
    Whitespace,
    /// A topic used to publish contains a wildcard character (`*` or `>`).
    Wildcard,
    /// A pattern token mixes `*` or `>` with other characters, or `>` is not
    /// the last token.
    BadWildcard,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TopicError::Empty => f.write_str("the topic is empty"),
            TopicError::TooLong => write!(f, "the topic is longer than {MAX_TOPIC_LEN} bytes"),
            TopicError::EmptyToken => {
                f.write_str("the topic has an empty token (a leading, trailing or doubled '.')")
            }
            TopicError::Whitespace => {
                f.write_str("the topic contains whitespace or a control character")
            }
            TopicError::Wildcard => f.write_str("a topic to publish to cannot contain '*' or '>'"),
            TopicError::BadWildcard => f.write_str(
                "a wildcard must be a whole token ('*' or '>'), and '>' must be the last token",
            ),
        }
    }
}

impl std::error::Error for TopicError {}

/// Checks a literal topic, one used to publish: no wildcards allowed.
///
/// # Errors
///
/// What is wrong with it.
pub fn validate_topic(s: &str) -> Result<(), TopicError> {
    validate_common(s)?;
    if s.contains(['*', '>']) {
        return Err(TopicError::Wildcard);
    }
    Ok(())
}

/// Checks a pattern, one used to subscribe; returns whether it has a wildcard
/// token.
///
/// # Errors
///
/// What is wrong with it.
pub fn validate_pattern(s: &str) -> Result<bool, TopicError> {
    validate_common(s)?;
    let mut has_wildcard = false;
    let mut tokens = s.split(SEPARATOR).peekable();
    while let Some(token) = tokens.next() {
        let is_last = tokens.peek().is_none();
        match token {
            ONE => has_wildcard = true,
            TAIL if is_last => has_wildcard = true,
            TAIL => return Err(TopicError::BadWildcard),
            _ if token.contains(['*', '>']) => return Err(TopicError::BadWildcard),
            _ => {}
        }
    }
    Ok(has_wildcard)
}

/// The rules shared by topics and patterns: length, characters, empty tokens.
fn validate_common(s: &str) -> Result<(), TopicError> {
    if s.is_empty() {
        return Err(TopicError::Empty);
    }
    if s.len() > MAX_TOPIC_LEN {
        return Err(TopicError::TooLong);
    }
    if s.bytes().any(is_forbidden_byte) {
        return Err(TopicError::Whitespace);
    }
    if s.split(SEPARATOR).any(str::is_empty) {
        return Err(TopicError::EmptyToken);
    }
    Ok(())
}

/// Whether a byte is ASCII whitespace or an ASCII control character.
///
/// Bytes of multi-byte UTF-8 sequences are all `>= 0x80`, so they never match.
fn is_forbidden_byte(b: u8) -> bool {
    b.is_ascii_whitespace() || b.is_ascii_control()
}

/// Whether `pattern` matches the literal `topic`.
///
/// Returns `false` unless `pattern` is a valid pattern and `topic` a valid
/// literal topic. This is the straightforward reference matcher; the workers'
/// trie does the same for many patterns at once.
pub fn matches(pattern: &str, topic: &str) -> bool {
    validate_pattern(pattern).is_ok()
        && validate_topic(topic).is_ok()
        && tokens_match(pattern, topic)
}

/// Matches the tokens of `pattern` against those of `topic`, one by one.
fn tokens_match(pattern: &str, topic: &str) -> bool {
    let mut topic_tokens = topic.split(SEPARATOR);
    for pattern_token in pattern.split(SEPARATOR) {
        let Some(topic_token) = topic_tokens.next() else {
            return false;
        };
        match pattern_token {
            TAIL => return true,
            ONE => {}
            literal if literal != topic_token => return false,
            _ => {}
        }
    }
    topic_tokens.next().is_none()
}

/// The tokens of a topic or pattern that are still to be walked.
type Tokens<'a> = Split<'a, char>;

/// A set of patterns, each with a value, that finds every pattern matching a
/// published topic.
///
/// Patterns are expected to be valid (see [`validate_pattern`]) and topics to
/// be valid literal topics (see [`validate_topic`]). Other strings never cause
/// a panic: they are handled token by token, a `>` that is not the last token
/// being treated as a plain token.
#[derive(Debug)]
pub(crate) struct Trie<V> {
    /// The node for the empty prefix.
    root: Node<V>,
    /// How many patterns are stored.
    len: usize,
}

/// One node of the trie: the patterns that share a prefix of tokens.
#[derive(Debug)]
struct Node<V> {
    /// The value of the pattern that ends exactly here.
    value: Option<V>,
    /// The value of the pattern made of this prefix followed by `>`.
    tail: Option<V>,
    /// The node for this prefix followed by `*`.
    star: Option<Box<Node<V>>>,
    /// The nodes for this prefix followed by a literal token.
    children: HashMap<Box<str>, Node<V>>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            value: None,
            tail: None,
            star: None,
            children: HashMap::new(),
        }
    }
}

impl<V> Node<V> {
    /// Whether the node holds no value and has no child, so it can be pruned.
    fn is_empty(&self) -> bool {
        self.value.is_none()
            && self.tail.is_none()
            && self.star.is_none()
            && self.children.is_empty()
    }

    /// The slot for `pattern` below this node, creating the nodes on the way.
    fn slot_or_insert(&mut self, pattern: &str) -> &mut Option<V> {
        let mut node = self;
        let mut tokens = pattern.split(SEPARATOR).peekable();
        while let Some(token) = tokens.next() {
            if token == TAIL && tokens.peek().is_none() {
                return &mut node.tail;
            }
            node = if token == ONE {
                node.star.get_or_insert_with(Box::default)
            } else {
                node.children.entry(Box::from(token)).or_default()
            };
        }
        &mut node.value
    }

    /// The slot for `pattern` below this node, if its nodes exist.
    fn slot_mut(&mut self, pattern: &str) -> Option<&mut Option<V>> {
        let mut node = self;
        let mut tokens = pattern.split(SEPARATOR).peekable();
        while let Some(token) = tokens.next() {
            if token == TAIL && tokens.peek().is_none() {
                return Some(&mut node.tail);
            }
            node = if token == ONE {
                node.star.as_deref_mut()?
            } else {
                node.children.get_mut(token)?
            };
        }
        Some(&mut node.value)
    }

    /// Removes the pattern whose tokens are `token` then `rest`, pruning the
    /// child nodes that this leaves empty.
    fn remove(&mut self, token: &str, rest: &mut std::iter::Peekable<Tokens<'_>>) -> Option<V> {
        let next = rest.next();
        if token == TAIL && next.is_none() {
            return self.tail.take();
        }
        if token == ONE {
            let child = self.star.as_deref_mut()?;
            let removed = child.remove_next(next, rest);
            if child.is_empty() {
                self.star = None;
            }
            removed
        } else {
            let child = self.children.get_mut(token)?;
            let removed = child.remove_next(next, rest);
            if child.is_empty() {
                self.children.remove(token);
                if self.children.is_empty() {
                    self.children.shrink_to_fit();
                }
            }
            removed
        }
    }

    /// Removes the value ending here (no token left) or recurses with `next`.
    fn remove_next(
        &mut self,
        next: Option<&str>,
        rest: &mut std::iter::Peekable<Tokens<'_>>,
    ) -> Option<V> {
        match next {
            None => self.value.take(),
            Some(token) => self.remove(token, rest),
        }
    }

    /// Calls `f` with the value of every pattern below this node that matches
    /// the remaining topic tokens.
    fn visit<'a, F: FnMut(&'a V)>(&'a self, mut tokens: Tokens<'_>, f: &mut F) {
        let Some(token) = tokens.next() else {
            if let Some(value) = &self.value {
                f(value);
            }
            return;
        };
        if let Some(value) = &self.tail {
            f(value);
        }
        if let Some(child) = self.children.get(token) {
            child.visit(tokens.clone(), f);
        }
        if let Some(child) = self.star.as_deref() {
            child.visit(tokens, f);
        }
    }

    /// The number of nodes below this one, not counting itself.
    #[cfg(test)]
    fn descendants(&self) -> usize {
        let star = self
            .star
            .as_deref()
            .map_or(0, |child| 1 + child.descendants());
        let literal: usize = self
            .children
            .values()
            .map(|child| 1 + child.descendants())
            .sum();
        star + literal
    }
}

impl<V> Default for Trie<V> {
    fn default() -> Self {
        Trie::new()
    }
}

impl<V> Trie<V> {
    /// An empty trie.
    pub(crate) fn new() -> Self {
        Trie {
            root: Node::default(),
            len: 0,
        }
    }

    /// The value stored for `pattern`, inserting `make()` first if there is none.
    pub(crate) fn get_or_insert_with(&mut self, pattern: &str, make: impl FnOnce() -> V) -> &mut V {
        let slot = self.root.slot_or_insert(pattern);
        if slot.is_none() {
            self.len += 1;
        }
        slot.get_or_insert_with(make)
    }

    /// The value stored for `pattern`, if any.
    pub(crate) fn get_mut(&mut self, pattern: &str) -> Option<&mut V> {
        self.root.slot_mut(pattern)?.as_mut()
    }

    /// Removes `pattern` and returns its value, pruning the nodes this leaves
    /// empty.
    pub(crate) fn remove(&mut self, pattern: &str) -> Option<V> {
        let mut tokens = pattern.split(SEPARATOR).peekable();
        let first = tokens.next()?;
        let removed = self.root.remove(first, &mut tokens);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Calls `f` once with the value of every stored pattern that matches the
    /// literal `topic`.
    pub(crate) fn for_each_match<'a>(&'a self, topic: &str, mut f: impl FnMut(&'a V)) {
        self.root.visit(topic.split(SEPARATOR), &mut f);
    }

    /// The number of stored patterns.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether no pattern is stored.
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The number of nodes, not counting the root (which always exists).
    #[cfg(test)]
    fn nodes(&self) -> usize {
        self.root.descendants()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_topics() {
        for topic in ["prices.EUR.USD", "a", "ünïcode.ok", "a-b_c.d/e:f"] {
            assert_eq!(validate_topic(topic), Ok(()), "{topic}");
            assert_eq!(validate_pattern(topic), Ok(false), "{topic}");
        }
        let longest = "a".repeat(MAX_TOPIC_LEN);
        assert_eq!(validate_topic(&longest), Ok(()));
    }

    #[test]
    fn valid_patterns() {
        for pattern in ["prices.*.EUR", "prices.>", "*", ">", "*.*", "*.>", "a.*.>"] {
            assert_eq!(validate_pattern(pattern), Ok(true), "{pattern}");
        }
    }

    #[test]
    fn empty() {
        assert_eq!(validate_topic(""), Err(TopicError::Empty));
        assert_eq!(validate_pattern(""), Err(TopicError::Empty));
    }

    #[test]
    fn too_long() {
        let long = "a".repeat(MAX_TOPIC_LEN + 1);
        assert_eq!(validate_topic(&long), Err(TopicError::TooLong));
        assert_eq!(validate_pattern(&long), Err(TopicError::TooLong));
        // 128 two-byte characters plus one byte: counted in bytes.
        let wide = format!("{}a", "é".repeat(128));
        assert_eq!(validate_topic(&wide), Err(TopicError::TooLong));
    }

    #[test]
    fn empty_token() {
        for bad in ["a..b", ".a", "a.", ".", "..", "a.>.", ".*"] {
            assert_eq!(validate_topic(bad), Err(TopicError::EmptyToken), "{bad:?}");
            assert_eq!(
                validate_pattern(bad),
                Err(TopicError::EmptyToken),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn whitespace() {
        for bad in [
            "a b", "a\tb", "a\r", "\nb", "a\0", "a\x1f", "a\x7f", "a\x0c",
        ] {
            assert_eq!(validate_topic(bad), Err(TopicError::Whitespace), "{bad:?}");
            assert_eq!(
                validate_pattern(bad),
                Err(TopicError::Whitespace),
                "{bad:?}"
            );
        }
        // Non-ASCII text, even a non-breaking space, is allowed.
        assert_eq!(validate_topic("a\u{a0}b"), Ok(()));
    }

    #[test]
    fn wildcard_in_topic() {
        for bad in ["*", ">", "a.*", "a.>", "a*", "a.b>c", "*.b"] {
            assert_eq!(validate_topic(bad), Err(TopicError::Wildcard), "{bad:?}");
        }
    }

    #[test]
    fn bad_wildcard() {
        for bad in [
            "a*", ">b", "**", ">>", "*>", "a.>.b", ">.a", "a.b*.c", "a.>.>",
        ] {
            assert_eq!(
                validate_pattern(bad),
                Err(TopicError::BadWildcard),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn error_display() {
        let all = [
            TopicError::Empty,
            TopicError::TooLong,
            TopicError::EmptyToken,
            TopicError::Whitespace,
            TopicError::Wildcard,
            TopicError::BadWildcard,
        ];
        for (i, a) in all.iter().enumerate() {
            assert!(!a.to_string().is_empty());
            for b in &all[i + 1..] {
                assert_ne!(a.to_string(), b.to_string());
            }
        }
    }

    #[test]
    fn match_examples() {
        assert!(matches("prices.*.EUR", "prices.X.EUR"));
        assert!(!matches("prices.*.EUR", "prices.X.Y.EUR"));
        assert!(!matches("prices.>", "prices"));
        assert!(matches("prices.>", "prices.a"));
        assert!(matches("prices.>", "prices.a.b"));
        assert!(matches("*", "a"));
        assert!(!matches("*", "a.b"));
        for topic in ["a", "a.b", "x.y.z", "ünïcode.ok"] {
            assert!(matches(">", topic), "{topic}");
        }
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.c"));
        assert!(!matches("a.b", "a"));
        assert!(!matches("a", "a.b"));
    }

    #[test]
    fn match_rejects_invalid_input() {
        assert!(!matches(">", ""));
        assert!(!matches("*", "*"));
        assert!(!matches("a.>.b", "a.x.b"));
        assert!(!matches("a..b", "a..b"));
        assert!(!matches("a", "a "));
    }

    #[test]
    fn trie_basics() {
        let mut trie = Trie::new();
        assert!(trie.is_empty());
        *trie.get_or_insert_with("a.*", || 0) += 1;
        *trie.get_or_insert_with("a.*", || 10) += 1;
        *trie.get_or_insert_with(">", || 5) += 1;
        *trie.get_or_insert_with("a.b", || 7) += 0;
        assert_eq!(trie.len(), 3);
        assert_eq!(trie.get_mut("a.*").copied(), Some(2));
        assert_eq!(trie.get_mut("a.>"), None);
        assert_eq!(trie.get_mut("a"), None);

        let mut seen = Vec::new();
        trie.for_each_match("a.b", |v| seen.push(*v));
        seen.sort_unstable();
        assert_eq!(seen, [2, 6, 7]);

        *trie.get_mut("a.*").unwrap() += 100;
        *trie.get_mut(">").unwrap() += 100;
        let mut seen = Vec::new();
        trie.for_each_match("a.c", |v| seen.push(*v));
        seen.sort_unstable();
        assert_eq!(seen, [102, 106]);
        assert_eq!(trie.get_mut("a.b").copied(), Some(7));

        assert_eq!(trie.remove("a"), None);
        assert_eq!(trie.remove("a.*.c"), None);
        assert_eq!(trie.remove("a.*"), Some(102));
        assert_eq!(trie.remove("a.*"), None);
        assert_eq!(trie.remove(">"), Some(106));
        assert_eq!(trie.remove("a.b"), Some(7));
        assert!(trie.is_empty());
        assert_eq!(trie.nodes(), 0);
    }

    #[test]
    fn trie_odd_input_does_not_panic() {
        let mut trie = Trie::new();
        for odd in ["", ".", "a..b", ">.>", "a.>.b", "**", " "] {
            trie.get_or_insert_with(odd, || odd.len());
        }
        for topic in ["", ".", "a..b", ">.>", "*", "a.>.b"] {
            trie.for_each_match(topic, |_| {});
        }
        for odd in ["", ".", "a..b", ">.>", "a.>.b", "**", " "] {
            assert_eq!(trie.remove(odd), Some(odd.len()), "{odd:?}");
        }
        assert!(trie.is_empty());
        assert_eq!(trie.nodes(), 0);
    }

    /// A small deterministic pseudo-random generator (xorshift64).
    struct XorShift(u64);

    impl XorShift {
        /// The next number below `n` (`n > 0`).
        fn below(&mut self, n: usize) -> usize {
            let mut x = self.0;
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            self.0 = x;
            usize::try_from(x % n as u64).unwrap_or(0)
        }

        /// A valid pattern of 1 to 4 tokens over `a`, `b`, `c`, `*`, `>`.
        fn pattern(&mut self) -> String {
            let count = 1 + self.below(4);
            let mut tokens = Vec::new();
            for i in 0..count {
                let choices: &[&str] = if i + 1 == count {
                    &["a", "b", "c", "*", ">"]
                } else {
                    &["a", "b", "c", "*"]
                };
                tokens.push(choices[self.below(choices.len())]);
            }
            tokens.join(".")
        }

        /// A literal topic of 1 to 5 tokens over `a`, `b`, `c`, `d`.
        fn topic(&mut self) -> String {
            let count = 1 + self.below(5);
            let tokens: Vec<&str> = (0..count)
                .map(|_| ["a", "b", "c", "d"][self.below(4)])
                .collect();
            tokens.join(".")
        }
    }

    /// Checks the trie against the naive matcher over the stored patterns;
    /// returns how many matches were found, in all.
    fn check_against_oracle(trie: &Trie<String>, stored: &[String], rng: &mut XorShift) -> usize {
        let mut total = 0;
        for _ in 0..300 {
            let topic = rng.topic();
            let mut found: Vec<String> = Vec::new();
            trie.for_each_match(&topic, |v| found.push(v.clone()));
            found.sort();
            let mut expected: Vec<String> = stored
                .iter()
                .filter(|p| matches(p, &topic))
                .cloned()
                .collect();
            expected.sort();
            assert_eq!(found, expected, "topic {topic}");
            total += found.len();
        }
        total
    }

    #[test]
    fn trie_matches_like_the_naive_matcher() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut trie: Trie<String> = Trie::new();
        let mut stored: Vec<String> = Vec::new();

        for _ in 0..400 {
            let pattern = rng.pattern();
            assert_eq!(validate_pattern(&pattern).map(|_| ()), Ok(()));
            let value = trie.get_or_insert_with(&pattern, || pattern.clone());
            assert_eq!(*value, pattern);
            if !stored.contains(&pattern) {
                stored.push(pattern);
            }
        }
        assert_eq!(trie.len(), stored.len());
        assert!(check_against_oracle(&trie, &stored, &mut rng) > 0);

        for _ in 0..300 {
            let pattern = rng.pattern();
            let was_stored = stored.iter().position(|p| *p == pattern);
            let removed = trie.remove(&pattern);
            assert_eq!(removed.is_some(), was_stored.is_some(), "{pattern}");
            if let Some(i) = was_stored {
                assert_eq!(removed.as_deref(), Some(pattern.as_str()));
                stored.swap_remove(i);
            }
            assert_eq!(trie.get_mut(&pattern), None);
        }
        assert_eq!(trie.len(), stored.len());
        assert!(check_against_oracle(&trie, &stored, &mut rng) > 0);

        for pattern in &stored {
            assert_eq!(trie.get_mut(pattern), Some(&mut pattern.clone()));
        }
        for pattern in std::mem::take(&mut stored) {
            assert_eq!(trie.remove(&pattern), Some(pattern));
        }
        assert!(trie.is_empty());
        assert_eq!(trie.nodes(), 0);
    }
}
