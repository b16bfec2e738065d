//! The tools (pretend ones: this example is about who may call them, not
//! what they do). A tool exists when some plan offers it.

use serde_json::{Value, json};
use tollgate_client::limits::Plans;

/// Whether any plan offers `tool`.
pub(crate) fn exists(plans: &Plans, tool: &str) -> bool {
    plans.iter().any(|plan| plan.allows_tool(tool))
}

/// Runs `tool` on `input`.
pub(crate) fn run(tool: &str, input: &str) -> Value {
    let words = input.split_whitespace().count();
    match tool {
        "search" => json!({"results": [format!("3 documents match {words} words")]}),
        "summarize" => json!({"summary": format!("a text of {words} words, in one line")}),
        _ => json!({"output": format!("{tool} ran on {words} words")}),
    }
}
