//! Lua scripts for the rules one command cannot keep: compare-and-swap and
//! compare-and-delete. Each is loaded once per server and called by SHA (`EVALSHA`, falling
//! back to `EVAL` when the server does not know it yet). Their answers are 0 or 1, so no
//! number passes through a Lua double that could lose precision.

use redis::Script;

pub(super) const CAS: &str = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end \
     if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2]) \
     else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end \
     return 1";
pub(super) const CAD: &str = "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end \
     return redis.call('DEL', KEYS[1])";

/// A script and its source, for the `EVAL` fallback.
pub(super) struct Lua {
    pub(super) script: Script,
    pub(super) source: &'static str,
}

pub(super) struct Scripts {
    pub(super) cas: Lua,
    pub(super) cad: Lua,
}

pub(super) fn scripts() -> &'static Scripts {
    static SCRIPTS: std::sync::OnceLock<Scripts> = std::sync::OnceLock::new();
    SCRIPTS.get_or_init(|| Scripts {
        cas: Lua {
            script: Script::new(CAS),
            source: CAS,
        },
        cad: Lua {
            script: Script::new(CAD),
            source: CAD,
        },
    })
}
