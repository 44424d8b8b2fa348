//! The context switches of a thread in the measured window, from its
//! `/proc` status.

/// A thread's context switches, from its `/proc` status.
#[derive(Clone, Copy, Debug, Default)]
pub struct Switches {
    /// The thread blocked (and was woken later).
    voluntary: u64,
    /// The thread was preempted.
    involuntary: u64,
}

impl Switches {
    pub fn read(status: &str) -> Switches {
        let text = std::fs::read_to_string(status).unwrap_or_default();
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|value| value.trim().parse().ok())
                .unwrap_or(0)
        };
        Switches {
            voluntary: field("voluntary_ctxt_switches:"),
            involuntary: field("nonvoluntary_ctxt_switches:"),
        }
    }

    pub fn since(self, start: Switches) -> Switches {
        Switches {
            voluntary: self.voluntary - start.voluntary,
            involuntary: self.involuntary - start.involuntary,
        }
    }

    pub fn json(self, calls: u64) -> (serde_json::Value, f64, f64) {
        let per_call = |n: u64| (n as f64 / calls.max(1) as f64 * 1e4).round() / 1e4;
        (
            serde_json::json!({"voluntary": self.voluntary, "involuntary": self.involuntary}),
            per_call(self.voluntary),
            per_call(self.involuntary),
        )
    }
}
