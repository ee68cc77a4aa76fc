use std::sync::LazyLock;

use redis::Script;

pub(crate) static TRANSITION: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/transition.lua")));
pub(crate) static CLAIM: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/claim.lua")));
pub(crate) static RENEW: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/renew.lua")));
pub(crate) static ANNOTATE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/annotate.lua")));
pub(crate) static APPEND_LOG: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/append_log.lua")));
pub(crate) static RECORD_ACTION: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/record_action.lua")));
pub(crate) static PRUNE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/prune.lua")));
pub(crate) static DEAD_ADD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/dead_add.lua")));
pub(crate) static DEAD_REMOVE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/dead_remove.lua")));
pub(crate) static WITHDRAW: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/withdraw.lua")));

/// Formats states as `,a,b,` for the scripts' substring test.
pub(crate) fn state_list(states: &[warren_protocol::JobState]) -> String {
    let mut out = String::from(",");
    for state in states {
        out.push_str(state.as_str());
        out.push(',');
    }
    out
}
