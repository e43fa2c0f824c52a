//! The README's embedding example is the chat example, word for word.

#[test]
fn readme_embedding_example_is_the_chat_example() {
    let readme = include_str!("../README.md");
    let example = include_str!("../crates/sockeye/examples/chat.rs");
    let start = readme.find("```rust\n").expect("README has a rust block") + "```rust\n".len();
    let end = start + readme[start..].find("```").expect("the block ends");
    let block = &readme[start..end];
    assert!(block.lines().count() > 20, "the block is the whole example");
    assert!(
        example.contains(block),
        "README's example differs from crates/sockeye/examples/chat.rs"
    );
}
